"""The inference fast path (issue 16): one switch, ``fast = model.optimize()``, returns a copy of the
model made for speed, whose ``predict`` gives the same detections as the original's.

What the copy does differently, and why each step is safe:

* BatchNorm folded into the convolution before it (:func:`~yolact_edu.model.fold.fold_batchnorm`):
  in eval mode BatchNorm is a fixed affine map, so one kernel does the work of two.
* channels-last memory format: the layout oneDNN (CPU) and cuDNN (tensor cores) convolve fastest.
* autocast: bf16 on CPUs with native bf16 instructions (AVX512-BF16 or AMX), fp16 on CUDA GPUs,
  fp32 elsewhere; post-processing always runs in fp32. bf16 asked for on a CPU without it is
  refused (:func:`~yolact_edu.bench.cpu.refuse_emulated_bf16`): emulated, it was slower than fp32
  and missed the guard on both CPU kinds measured (docs/benchmarks.md).
* optionally ``torch.compile`` (``compile=True``): meant for GPUs at fixed input sizes; on a 2-core
  CPU it compiled in about 30 s and gained nothing measurable (docs/benchmarks.md), so it is off by
  default.

The post-processing is the same as the model's own (:func:`~yolact_edu.postprocess.detect`, the whole
batch on fixed-size tensors), so a copy's detections differ from the model's only by the rounding
of the network's outputs.

The copy is for inference only: its BatchNorms are gone, so it refuses ``.train()``; train (and
save checkpoints of) the original model.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..bench import cpu as cpu_features
from ..bench.cpu import BF16_FLAGS, cpu_has_native_bf16, refuse_emulated_bf16
from .fold import fold_batchnorm

AUTOCAST_CHOICES = ("auto", "fp32", "fp16", "bf16")
def resolve_autocast(requested: str, device: torch.device) -> str | None:
    """The autocast dtype name the fast path uses on ``device``: "auto" -> "fp16" on CUDA, "bf16" on
    a CPU with native bf16, else None (fp32); "fp32" -> None; "fp16"/"bf16" as asked, except that
    "bf16" on a CPU without native bf16 raises a one-line ValueError."""
    if requested not in AUTOCAST_CHOICES:
        raise ValueError(f"autocast must be one of {', '.join(AUTOCAST_CHOICES)}, got {requested!r}")
    if requested == "fp32":
        return None
    if requested == "bf16":
        refuse_emulated_bf16(device)
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else None


def autocast_reason(device) -> str:
    """One line: what ``autocast="auto"`` picks on ``device`` and what decided it (the CPU's flags)."""
    device = torch.device(device)
    if device.type == "cuda":
        return "auto -> fp16: a CUDA device"
    cpu = cpu_features.this_cpu()        # looked up on the module, so a test can stand in another CPU
    if cpu.native_bf16:
        return f"auto -> bf16: {cpu.model} computes bf16 in hardware"
    return (f"auto -> fp32: {cpu.model} has no native bf16 ({', '.join(BF16_FLAGS[:2])}); int8 is not offered "
            f"(VNNI: {'yes' if cpu.vnni else 'no'}): onnxruntime's static int8 kept the AP but missed the fast "
            "path's guard (docs/benchmarks.md)")


@dataclass
class FastPath:
    """What :meth:`InstanceSegmenter.optimize` did to a copy of a model (``model.fast_path``).

    autocast: "fp16", "bf16" or None (fp32); channels_last: the input's and weights' memory format;
    folded: the number of BatchNorm layers folded; compiled: the ``torch.compile``d model, or None.
    """
    autocast: str | None
    channels_last: bool
    folded: int
    compiled: nn.Module | None = None

    def describe(self) -> str:
        parts = [f"{self.folded} BatchNorm folded", "channels-last" if self.channels_last else "contiguous",
                 self.autocast or "fp32"]
        if self.compiled is not None:
            parts.append("torch.compile")
        return ", ".join(parts)


def optimized_copy(model: nn.Module, autocast: str = "auto", channels_last: bool = True,
                   compile: bool = False) -> nn.Module:
    """A deep copy of ``model`` in eval mode with the fast path's changes, its settings in ``fast_path``
    (see the module docstring). The original model is left as it was."""
    device = next(model.parameters()).device
    dtype = resolve_autocast(autocast, device)
    fast = copy.deepcopy(model)
    fast.eval()
    folded = fold_batchnorm(fast)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    settings = FastPath(autocast=dtype, channels_last=channels_last, folded=folded)
    if compile:
        settings.compiled = torch.compile(fast, dynamic=False)
    fast.fast_path = settings
    return fast


__all__ = ["FastPath", "optimized_copy", "resolve_autocast", "cpu_has_native_bf16", "AUTOCAST_CHOICES",
           "autocast_reason"]
