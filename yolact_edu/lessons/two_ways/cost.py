"""What each extra instance costs (notebook 01: "Cost versus the number of instances" and
"Whole-image timing").

Much of both models' work is in stages whose input does not contain the number N of output
instances: the backbone and FPN, and for YOLACT the protonet and prediction head, for Mask
R-CNN the RPN and the box head over its proposals. Then each has its own *mask step*, run for
the N detections: Mask R-CNN a 14x14 RoIAlign and a small CNN (4 x 3x3 conv, a deconvolution, a
1x1 conv) per detection (~0.5 G multiply-adds each at 256 channels, :func:`mask_head_macs`);
YOLACT one row of sigma(P C^T) per detection (Hp*Wp*k multiply-adds, :func:`assembly_macs`) and a
crop. Last, both bring N masks to image size: Mask R-CNN pastes each 28x28 mask into its box,
YOLACT upsamples and thresholds its prototype-resolution masks.

:func:`stage_costs` times these four stages of each model against N; :class:`StageCosts` fits
each stage's slope (ms per extra instance); :func:`cost_growth_markdown` states what was measured
as sentences. Times are wall-clock medians on whatever device holds the model (CPU or CUDA, which
is waited for before each clock read); on a shared or busy CPU they are noisy, so read the
trend, not the third digit.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.models.detection.roi_heads import maskrcnn_inference

from ...bench.timing import clock, machine_name, repeat_seconds
from ...model.segmenter import InstanceSegmenter, image_size
from ...relatives.maskrcnn import fixed_output_count
from ...viz.palette import model_color
from .maskrcnn import model_device, model_input

INSTANCE_COUNTS = (1, 5, 10, 25, 50, 100)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device="cpu") -> dict:
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed (waiting for ``device``'s
    queued GPU work before reading the clock).

    Returns {"median_ms", "min_ms", "times_ms" (list), "repeats"}."""
    times = [seconds * 1e3 for seconds in repeat_seconds(fn, repeats, warmup, device)]
    return {"median_ms": statistics.median(times), "min_ms": min(times), "times_ms": times, "repeats": repeats}


# -- cost of each stage against the number of instances -----------------------------------------
FIXED, MASK_STEP, TO_IMAGE = "independent of N", "mask step", "to image size"
ROLES = (FIXED, MASK_STEP, TO_IMAGE)

# Each model's four stages in pipeline order, with what they do with N. The FIXED ones never see
# N: their input is the image (and, for the box head and NMS, the proposals), N only cuts their
# output. The mask step is each model's own per-instance work; bringing N masks to image size is
# per-instance work both pay.
MASKRCNN_STAGES = {"resize + backbone + FPN": FIXED, "RPN + box head + NMS": FIXED,
                   "RoIAlign 14x14 + mask head": MASK_STEP, "paste 28x28 masks + threshold": TO_IMAGE}
YOLACT_STAGES = {"resize + backbone, FPN, protonet, head": FIXED, "decode + NMS": FIXED,
                 "assembly σ(P Cᵀ) + crop": MASK_STEP, "upsample + threshold": TO_IMAGE}


