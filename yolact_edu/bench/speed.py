"""How fast is inference, end to end and stage by stage (``yolact-edu bench speed``, issue 16).

Two kinds of run, kept apart because measuring a stage changes what it measures:

* end to end: ``model.predict(images)`` on uint8 images, nothing else, timed as a whole (on CUDA
  the clock waits for the GPU only at the start and the end); images per second = batch / median.
* stage by stage: the same call with forward hooks on the network's parts and timers around the
  post-processing steps; every boundary synchronises the GPU, so the stages add up to a little more
  than the end-to-end time. Stages: preprocess, backbone, FPN, protonet, head (its calls on every
  FPN level summed), NMS (softmax, decoding, Fast NMS), assembly (P C^T, sigmoid, crop), upsampling
  (to the image, threshold). A ``torch.compile``d network runs as one graph: only its total is known.

    >>> row = speed_row(model, images, detections=100, repeats=10, warmup=3)
    >>> row["fps"], row["stages_ms"]["backbone"]
"""
from __future__ import annotations

import platform
import statistics
from collections.abc import Sequence
from contextlib import contextmanager

import torch

from .cpu import this_cpu
from .timing import clock, machine_name, repeat_seconds, stage_timer

STAGE_NAMES = ("preprocess", "backbone", "FPN", "protonet", "head", "NMS", "assembly", "upsampling")
NETWORK_PARTS = {"backbone": "backbone", "FPN": "fpn", "protonet": "proto_net", "head": "prediction_layers"}
POSTPROCESS_STAGES = {"decode + NMS": "NMS", "assembly + crop": "assembly", "upsample + threshold": "upsampling"}


