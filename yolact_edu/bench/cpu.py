"""The CPU a figure or a test ran on, and what it computes in hardware.

The project's machines are not one CPU: some have native bf16 (AVX512-BF16 or AMX), some only
AVX-512 with VNNI, some AVX2 alone. A precision is worth choosing only where the CPU has
instructions for it: without them torch emulates bf16, which is slower than fp32 and rounds
differently (``docs/benchmarks.md``, "bf16 on a CPU without it"). So the fast path, ``predict``'s
autocast and the Trainer all ask :func:`refuse_emulated_bf16` before running bf16 on a CPU.

Features are read from ``/proc/cpuinfo`` (Linux: the ``flags`` line on x86, ``Features`` on Arm);
elsewhere the CPU is named by :mod:`platform` and no feature is assumed.
"""
from __future__ import annotations

import functools
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")        # x86 AVX512-BF16, x86 AMX, Arm's bf16 extension
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")     # int8 dot products in one instruction
# Set to 1 to run emulated bf16 anyway (with a warning): how its cost and its error are measured.
EMULATED_BF16_VARIABLE = "YOLACT_EDU_EMULATED_BF16"


@dataclass(frozen=True)
class CpuFeatures:
    """model: the CPU's name as the OS gives it; flags: its feature flags (lower case)."""
    model: str
    flags: frozenset

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.flags for flag in BF16_FLAGS)

    @property
    def vnni(self) -> bool:
        return any(flag in self.flags for flag in VNNI_FLAGS)

    @property
    def simd(self) -> str:
        """The widest vector unit: "AVX-512", "AVX2", "Arm ASIMD" or "baseline"."""
        for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("asimd", "Arm ASIMD")):
            if flag in self.flags:
                return name
        return "baseline"

    def describe(self) -> str:
        """One line, e.g. "AMD EPYC (AVX2; native bf16: no; VNNI: no)"."""
        def which(names):
            found = [name for name in names if name in self.flags]
            return f"yes ({', '.join(found)})" if found else "no"
        return f"{self.model} ({self.simd}; native bf16: {which(BF16_FLAGS)}; VNNI: {which(VNNI_FLAGS)})"


def parse_cpuinfo(text: str) -> CpuFeatures:
    """The first processor's model name and flags in the text of ``/proc/cpuinfo``."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.lower().split())
    return CpuFeatures(model or platform.processor() or platform.machine() or "unknown CPU", frozenset(flags))


@functools.lru_cache(maxsize=1)
def this_cpu() -> CpuFeatures:
    """This machine's CPU (read once per process)."""
    path = Path("/proc/cpuinfo")
    if platform.system() == "Linux" and path.exists():
        return parse_cpuinfo(path.read_text(errors="replace"))
    return CpuFeatures(platform.processor() or platform.machine() or "unknown CPU", frozenset())


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU (or the one ``cpuinfo``, the text of /proc/cpuinfo, describes) computes bf16
    in hardware."""
    return (parse_cpuinfo(cpuinfo) if cpuinfo is not None else this_cpu()).native_bf16


def refuse_emulated_bf16(device) -> None:
    """Raise a one-line ValueError when bf16 is asked for on a CPU ``device`` that would only emulate
    it; on CUDA, or on a CPU with native bf16, do nothing.

    Why refuse rather than warn: emulated bf16 is slower than fp32 and its results miss the fast
    path's guard (measured on both CPU kinds, ``docs/benchmarks.md``), so it gives a learner neither
    speed nor the promised detections. ``$YOLACT_EDU_EMULATED_BF16=1`` lets it run, with a
    warning, to measure exactly that."""
    if torch.device(device).type != "cpu":
        return
    cpu = this_cpu()
    if cpu.native_bf16:
        return
    if os.environ.get(EMULATED_BF16_VARIABLE) == "1":
        warnings.warn(f"{cpu.model} has no native bf16: running it emulated, as {EMULATED_BF16_VARIABLE}=1 asks "
                      "(slower than fp32, outside the fast path's guard)", stacklevel=3)
        return
    raise ValueError(f"bf16 needs a CPU that computes it in hardware ({', '.join(BF16_FLAGS[:2])}); "
                     f"this one ({cpu.model}) would only emulate it, slower than fp32 and less exact: "
                     "use fp32, the default here")


__all__ = ["CpuFeatures", "parse_cpuinfo", "this_cpu", "cpu_has_native_bf16", "refuse_emulated_bf16",
           "BF16_FLAGS", "VNNI_FLAGS", "EMULATED_BF16_VARIABLE"]