def least_squares_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The slope of the least-squares line through the points (x, y), e.g. ms per extra instance
    over the measured N. ValueError with fewer than two distinct x."""
    x_values, y_values = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(set(x_values.tolist())) < 2:
        raise ValueError(f"a slope needs at least two distinct x values, got {x_values.tolist()}")
    centred = x_values - x_values.mean()
    return float((centred * (y_values - y_values.mean())).sum() / (centred ** 2).sum())


@dataclass
class StageCosts:
    """One model's stages timed against the number of instances N (:func:`stage_costs`).

    counts: the N asked for; instances: the N actually returned (fewer only when NMS left fewer
    candidates); stages_ms: {stage: median ms at each count}, in pipeline order; roles: {stage:
    FIXED | MASK_STEP | TO_IMAGE}; family: "Mask R-CNN" or "YOLACT"; device: where it ran
    (:func:`~yolact_edu.bench.timing.machine_name`);
    input: the network input shape [1,3,H,W].
    """

    name: str
    family: str
    device: str
    input: list[int]
    counts: list[int]
    instances: list[int]
    stages_ms: dict[str, list[float]]
    roles: dict[str, str]
    repeats: int = 1

    def slope(self, stage: str) -> float:
        """ms per extra instance of ``stage``: least squares over the measured N."""
        return least_squares_slope(self.instances, self.stages_ms[stage])

    @property
    def slopes(self) -> dict[str, float]:
        return {stage: self.slope(stage) for stage in self.stages_ms}

    def stages_of(self, role: str) -> list[str]:
        return [stage for stage, r in self.roles.items() if r == role]

    def role_ms(self, role: str) -> list[float]:
        """The summed median ms of the stages of ``role`` at each count."""
        return [sum(self.stages_ms[s][i] for s in self.stages_of(role)) for i in range(len(self.counts))]

    def role_slope(self, role: str) -> float:
        """ms per extra instance of the stages of ``role`` together (a sum of slopes: the fit is linear)."""
        return sum(self.slope(stage) for stage in self.stages_of(role))

    @property
    def total_ms(self) -> list[float]:
        return [sum(times[i] for times in self.stages_ms.values()) for i in range(len(self.counts))]

    @property
    def total_slope(self) -> float:
        return sum(self.slopes.values())

    def rows(self) -> list[list]:
        """Table rows: model, stage, role, ms at the fewest and the most instances, ms per extra instance."""
        return [[self.name, stage, self.roles[stage], times[0], times[-1], self.slope(stage)]
                for stage, times in self.stages_ms.items()] + \
               [[self.name, "total", "", self.total_ms[0], self.total_ms[-1], self.total_slope]]

    def header(self) -> list[str]:
        return ["model", "stage", "depends on N as", f"ms @ N={self.instances[0]}",
                f"ms @ N={self.instances[-1]}", "ms per extra instance (fit)"]


def maskrcnn_stage_run(model, x: torch.Tensor, original_size: tuple[int, int], device) -> tuple[dict[str, float], dict]:
    """One image through a torchvision Mask R-CNN as ``GeneralizedRCNN.forward`` runs it in eval
    mode (the calls of ``RoIHeads.forward``, split where the mask branch starts), timing its four
    stages (seconds, :data:`MASKRCNN_STAGES`). The model's ``score_thresh`` /
    ``detections_per_img`` decide N.

    x: [3,h,w] as :func:`~yolact_edu.lessons.two_ways.maskrcnn.model_input` gives it;
    original_size: (H, W) of the image. Returns (times, result): result as torchvision's
    ("boxes" [N,4] image px, "scores", "labels", "masks" [N,H,W] bool, the pasted mask > 0.5)."""
    heads = model.roi_heads
    start = clock(device)
    images, _ = model.transform([x])
    features = model.backbone(images.tensors)
    t_backbone = clock(device)
    sizes = images.image_sizes
    proposals, _ = model.rpn(images, features)
    box_features = heads.box_head(heads.box_roi_pool(features, proposals, sizes))
    class_logits, box_regression = heads.box_predictor(box_features)
    boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
    t_boxes = clock(device)
    # the per-detection CNN: [N,C,14,14] -> [N,classes,28,28]; sigmoid of each detection's class
    mask_logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, boxes, sizes)))
    probs = maskrcnn_inference(mask_logits, labels)
    t_masks = clock(device)
    found = [{"boxes": b, "scores": s, "labels": c, "masks": m} for b, s, c, m in zip(boxes, scores, labels, probs)]
    found = model.transform.postprocess(found, sizes, [original_size])       # boxes rescaled, masks pasted
    found[0]["masks"] = found[0]["masks"][:, 0] > 0.5
    t_paste = clock(device)
    names = list(MASKRCNN_STAGES)
    times = dict(zip(names, (t_backbone - start, t_boxes - t_backbone, t_masks - t_boxes, t_paste - t_masks)))
    return times, found[0]


def _yolact_run(model, image, count: int, device) -> tuple[dict[str, float], int]:
    """One image through a YOLACT with the output forced to ``count`` detections (score and
    confidence thresholds 0, ``top_k=count``), timing its four stages (seconds); the last three
    are :meth:`Yolact.detect`'s own stage timers."""
    timings: dict[str, float] = {}
    start = clock(device)
    raw = model.network(model.preprocess(image))
    network = clock(device) - start
    found = model.detect(raw, model.image_size(image), score_threshold=0.0, conf_threshold=0.0, top_k=int(count),
                         timings=timings)[0]
    names = list(YOLACT_STAGES)
    times = dict(zip(names, (network, timings.get("decode + NMS", 0.0), timings.get("assembly + crop", 0.0),
                             timings.get("upsample + threshold", 0.0))))
    return times, len(found)