def environment(device) -> dict:
    """The machine a figure was taken on: device name, driver (CUDA), torch, Python, threads, and the
    CPU with the flags that decide the fast path's precision (native bf16, VNNI)."""
    device = torch.device(device)
    cpu = this_cpu()
    env = {"device": str(device), "machine": machine_name(device), "torch": torch.__version__,
           "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
           "cpu": cpu.describe(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["driver"] = cuda_driver_version()
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def cuda_driver_version() -> str | None:
    """The NVIDIA driver version (via NVML when torch can reach it), or None."""
    try:
        import pynvml  # noqa: PLC0415 - optional, ships with some CUDA builds of torch
        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001 - no NVML: the driver is simply not named
        return None


@contextmanager
def part_timer(model, timings: dict, device):
    """Forward hooks adding each network part's seconds to ``timings`` (names of ``NETWORK_PARTS``,
    calls summed: the shared head runs once per FPN level) for the ``with`` body."""
    handles = []
    for stage, attribute in NETWORK_PARTS.items():
        module = getattr(model, attribute, None)
        if module is None:
            continue
        parts = list(module) if isinstance(module, torch.nn.ModuleList) else [module]
        for part in parts:
            started: list[float] = []

            def pre(_module, _inputs, started=started):
                started.append(clock(device))

            def post(_module, _inputs, _output, stage=stage, started=started):
                timings[stage] = timings.get(stage, 0.0) + clock(device) - started.pop()

            handles += [part.register_forward_pre_hook(pre), part.register_forward_hook(post)]
    try:
        yield timings
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def staged_predict(model, images, **detect_kwargs) -> dict[str, float]:
    """One ``predict``-equivalent call on a batch (list of HxWx3 uint8 images) with every stage timed;
    returns {stage: seconds} for ``STAGE_NAMES`` plus "network" (the whole forward)."""
    device = next(model.parameters()).device
    timings: dict[str, float] = {}
    model.eval()
    with stage_timer(timings, "preprocess", device):
        x = model.preprocess(images)
    compiled = model.fast_path is not None and model.fast_path.compiled is not None
    with stage_timer(timings, "network", device):
        if compiled:
            raw = model.network(x)
        else:
            with part_timer(model, timings, device):
                raw = model.network(x)
    post: dict[str, float] = {}
    model.detect(raw, [model.image_size(image) for image in images], timings=post, **detect_kwargs)
    for name, stage in POSTPROCESS_STAGES.items():
        timings[stage] = post.get(name, 0.0)
    return timings


def forced_detections(count: int) -> dict:
    """``detect`` settings that make YOLACT return exactly ``count`` detections per image (no score or
    candidate threshold), so that every run does the same post-processing work."""
    return {"score_threshold": 0.0, "conf_threshold": 0.0, "top_k": int(count)}


@torch.no_grad()
def speed_row(model, images: Sequence, *, detections: int = 100, repeats: int = 10, warmup: int = 3,
              stages: bool = True) -> dict:
    """Time ``model.predict(images)`` (a batch of HxWx3 uint8 images) with the output forced to
    ``detections`` per image: medians of ``repeats`` runs after ``warmup`` untimed ones.

    Returns {"batch", "detections" (returned by the last run, per image), "e2e_ms" (median, whole
    batch), "min_ms", "fps" (images per second from the median), "stages_ms" (median per stage for the
    whole batch; None with ``stages=False``), "network_ms" (median forward, from the staged runs)}.
    """
    device = next(model.parameters()).device
    images = list(images)
    forced = forced_detections(detections)
    found: list = []

    def run():
        found[:] = model.predict(images, **forced)

    times = repeat_seconds(run, repeats=repeats, warmup=warmup, device=device)
    median = statistics.median(times)
    row = {"batch": len(images), "detections": len(found[0]) if found else 0, "e2e_ms": median * 1e3,
           "min_ms": min(times) * 1e3, "fps": len(images) / median, "stages_ms": None, "network_ms": None}
    if stages:
        runs = [staged_predict(model, images, **forced) for _ in range(max(1, repeats))]
        row["stages_ms"] = {name: statistics.median(run.get(name, float("nan")) for run in runs) * 1e3
                            for name in STAGE_NAMES}
        row["network_ms"] = statistics.median(run["network"] for run in runs) * 1e3
    return row




@torch.no_grad()
def maskrcnn_row(model, image, *, repeats: int = 10, warmup: int = 3) -> dict:
    """End-to-end time of a torchvision Mask R-CNN on one HxWx3 uint8 image, uint8 in (converted to
    [0,1] floats on the device, as torchvision expects) to image-size masks out; the caller fixes its
    output count. Returns {"batch": 1, "detections", "e2e_ms", "min_ms", "fps"} as :func:`speed_row`."""
    device = next(model.parameters()).device
    pixels = torch.from_numpy(image).permute(2, 0, 1)
    found: list = []

    def run():
        found[:] = model([pixels.to(device).float() / 255.0])

    times = repeat_seconds(run, repeats=repeats, warmup=warmup, device=device)
    median = statistics.median(times)
    return {"batch": 1, "detections": len(found[0]["boxes"]), "e2e_ms": median * 1e3, "min_ms": min(times) * 1e3,
            "fps": 1.0 / median, "stages_ms": None, "network_ms": None}


def speed_table(rows: Sequence[dict]) -> str:
    """The rows of a speed run as a Markdown table: config, device, batch, dtype, fast path, images/s,
    end-to-end ms (whole batch) and the stages' ms ("-" where a row has none)."""
    header = ["config", "device", "batch", "dtype", "fast", "images/s", "e2e ms", *STAGE_NAMES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        stages = row.get("stages_ms") or {}
        cells = [row["config"], row["device"], str(row["batch"]), row["dtype"], "on" if row["fast"] else "off",
                 f"{row['fps']:.1f}", f"{row['e2e_ms']:.1f}",
                 *(f"{stages[name]:.1f}" if name in stages else "-" for name in STAGE_NAMES)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed_ratios(rows: Sequence[dict]) -> list[dict]:
    """Side-by-side ratios of end-to-end time: each fast row against the eager row of the same config
    and batch, and each YOLACT row at batch 1 against a Mask R-CNN row of the same run (if any)."""
    eager = {(r["config"], r["batch"]): r for r in rows if not r["fast"] and r["config"] != MASKRCNN}
    rcnn = next((r for r in rows if r["config"] == MASKRCNN), None)
    ratios = []
    for row in rows:
        if row["config"] == MASKRCNN:
            continue
        key = (row["config"], row["batch"])
        if row["fast"] and key in eager:
            ratios.append({"config": row["config"], "batch": row["batch"], "what": "fast / eager",
                           "ratio": row["e2e_ms"] / eager[key]["e2e_ms"]})
        if rcnn is not None and row["batch"] == 1:
            ratios.append({"config": row["config"], "batch": 1,
                           "what": f"{'fast' if row['fast'] else 'eager'} / {MASKRCNN}",
                           "ratio": row["e2e_ms"] / rcnn["e2e_ms"]})
    return ratios


MASKRCNN = "maskrcnn_resnet50_fpn"


__all__ = ["speed_row", "maskrcnn_row", "speed_table", "speed_ratios", "staged_predict", "part_timer",
           "forced_detections", "environment", "cuda_driver_version", "STAGE_NAMES", "MASKRCNN"]
