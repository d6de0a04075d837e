"""Timing for teaching: medians of repeated runs, and inference split into its stages.

    >>> from yolact_edu.bench.timing import median_seconds, timed_predict
    >>> median_seconds(lambda: model.predict(image), repeats=5)      # seconds, median of 5
    >>> detections, stages = timed_predict(model, image)              # stages: name -> seconds
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from ..detections import Detections
from .cpu import this_cpu

STAGES = ("preprocess", "network", "decode + NMS", "assembly + crop", "upsample + threshold")


def synchronize(device) -> None:
    """Wait for queued GPU work on ``device`` (a no-op on the CPU or for None), so that
    wall-clock times count the kernels and not only their launch."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def clock(device=None) -> float:
    """``time.perf_counter()`` after :func:`synchronize`: seconds, for timing work on ``device``."""
    synchronize(device)
    return time.perf_counter()


def machine_name(device="cpu") -> str:
    """What a timing was taken on: the CUDA device's name, or e.g. "CPU AMD EPYC (x86_64, AVX2),
    2 cores, 2 torch threads": the CPU's model and vector unit (machines that share a name differ
    in them, and fp32 speed with them), with native bf16 or VNNI named where the CPU has them (they
    decide the fast path's precision), and the thread count, which matters as much as the cores."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = this_cpu()
    extras = [name for name, present in (("native bf16", cpu.native_bf16), ("VNNI", cpu.vnni)) if present]
    features = ", ".join([platform.machine(), cpu.simd, *extras])
    return f"CPU {cpu.model} ({features}), {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def repeat_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device=None) -> list[float]:
    """Wall time (seconds) of each of ``repeats`` calls of ``fn()``, after ``warmup`` untimed ones."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock(device)
        fn()
        times.append(clock(device) - start)
    return times


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device=None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones (seconds).

    The median, not the mean: one slow run (another process, a cache miss) should not move it.
    Pass ``device`` for CUDA work so queued kernels are waited for."""
    return statistics.median(repeat_seconds(fn, repeats, warmup, device))


@contextmanager
def stage_timer(timings: dict | None, name: str, device: torch.device | None = None):
    """Add the wall time of the ``with`` body to ``timings[name]`` (seconds); a no-op when
    ``timings`` is None. On CUDA it synchronises first and last so queued kernels are counted."""
    if timings is None:
        yield
        return
    start = clock(device)
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + clock(device) - start


@contextmanager
def record_modules(modules: dict[str, torch.nn.Module], device="cpu"):
    """Forward hooks on ``modules`` (name -> module) for the ``with`` body: the record holds each
    module's last output (``record["outputs"][name]``) and the :func:`clock` times its forward
    started and ended (``record["start"][name]``, ``record["end"][name]``, seconds)."""
    record: dict = {"outputs": {}, "start": {}, "end": {}}
    handles = []
    for name, module in modules.items():
        def pre(_module, _inputs, name=name):
            record["start"][name] = clock(device)

        def post(_module, _inputs, output, name=name):
            record["outputs"][name] = output
            record["end"][name] = clock(device)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def network_outputs(model, image) -> tuple[dict, dict[str, float]]:
    """Run preprocess + network on one image; returns (raw dict, {"preprocess", "network"} seconds).

    Widgets keep the raw dict and re-run only :meth:`Yolact.detect` when a post-processing
    setting changes, which is how the settings can be explored live on a CPU."""
    model.eval()
    device = next(model.parameters()).device
    timings: dict[str, float] = {}
    with stage_timer(timings, "preprocess", device):
        x = model.preprocess(image)
    with stage_timer(timings, "network", device):
        raw = model.network(x)             # as predict does: an optimize()d copy's way
    return raw, timings


@torch.no_grad()
def timed_predict(model, image, **detect_kwargs) -> tuple[Detections, dict[str, float]]:
    """:meth:`Yolact.predict` on one HxWx3 image, with the seconds of each stage in ``STAGES``
    order: preprocess, network, decode + NMS, assembly + crop, upsample + threshold."""
    raw, timings = network_outputs(model, image)
    detections = model.detect(raw, model.image_size(image), timings=timings, **detect_kwargs)[0]
    return detections, {name: timings.get(name, 0.0) for name in STAGES}


__all__ = ["stage_timer", "record_modules", "machine_name", "synchronize", "clock", "repeat_seconds",
           "median_seconds", "network_outputs", "timed_predict", "STAGES"]