@torch.no_grad()
def stage_costs(models: Mapping[str, torch.nn.Module], image, counts: Sequence[int] = INSTANCE_COUNTS,
                repeats: int = 3, warmup: int = 1) -> dict[str, StageCosts]:
    """Time each model's four stages on one HxWx3 uint8 ``image`` with the output forced to N
    instances, for every N in ``counts``.

    models: {name: model}, each a torchvision Mask R-CNN (the R50-FPN of :func:`maskrcnn_model`,
    or ``maskrcnn_tiny``; forced with ``score_thresh=0, detections_per_img=N``, restored after) or a
    :class:`~yolact_edu.Yolact` (``score_threshold=0, conf_threshold=0, top_k=N``). Each runs on
    its own device (CPU or CUDA). The runs go count by count, the models interleaved, so a
    machine slowing down mid-way hurts all alike; every stage is the median of ``repeats`` runs
    after ``warmup`` untimed ones at that N (and with ``warmup``, each model first runs once
    untimed at the largest N, to pay its one-off first-call costs outside the clock).

    Returns {name: :class:`StageCosts`}; stage names and roles in :data:`MASKRCNN_STAGES` and
    :data:`YOLACT_STAGES`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    measured = {}
    for name, model in models.items():
        model.eval()
        maskrcnn = hasattr(model, "roi_heads")
        stages = MASKRCNN_STAGES if maskrcnn else YOLACT_STAGES
        device = model_device(model)
        shape = list(model.transform([model_input(model, image)])[0].tensors.shape) if maskrcnn else \
            list(model.preprocess(image).shape)
        measured[name] = StageCosts(name=name, family="Mask R-CNN" if maskrcnn else "YOLACT",
                                    device=machine_name(device), input=shape,
                                    counts=[int(c) for c in counts], instances=[],
                                    stages_ms={stage: [] for stage in stages}, roles=dict(stages), repeats=repeats)
    if warmup:
        # a model's very first call pays one-off costs (allocations, kernel selection, lazy init)
        # far above a warm-up at a new N; spend it here, at the largest count, untimed
        for name, model in models.items():
            if measured[name].family == "Mask R-CNN":
                with fixed_output_count(model, max(counts)):
                    maskrcnn_stage_run(model, model_input(model, image), image_size(image), model_device(model))
            else:
                _yolact_run(model, image, max(counts), model_device(model))
    for count in counts:
        for name, model in models.items():                 # interleaved: drift hits every model alike
            cost, device = measured[name], model_device(model)
            runs, found = [], 0
            if cost.family == "Mask R-CNN":
                x, original_size = model_input(model, image), image_size(image)
                with fixed_output_count(model, count):
                    for _ in range(warmup + repeats):
                        times, result = maskrcnn_stage_run(model, x, original_size, device)
                        runs.append(times)
                        found = len(result["masks"])
            else:
                for _ in range(warmup + repeats):
                    times, found = _yolact_run(model, image, count, device)
                    runs.append(times)
            cost.instances.append(found)
            for stage in cost.stages_ms:
                cost.stages_ms[stage].append(statistics.median(run[stage] for run in runs[warmup:]) * 1e3)
    return measured


def mask_step_ratio(maskrcnn: StageCosts, yolact: StageCosts) -> float:
    """How many times more one extra instance costs Mask R-CNN's mask step (RoIAlign + mask head)
    than YOLACT's (assembly + crop), from the measured slopes; inf when YOLACT's slope is not
    positive (no growth measurable)."""
    yolact_slope = yolact.role_slope(MASK_STEP)
    return maskrcnn.role_slope(MASK_STEP) / yolact_slope if yolact_slope > 0 else math.inf


# a move of the N-independent stages this large (a share of their time) is called out as noise
NOISE_SHARE = 0.05


def _per_instance(ms: float) -> str:
    return f"{ms:.3f} ms" if abs(ms) < 0.1 else f"{ms:.2f} ms" if abs(ms) < 10 else f"{ms:.1f} ms"


def _growth_sources(cost: StageCosts) -> str:
    """Where one model's growth with N comes from: its two stages that take N, summed and split."""
    step, to_image = cost.role_slope(MASK_STEP), cost.role_slope(TO_IMAGE)
    total = step + to_image
    if total <= 0:
        return f"{cost.name} {_per_instance(total)} (no growth measurable here)"
    return (f"{cost.name} {_per_instance(total)}, {step / total:.0%} of it in its {MASK_STEP} and "
            f"{to_image / total:.0%} in bringing masks {TO_IMAGE}")


