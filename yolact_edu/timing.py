"""Timing for teaching: medians of repeated runs, and inference split into its stages.

    >>> from yolact_edu.timing import median_seconds, timed_predict
    >>> median_seconds(lambda: model.predict(image), repeats=5)      # seconds, median of 5
    >>> detections, stages = timed_predict(model, image)              # stages: name -> seconds
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from .detect import stage_timer
from .detections import Detections

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
    """What a timing was taken on: the CUDA device's name, or e.g.
    "CPU x86_64, 2 cores, 2 torch threads" (the thread count matters as much as the cores)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


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
        raw = model(x)
    return raw, timings


@torch.no_grad()
def timed_predict(model, image, **detect_kwargs) -> tuple[Detections, dict[str, float]]:
    """:meth:`Yolact.predict` on one HxWx3 image, with the seconds of each stage in ``STAGES``
    order: preprocess, network, decode + NMS, assembly + crop, upsample + threshold."""
    raw, timings = network_outputs(model, image)
    detections = model.detect(raw, model.image_size(image), timings=timings, **detect_kwargs)[0]
    return detections, {name: timings.get(name, 0.0) for name in STAGES}


__all__ = ["machine_name", "synchronize", "clock", "repeat_seconds", "median_seconds", "network_outputs",
           "timed_predict", "STAGES"]
