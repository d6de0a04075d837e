"""What each extra instance costs (notebook 01 §5).

Mask R-CNN runs its mask branch once per detection: a 14x14 RoIAlign, four 3x3 convs with
256 channels, a deconvolution and a 1x1 conv for every box (~0.5 G multiply-adds each, see
:func:`mask_head_macs`), then pastes every 28x28 mask into the image one by one. YOLACT's
per-instance work is a row of a matrix multiply (k = 32 multiply-adds per prototype pixel,
:func:`assembly_macs`), a crop and an upsample. Both also have
a fixed cost that does not depend on the number of instances (the backbone and FPN, and for
Mask R-CNN the RPN and the box head over ~1000 proposals).

Times are wall-clock medians on whatever machine runs this; on a shared or busy CPU they are
noisy, so read the trend, not the third digit.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch

from ...bench.timing import clock, record_modules, repeat_seconds
from ...model.segmenter import image_size
from ...ops.assemble import reassemble
from .maskrcnn import model_device, model_input

INSTANCE_COUNTS = (1, 5, 10, 25, 50, 100)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device="cpu") -> dict:
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed (waiting for ``device``'s
    queued GPU work before reading the clock).

    Returns {"median_ms", "min_ms", "times_ms" (list), "repeats"}."""
    times = [seconds * 1e3 for seconds in repeat_seconds(fn, repeats, warmup, device)]
    return {"median_ms": statistics.median(times), "min_ms": min(times), "times_ms": times, "repeats": repeats}


@contextmanager
def fixed_output_count(model, count: int):
    """Make a torchvision Mask R-CNN return ``count`` detections (score threshold 0) inside the
    ``with`` block, so its mask branch runs for exactly that many; the settings are restored after."""
    heads = model.roi_heads
    saved = heads.score_thresh, heads.detections_per_img
    heads.score_thresh, heads.detections_per_img = 0.0, int(count)
    try:
        yield
    finally:
        heads.score_thresh, heads.detections_per_img = saved


@torch.no_grad()
def maskrcnn_cost(model, image, counts: Sequence[int] = INSTANCE_COUNTS, repeats: int = 3,
                  warmup: int = 1) -> dict:
    """Mask R-CNN's cost after the backbone as the number of output instances N grows.

    The resize and the backbone + FPN run ``warmup + 1`` times (the last is "fixed_ms"); then for each N in
    ``counts`` the
    RPN, box branch, mask branch and paste run with ``score_thresh = 0`` and
    ``detections_per_img = N`` (so exactly N instances come out when the NMS leaves enough).
    Returns {"fixed_ms", "counts", "instances" [actual N per count], "after_backbone_ms"
    [median per count], "per_instance_ms" [median mask branch + paste per count]}.
    The model's thresholds are restored afterwards.
    """
    model.eval()
    heads = model.roi_heads
    device = model_device(model)
    x = model_input(model, image)
    original_size = [image_size(image)]
    for _ in range(warmup + 1):    # the last run is timed
        start = clock(device)
        images, _ = model.transform([x])
        features = model.backbone(images.tensors)
        fixed_ms = (clock(device) - start) * 1e3
    result = {"fixed_ms": fixed_ms, "counts": list(counts), "instances": [],
              "after_backbone_ms": [], "per_instance_ms": []}
    for count in counts:
        totals, instance_parts, found = [], [], 0
        with fixed_output_count(model, count):
            for run in range(warmup + repeats):
                with record_modules({"mask_roi_pool": heads.mask_roi_pool}, device) as record:
                    start = clock(device)
                    proposals, _ = model.rpn(images, features)
                    detections, _ = heads(features, proposals, images.image_sizes)
                    t_heads = clock(device)
                    detections = model.transform.postprocess(detections, images.image_sizes, original_size)
                    end = clock(device)
                if run >= warmup:
                    totals.append((end - start) * 1e3)
                    instance_parts.append((end - record["start"].get("mask_roi_pool", t_heads)) * 1e3)
                found = len(detections[0]["boxes"])
        result["instances"].append(found)
        result["after_backbone_ms"].append(statistics.median(totals))
        result["per_instance_ms"].append(statistics.median(instance_parts))
    return result


@torch.no_grad()
def yolact_cost(model, image, counts: Sequence[int] = INSTANCE_COUNTS, repeats: int = 3,
                warmup: int = 1) -> dict:
    """YOLACT's cost after the network as the number of output instances N grows.

    The preprocessing and network (backbone, FPN, protonet, head) run ``warmup + 1`` times (the last is
    "fixed_ms"); then for each N
    :meth:`Yolact.detect` runs with ``score_threshold=0, conf_threshold=0, top_k=N`` (NMS +
    assembly + crop + upsample + threshold), and separately the per-instance part alone
    (:func:`~yolact_edu.ops.assemble.reassemble` of the N kept detections: assembly, crop, upsample,
    threshold). Same keys as :func:`maskrcnn_cost`.
    """
    model.eval()
    device = model_device(model)
    height, width = int(image.shape[0]), int(image.shape[1])
    for _ in range(warmup + 1):    # the last run is timed
        start = clock(device)
        raw = model(model.preprocess(image))
        fixed_ms = (clock(device) - start) * 1e3
    result = {"fixed_ms": fixed_ms, "counts": list(counts), "instances": [],
              "after_backbone_ms": [], "per_instance_ms": []}
    for count in counts:
        def run_detect(count=count):
            return model.detect(raw, (height, width), score_threshold=0.0, conf_threshold=0.0, top_k=int(count))[0]

        detections = run_detect()
        total = time_call(run_detect, repeats, warmup, device)

        part = time_call(lambda detections=detections: reassemble(detections), repeats, warmup, device)
        result["instances"].append(len(detections))
        result["after_backbone_ms"].append(total["median_ms"])
        result["per_instance_ms"].append(part["median_ms"])
    return result