def cost_growth_markdown(maskrcnn: StageCosts, yolact: StageCosts) -> str:
    """What :func:`stage_costs` measured for one Mask R-CNN and one YOLACT, as Markdown bullets
    generated from the numbers (nothing typed): the stages that do not take N and how much they
    moved anyway (timing noise moves them too), each model's mask step per extra instance and their
    ratio, what bringing masks to image size costs per instance, and the sum of the two stages
    that take N, split between them: where each total's growth comes from."""
    low, high = maskrcnn.instances[0], maskrcnn.instances[-1]

    def moved(cost: StageCosts) -> str:
        times = cost.role_ms(FIXED)
        change = times[-1] - times[0]
        return (f"{' and '.join(cost.stages_of(FIXED))} of {cost.name} ({times[0]:.1f} → {times[-1]:.1f} ms, "
                f"{change / times[0]:+.0%})")

    m_step, y_step = maskrcnn.role_slope(MASK_STEP), yolact.role_slope(MASK_STEP)
    ratio = mask_step_ratio(maskrcnn, yolact)
    compared = (f"{ratio:.0f}× as much" if ratio >= 10 else f"{ratio:.1f}× as much") if math.isfinite(ratio) \
        else "no growth of YOLACT's assembly was measurable here"
    def drift(cost: StageCosts) -> float:
        times = cost.role_ms(FIXED)
        return abs(times[-1] - times[0]) / times[0]

    # these stages do the same work at every N (by construction), so a move is the machine's noise;
    # say so whenever it is large enough for a learner to wonder
    noisy = max(drift(maskrcnn), drift(yolact)) >= NOISE_SHARE
    noise = (" Their work is the same at every N, so a change this size is timing noise on this machine "
             "(other jobs, clock speed), not a cost of N.") if noisy else ""
    lines = [
        f"**{maskrcnn.name} and {yolact.name}**, N = {low} … {high}, on {maskrcnn.device}:",
        f"- **do not take N** (the image in, N only cuts their output): {moved(maskrcnn)}; {moved(yolact)}.{noise}",
        f"- **mask step**, per extra instance: {maskrcnn.name}'s {' + '.join(maskrcnn.stages_of(MASK_STEP))} "
        f"{_per_instance(m_step)}, {yolact.name}'s {' + '.join(yolact.stages_of(MASK_STEP))} "
        f"{_per_instance(y_step)}: {compared}.",
        f"- **to image size**, per extra instance (both pay it): {maskrcnn.name} "
        f"{_per_instance(maskrcnn.role_slope(TO_IMAGE))} ({' + '.join(maskrcnn.stages_of(TO_IMAGE))}), "
        f"{yolact.name} {_per_instance(yolact.role_slope(TO_IMAGE))} ({' + '.join(yolact.stages_of(TO_IMAGE))}).",
        f"- **in all**, the two stages that take N add per extra instance: {_growth_sources(maskrcnn)}; "
        f"{_growth_sources(yolact)}.",
    ]
    return "\n".join(lines)


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
    relatives (each family's ``forced_output_count``) on one HxWx3 uint8 image, with the output fixed at
    ``instances`` detections (score thresholds 0), so all pay for the same number of masks
    whatever their weights.

    Returns :func:`time_call`'s dict plus "instances" (detections actually returned) and
    "input" (the network input shape, e.g. [1,3,800,1088] or [1,3,550,550]).
    """
    model.eval()
    device = model_device(model)
    outputs = []
    if isinstance(model, InstanceSegmenter):
        # every family of the package: image in, Detections out, its own way to force the count
        with model.forced_output_count(instances):
            timing = time_call(lambda: outputs.append(model.predict(image, score_threshold=0.0)), repeats, warmup,
                               device)
        found = len(outputs[-1])
        shape = list(model.preprocess(image).shape)
    elif hasattr(model, "roi_heads"):             # torchvision's own Mask R-CNN (R50-FPN)
        x = model_input(model, image)
        with fixed_output_count(model, instances):
            timing = time_call(lambda: outputs.append(model([x])[0]), repeats, warmup, device)
        found = len(outputs[-1]["boxes"])
        shape = list(model.transform([x])[0].tensors.shape)
    else:
        raise TypeError(f"inference_time times the package's models and torchvision's Mask R-CNN, not a "
                        f"{type(model).__name__}")
    return {**timing, "instances": found, "input": shape}


def whole_image_markdown(timed: Mapping[str, dict], pairs: Sequence[tuple[str, str]]) -> str:
    """One Markdown line per (fast, slow) pair of :func:`inference_time` results in ``timed``:
    the share of the slow model's time the fast one needs on this machine, images per second,
    and how many more input pixels the slow one processes. Generated from the numbers."""
    lines = []
    for fast, slow in pairs:
        a, b = timed[fast], timed[slow]
        pixels = (b["input"][-2] * b["input"][-1]) / (a["input"][-2] * a["input"][-1])
        lines.append(f"- {fast} needs {a['median_ms'] / b['median_ms']:.0%} of {slow}'s time here "
                     f"({1000 / a['median_ms']:.1f} against {1000 / b['median_ms']:.1f} images/s); "
                     f"{slow}'s input has {pixels:.1f}× the pixels of {fast}'s.")
    return "\n".join(lines)


def plot_cost_versus_instances(groups: Mapping[str, Mapping[str, StageCosts]], figsize=None):
    """Per stage, ms against the number of instances N: one row per group of models (e.g. the
    paper's scale and the tiny models), one column per role (the stages that do not take N, each
    model's mask step, bringing the masks to image size). Each line is one stage of one model, in
    the model's colour (:func:`~yolact_edu.viz.palette.model_color`); one legend per row, beside
    it, names model, stage and fitted slope. Each panel's y-range fits its own data; the mask-step
    panel is on a log scale, so a step that costs 100x less than the other model's still shows.
    Returns the Figure."""
    import matplotlib.pyplot as plt

    rows = len(groups)
    fig, axes = plt.subplots(rows, len(ROLES), figsize=figsize or (18, 3.8 * rows), squeeze=False,
                             layout="constrained")
    for row, (title, costs) in enumerate(groups.items()):
        handles = []
        for column, role in enumerate(ROLES):
            ax = axes[row, column]
            values = []
            for cost in costs.values():
                for style, stage in zip(("-", "--", ":"), cost.stages_of(role)):
                    handles += ax.plot(cost.instances, cost.stages_ms[stage], style, marker="o", markersize=4,
                                       color=model_color(cost.name),
                                       label=f"{cost.name}: {stage} ({cost.slope(stage):+.3g} ms/inst.)")
                    values += list(cost.stages_ms[stage])
            # a log axis for the mask step: the two models' steps differ by orders of magnitude
            logarithmic = role == MASK_STEP and values and min(values) > 0
            if logarithmic:
                ax.set_yscale("log")
            elif values:
                ax.set_ylim(0, max(values) * 1.08)
            ax.set_title(f"{title}: {role}" + (" (log scale)" if logarithmic else ""), fontsize=10)
            ax.set_xlabel("instances N (forced)")
            ax.set_ylabel("ms (median)")
            ax.grid(True, alpha=0.3, which="both" if logarithmic else "major")
        axes[row, -1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                             title=title, title_fontsize=9, frameon=False)
    return fig


def stage_table(costs: Mapping[str, StageCosts]) -> str:
    """Every model's stages as one text table: ms at the fewest and the most instances, and the
    fitted ms per extra instance (a slope, not a total)."""
    first = next(iter(costs.values()))
    rows = [row for cost in costs.values() for row in cost.rows()]
    return format_table(rows, first.header(), decimals=2)


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


__all__ = ["INSTANCE_COUNTS", "time_call", "FIXED", "MASK_STEP", "TO_IMAGE", "ROLES",
           "MASKRCNN_STAGES", "YOLACT_STAGES", "least_squares_slope", "StageCosts", "maskrcnn_stage_run",
           "stage_costs", "mask_step_ratio", "cost_growth_markdown", "mask_head_macs", "assembly_macs",
           "inference_time", "whole_image_markdown", "plot_cost_versus_instances", "stage_table", "format_table"]