def mask_head_macs(model, roi_size: int = 14) -> int:
    """Multiply-adds Mask R-CNN's mask branch spends on ONE detection: every conv and deconv of
    ``roi_heads.mask_head`` and ``mask_predictor``, measured on a [1,256,roi_size,roi_size]
    RoIAlign output (torchvision's default: 4 x 3x3 conv 256->256 at 14x14, a 2x2 deconv to
    28x28, a 1x1 conv to 91 classes: ~0.53e9)."""
    heads = model.roi_heads
    total = 0

    def count(module, inputs, output):
        nonlocal total
        weight = module.weight
        if isinstance(module, torch.nn.ConvTranspose2d):
            # each input element is spread over out_channels x kh x kw outputs
            total += inputs[0].numel() * weight.shape[1] * weight.shape[2] * weight.shape[3]
        else:
            total += output.numel() * weight.shape[1] * weight.shape[2] * weight.shape[3]

    convs = [m for m in list(heads.mask_head.modules()) + list(heads.mask_predictor.modules())
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(count) for m in convs]
    try:
        device = next(heads.parameters()).device
        with torch.no_grad():
            channels = convs[0].weight.shape[1]
            heads.mask_predictor(heads.mask_head(torch.zeros(1, channels, roi_size, roi_size, device=device)))
    finally:
        for handle in handles:
            handle.remove()
    return int(total)


def assembly_macs(proto_shape) -> int:
    """Multiply-adds YOLACT spends on ONE detection's mask: prototypes [Hp,Wp,k] times its k
    coefficients, Hp * Wp * k (138*138*32 = 609,408 for a 550 input; 73,728 at 192)."""
    height, width, k = (int(v) for v in proto_shape)
    return height * width * k


@torch.no_grad()
def inference_time(model, image, instances: int = 20, repeats: int = 5, warmup: int = 1) -> dict:
    """Whole-image inference time of a Mask R-CNN, a :class:`~yolact_edu.Yolact` or one of the
    relatives (``forced_output_count``) on one HxWx3 uint8 image, with the output fixed at
    ``instances`` detections (score thresholds 0), so all pay for the same number of masks
    whatever their weights.

    Returns :func:`time_call`'s dict plus "instances" (detections actually returned) and
    "input" (the network input shape, e.g. [1,3,800,1088] or [1,3,550,550]).
    """
    model.eval()
    device = model_device(model)
    outputs = []
    if hasattr(model, "predict") and (hasattr(model, "forced_output_count") or hasattr(model, "roi_heads")):
        # maskrcnn_tiny and the relatives: image in, Detections out, their own way to force the count
        forced = (model.forced_output_count(instances) if hasattr(model, "forced_output_count")
                  else fixed_output_count(model, instances))
        with forced:
            timing = time_call(lambda: outputs.append(model.predict(image)), repeats, warmup, device)
        found = len(outputs[-1])
        shape = list(model.preprocess(image).shape)
    elif hasattr(model, "roi_heads"):
        x = model_input(model, image)
        with fixed_output_count(model, instances):
            timing = time_call(lambda: outputs.append(model([x])[0]), repeats, warmup, device)
        found = len(outputs[-1]["boxes"])
        shape = list(model.transform([x])[0].tensors.shape)
    else:
        def predict():
            outputs.append(model.predict(image, score_threshold=0.0, conf_threshold=0.0, top_k=int(instances)))

        timing = time_call(predict, repeats, warmup, device)
        found = len(outputs[-1])
        shape = list(model.preprocess(image).shape)
    return {**timing, "instances": found, "input": shape}


def plot_cost_versus_instances(costs: dict[str, dict], axes=None):
    """Two panels from ``{name: maskrcnn_cost(...) or yolact_cost(...)}``: everything after the
    backbone, and the per-instance part alone, in ms against the number of instances N.
    Returns the two Axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, cost in costs.items():
        axes[0].plot(cost["instances"], cost["after_backbone_ms"], marker="o", label=name)
        axes[1].plot(cost["instances"], cost["per_instance_ms"], marker="o", label=name)
    axes[0].set_title("after the backbone (heads, NMS, masks, paste)", fontsize=10)
    axes[1].set_title("per-instance part only (mask branch / assembly + paste)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("instances N")
        ax.set_ylabel("ms (median)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def format_table(rows: Sequence[Sequence], header: Sequence[str], decimals: int = 1) -> str:
    """Rows of values -> a fixed-width text table (numeric columns right-aligned, floats to
    ``decimals`` places, None as an empty cell)."""
    def cell(value):
        return "" if value is None else f"{value:.{decimals}f}" if isinstance(value, float) else str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in text)) for i, h in enumerate(header)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(h).rjust(w) if num else str(h).ljust(w) for h, w, num in zip(header, widths, numeric))]
    lines.append("  ".join("-" * w for w in widths))
    for row in text:
        lines.append("  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric)))
    return "\n".join(lines)


__all__ = ["INSTANCE_COUNTS", "time_call", "fixed_output_count", "maskrcnn_cost", "yolact_cost", "mask_head_macs",
           "assembly_macs", "inference_time", "plot_cost_versus_instances", "format_table"]
