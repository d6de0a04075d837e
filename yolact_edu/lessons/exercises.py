"""Checks for the notebooks' "Try it" exercises: each takes the learner's answer (or the widget
they moved) and returns a :class:`Check`, shown as one line: ✓ and why, or ✗ and a hint.

The right answer is always computed here from the same objects the notebook holds (its model,
its measurements, its widgets), never typed in, so it holds on every machine and model.

    >>> check_prior_count(model, 2307)
    ✓ right: yolact_tiny places 2307 priors on a 256-px image ...
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..ops.anchors import fpn_sizes, num_priors
from ..ops.assemble import assemble_masks
from ..ops.boxes import crop
from ..ops.mask_iou import paired_mask_iou
from .nms_comparison import compare_nms


@dataclass(frozen=True)
class Check:
    """The verdict on one answer; truthy when right."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"{'✓ right' if self.passed else '✗ not yet'}: {self.message}"


def run_learner_code(fn, *args) -> tuple[object, str | None]:
    """The learner's ``fn`` on ``args``, tensors cloned (an in-place edit must not touch the inputs):
    ``(result, None)``, or ``(None, "TypeError: ...")`` when it raised. Their code may fail in any
    way; a check reports that as a hint and never raises."""
    try:
        return fn(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args)), None
    except Exception as error:
        return None, f"{type(error).__name__}: {error}"


def _unanswered(what: str) -> Check:
    return Check(False, f"set {what} in the cell above, then run this cell again")


# -- notebook 01 ---------------------------------------------------------------------------------
def counts_at_most_share(curves: Mapping[str, Mapping], fast: str, slow: str, share: float) -> list[int]:
    """Every forced instance count N (in measured order) at which ``fast``'s median time is at
    most ``share`` of ``slow``'s, on the measured ``curves`` ({name: {"counts", "median_ms"}}, as
    ``latency_curve`` returns them): a set, not a threshold, since a measured ratio need not fall
    steadily with N; empty if at none."""
    return [int(n) for n, a, b in zip(curves[fast]["counts"], curves[fast]["median_ms"], curves[slow]["median_ms"])
            if a <= share * b]


def check_cost_share(curves: Mapping[str, Mapping], answer, *, fast: str = "YOLACT tiny",
                     slow: str = "Mask R-CNN tiny", share: float = 0.6) -> Check:
    """Notebook 01: every N (of the slider's) at which YOLACT needs at most ``share`` of Mask
    R-CNN's time on this machine, as a set (``set()`` when at none). Holds for any measured
    curve: each N is judged on its own ratio."""
    if answer is ...:
        return _unanswered("`answer` (a set of instance counts such as {25, 100}, or set() for none)")
    counts = [int(n) for n in curves[fast]["counts"]]
    ratios = {int(n): a / b for n, a, b in zip(counts, curves[fast]["median_ms"], curves[slow]["median_ms"])}
    truth = set(counts_at_most_share(curves, fast, slow, share))
    if answer is None:
        answer = set()
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return Check(False, f"answer with every N at which it holds, as a set such as {{{answer}, ...}}: "
                            "the share need not fall steadily as N grows, so one N cannot stand for the rest")
    try:
        given = {int(n) for n in answer}
    except (TypeError, ValueError):
        return Check(False, f"answer with a set of instance counts such as {{{counts[-1]}}}, or set() for none")
    unknown = sorted(given - set(counts))
    if unknown:
        return Check(False, f"N = {unknown} {'was' if len(unknown) == 1 else 'were'} not measured; "
                            f"the slider's counts are {counts}")
    if given == truth:
        where = f"at N = {sorted(truth)}" if truth else "at none of the measured N"
        seen = ", ".join(f"N={n}: {r:.0%}" for n, r in ratios.items())
        return Check(True, f"{fast} needs at most {share:.0%} of {slow}'s time {where} ({seen})")
    hints = [f"at N = {n} it needs {ratios[n]:.0%}, more than {share:.0%}" for n in sorted(given - truth)]
    hints += [f"you left out N = {n}" for n in sorted(truth - given)]
    return Check(False, "; ".join(hints) + ". Read the share at every N on the slider (the summary line "
                                           "gives it as 'takes ...x its time').")


def check_cell_pixels(box_size: tuple[float, float], image_size: tuple[int, int], proto_size: tuple[int, int],
                      answer_roi, answer_proto) -> Check:
    """Notebook 01: how many image pixels one cell covers, in Mask R-CNN's 28x28 mask of a box of
    ``box_size`` (w, h) pixels, and in YOLACT's prototype grid ``proto_size`` (Hp, Wp) stretched
    over an image of ``image_size`` (H, W). Within 2 %."""
    if answer_roi is ... or answer_proto is ...:
        return _unanswered("both `roi_cell` and `proto_cell`")
    roi = box_size[0] * box_size[1] / 28**2
    proto = (image_size[0] / proto_size[0]) * (image_size[1] / proto_size[1])
    ok = [bool(np.isclose(float(answer_roi), roi, rtol=0.02)), bool(np.isclose(float(answer_proto), proto, rtol=0.02))]
    if all(ok):
        finer = "Mask R-CNN's" if roi < proto else "YOLACT's"
        return Check(True, f"a 28x28 cell covers {roi:.1f} px of this box, a prototype cell {proto:.1f} px: "
                           f"{finer} grid is the finer one for this object")
    hints = []
    if not ok[0]:
        hints.append("roi_cell: the 28x28 grid is stretched over the box, (box width x box height) / 28²")
    if not ok[1]:
        hints.append("proto_cell: the prototype grid is stretched over the whole image, (H / Hp) x (W / Wp)")
    return Check(False, "; ".join(hints))


# -- notebook 02 ---------------------------------------------------------------------------------
def explorer_masks(explorer, *, crop: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The explorer's detection's mask at prototype resolution [Hp,Wp] bool with the learner's
    current coefficients and switched-off prototypes, and the same detection's mask as the
    network made it (its own coefficients, every prototype, cropped)."""
    index = explorer.detection.value
    box = explorer.detections.boxes_rel[index][None]
    current = torch.from_numpy(np.where(explorer.enabled, explorer.coefs, 0.0).astype(np.float32))[None]
    own = explorer.detections.coefs[index][None].float()
    threshold = float(explorer.mask_threshold.value)
    return (assemble_masks(explorer.proto, current, box, crop_masks=crop)[0] > threshold,
            assemble_masks(explorer.proto, own, box, crop_masks=True)[0] > 0.5)


def crop_region(box_rel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[Hp,Wp] bool: the cells the crop keeps for a relative box [4] (its one-cell margin
    included), by the crop itself (:func:`yolact_edu.ops.boxes.crop`)."""
    return crop(torch.ones(*size, 1), box_rel[None])[..., 0] > 0


def outside_box(mask: torch.Tensor, box_rel: torch.Tensor) -> int:
    """Cells of ``mask`` [Hp,Wp] that the crop to the relative box would remove."""
    return int((mask & ~crop_region(box_rel, tuple(mask.shape))).sum())


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(paired_mask_iou(a[None], b[None])[0])


def check_isolated(explorer, *, min_iou: float = 0.6, max_outside: float = 0.1) -> Check:
    """Notebook 02: with the crop switched off, the learner switches prototypes off until the
    mask is the object alone: IoU >= ``min_iou`` with the network's own (cropped) mask and at most
    ``max_outside`` of it outside the box."""
    if explorer.crop.value:
        return Check(False, "untick 'crop to the box' first: the exercise is to do the crop's job without it")
    if explorer.enabled.all():
        return Check(False, "every prototype is still on: untick the P boxes of prototypes that light up "
                            "outside your object")
    mask, reference = explorer_masks(explorer, crop=False)
    box = explorer.detections.boxes_rel[explorer.detection.value]
    area = int(mask.sum())
    iou = _iou(mask, reference)
    outside = outside_box(mask, box) / max(1, area)
    off = int((~explorer.enabled).sum())
    if iou >= min_iou and outside <= max_outside:
        return Check(True, f"{off} prototypes off, no crop: the mask overlaps the network's by IoU {iou:.2f} "
                           f"and {outside:.0%} of it lies outside the box")
    if outside > max_outside:
        return Check(False, f"{outside:.0%} of the mask is still outside the box: switch off the prototypes "
                            "that are bright there")
    return Check(False, f"the mask now misses the object (IoU {iou:.2f} < {min_iou}): switch a prototype "
                        "that lights up on the object back on")


def isolate_without_crop(explorer, *, min_iou: float = 0.6, max_outside: float = 0.1) -> list[int]:
    """A solution to :func:`check_isolated`: with the crop off, greedily switch off the prototype
    whose removal leaves the fewest mask cells outside the box while the IoU with the network's
    mask stays >= ``min_iou``; stop once at most ``max_outside`` lies outside. Sets the explorer's
    checkboxes; returns the prototypes switched off."""
    explorer.crop.value = False
    box = explorer.detections.boxes_rel[explorer.detection.value]
    off = []
    for _ in range(explorer.k - 1):
        mask, reference = explorer_masks(explorer, crop=False)
        if off and outside_box(mask, box) <= max_outside * max(1, int(mask.sum())):
            break
        best, best_outside = None, None
        for i in np.flatnonzero(explorer.enabled):
            explorer.enabled[i] = False
            trial, _ = explorer_masks(explorer, crop=False)
            explorer.enabled[i] = True
            iou = _iou(trial, reference)
            if iou < min_iou:
                continue
            outside = outside_box(trial, box)
            if best_outside is None or outside < best_outside:
                best, best_outside = int(i), outside
        if best is None:
            break
        explorer.proto_toggles[best].value = False         # the checkbox, so the picture follows
        off.append(best)
    return off


def most_subtracted(explorer) -> int:
    """The prototype whose contribution c_i P_i, summed inside the detection's box, is the most
    negative with the network's own coefficients: the one it subtracts most to carve its mask."""
    index = explorer.detection.value
    own = explorer.detections.coefs[index].float()
    inside = crop_region(explorer.detections.boxes_rel[index], tuple(explorer.proto.shape[:2]))
    return int((own * explorer.proto.float()[inside].sum(0)).argmin())


def check_flip_grows(explorer) -> Check:
    """Notebook 02: flip the sign of the coefficient of the prototype the detection subtracts most
    (:func:`most_subtracted`) and the mask grows."""
    index = explorer.detection.value
    own = explorer.detections.coefs[index].numpy()
    target = most_subtracted(explorer)
    flipped = explorer.coefs[target] * own[target] < 0 and abs(explorer.coefs[target]) >= 0.5 * abs(own[target])
    if not flipped:
        return Check(False, "in panel 4, find the contribution c_i P_i that is most negative (bluest) inside the "
                            "box, and move that coefficient's slider to the other side of zero")
    after, before = explorer_masks(explorer, crop=True)
    if int(after.sum()) > int(before.sum()):
        return Check(True, f"c{target}: {own[target]:+.2f} -> {explorer.coefs[target]:+.2f}, the mask grew from "
                           f"{int(before.sum())} to {int(after.sum())} prototype cells: P{target} was being "
                           "subtracted to carve the object out")
    return Check(False, f"c{target} is flipped but the mask did not grow: press 'reset', then flip only c{target}")


# -- notebook 03 ---------------------------------------------------------------------------------
def nms_differ_at(explorer, threshold: float) -> bool:
    """Whether standard and Fast NMS keep different boxes (above the explorer's min-score slider)
    at this IoU threshold, with the explorer's other settings."""
    min_score = explorer.score_slider.value
    comparison = compare_nms(explorer.candidates.boxes, explorer.candidates.scores, ("standard", "fast"),
                             float(threshold), **explorer.settings)
    return bool(comparison.only_in("standard", "fast", min_score) or comparison.only_in("fast", "standard", min_score))


def _slider_steps_down(explorer) -> list[float]:
    """The IoU slider's values from the explorer's starting threshold down to the slider's minimum."""
    slider = explorer.iou_slider
    steps = np.arange(slider.min, explorer.start_threshold + slider.step / 2, slider.step)
    return [round(float(t), 2) for t in steps[::-1]]


def first_agreement_below(explorer) -> float | None:
    """Moving the NMS explorer's IoU slider down from its starting threshold (the config's), one step at
    a time: the first threshold at which standard and Fast NMS keep the same boxes (above its
    min-score slider); the start itself if they agree there; None if they differ at every step
    down to the slider's minimum."""
    return next((t for t in _slider_steps_down(explorer) if not nms_differ_at(explorer, t)), None)


def check_first_agreement_below(explorer, answer) -> Check:
    """Notebook 03: from the starting IoU threshold down, where Fast NMS and standard NMS first agree."""
    if answer is ...:
        return _unanswered("`answer` (an IoU threshold from the slider, or None)")
    start = explorer.start_threshold
    truth = first_agreement_below(explorer)
    if truth is None:
        if answer is None:
            return Check(True, f"from IoU {start:g} down to {explorer.iou_slider.min:g} the two keep different "
                               "boxes at every step")
        return Check(False, "look again at the line above the picture at that threshold: it still counts boxes "
                            "that only one of the two keeps. If they differ at every step, the answer is None")
    if answer is None:
        return Check(False, f"they do agree somewhere below {start:g}: keep moving the slider down until the line "
                            "above the picture counts 0 boxes suppressed by Fast NMS only and equal totals")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Check(False, f"{answer!r} is not a threshold: give a number from the slider, e.g. 0.45")
    if abs(value - truth) < 1e-6:
        return Check(True, f"at IoU {truth:g} both keep the same boxes; above it, up to {start:g}, they differ, "
                           "because in Fast NMS a box that was itself suppressed still suppresses others")
    if value > start + 1e-6:
        return Check(False, f"start at the notebook's threshold {start:g} and move the slider *down*")
    if nms_differ_at(explorer, value):
        return Check(False, f"at IoU {value:g} they still keep different boxes: the line above the picture "
                            "counts the boxes suppressed by Fast NMS only")
    if value < truth:
        return Check(False, f"they agree at IoU {value:g}, but already at a higher threshold: move down from "
                            f"{start:g} one step at a time and stop at the first agreement")
    return Check(False, f"move the slider down from {start:g} one step (0.05) at a time and read the line above "
                        "the picture at each step")


def check_prior_count(model, answer, input_size: int | None = None) -> Check:
    """Notebook 03: how many priors the model places on a square input (default its own size)."""
    if answer is ...:
        return _unanswered("`answer`")
    cfg = model.cfg
    truth = num_priors(cfg, input_size)
    sizes = [h for h, _ in fpn_sizes(cfg, input_size)]
    if int(answer) == truth:
        return Check(True, f"{cfg.name} places {truth} priors on a {input_size or cfg.max_size}-px image: "
                           f"{cfg.num_anchors} per cell on grids of {' + '.join(f'{s}²' for s in sizes)}")
    return Check(False, f"{cfg.num_anchors} priors (aspect ratios) per cell, on every FPN level; the grids are "
                        f"the input side divided by 8, 16, 32, ... (rounded up)")


# -- notebook 04 ---------------------------------------------------------------------------------
def check_crop_off(controls) -> Check:
    """Notebook 04: find the post-processing setting that lets masks spill outside their boxes."""
    if controls.crop.value:
        return Check(False, "one checkbox decides whether a mask may extend beyond its box")
    return Check(True, "without the crop a mask is sigma(P c) over the whole image: it spills onto other "
                       "objects that the same prototypes light up")


def smallest_good_k(sweep: Mapping, tolerance: float = 0.02) -> int:
    """The smallest k in the sweep whose mask AP is within ``tolerance`` of the best."""
    best = float(np.max(sweep["mask_AP"]))
    return int(min(k for k, ap in zip(sweep["num_protos"], sweep["mask_AP"]) if ap >= best - tolerance))


def check_smallest_k(sweep: Mapping, answer, tolerance: float = 0.02) -> Check:
    """Notebook 04: the cheapest k whose mask AP is within ``tolerance`` of the best in the sweep."""
    if answer is ...:
        return _unanswered("`answer`")
    truth = smallest_good_k(sweep, tolerance)
    if int(answer) == truth:
        return Check(True, f"k = {truth} already reaches within {tolerance} mask AP of the best; the larger k in "
                           "the sweep add less than that")
    return Check(False, "compare each k's mask AP with the best one in sweep['mask_AP']")


# -- notebook 05 ---------------------------------------------------------------------------------
def box_free_families(families: Iterable[Mapping]) -> set[str]:
    """Short names ("CondInst", ...) of the families whose assembly step uses no box."""
    return {row["family"].split()[0] for row in families if row["box in assembly"] == "no"}


def check_box_free(families: Iterable[Mapping], answer) -> Check:
    """Notebook 05: which methods assemble a mask with no box at all."""
    if answer is ...:
        return _unanswered("`answer` (a list of method names)")
    truth = box_free_families(families)
    given = {str(name).split()[0] for name in answer}
    lookup = {name.lower(): name for name in truth}
    given = {lookup.get(name.lower(), name) for name in given}
    if given == truth:
        return Check(True, f"{' and '.join(sorted(truth))}: their locality comes from position "
                           "(relative coordinates, grid cells), not from a crop")
    return Check(False, "in the picker, look at where each method's locality comes from: a crop or RoI needs a box")


def costliest_per_instance(rows: Iterable[Mapping]) -> str:
    """The model whose latency grows most with each extra instance ("ms / instance" of
    :func:`~yolact_edu.lessons.two_ways.comparison.summary_rows`)."""
    return max((row for row in rows if row["ms / instance"] is not None), key=lambda row: row["ms / instance"])["model"]


def check_costliest_instance(rows: Iterable[Mapping], answer) -> Check:
    """Notebook 05: which trained family pays the most for one more object."""
    if answer is ...:
        return _unanswered("`answer` (a model name from the table)")
    rows = list(rows)
    truth = costliest_per_instance(rows)
    slope = next(row["ms / instance"] for row in rows if row["model"] == truth)
    if str(answer).strip().lower() == truth.lower():
        return Check(True, f"{truth}: {slope:.2f} ms more per instance on this machine, the steepest "
                           "latency curve of the table")
    return Check(False, "look at the 'ms / instance' column (the slope of the latency curve), not at the total time")


def machines_to_match(measurement, published) -> int:
    """How many machines like this one, each predicting its own frames, keep up with the frame rate
    of ``published`` (a :class:`~yolact_edu.lessons.landscape.published.PublishedResult` of a GPU):
    its frames per second over this machine's (``measurement.predict_ms``: the whole image to
    detections, as the published figures time it), rounded up."""
    return _machines(measurement.predict_ms, published)[0]


def _machines(milliseconds: float, published) -> tuple[int, set[int], float]:
    """(answer, every right answer, ratio): a paper may round its ms and its FPS separately (29.8 ms
    and 33.5 FPS), so the ratio taken either way, rounded up, is right."""
    by_ms = milliseconds / published.speed_ms
    by_fps = published.speed_fps * milliseconds / 1000.0
    right = {max(1, int(np.ceil(ratio - 1e-9))) for ratio in (by_ms, by_fps)}
    return max(1, int(np.ceil(by_ms - 1e-9))), right, by_ms


def check_machines_to_match(measurement, published, answer) -> Check:
    """Notebook 05: how many machines like the learner's would match one GPU's published frame rate
    (:func:`machines_to_match`), with a hint for each usual slip."""
    if answer is ...:
        return _unanswered("`machines`")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Check(False, f"{answer!r} is not a number of machines")
    truth, right, ratio = _machines(measurement.predict_ms, published)
    gpu = f"the {published.gpu}'s {published.speed_fps:.1f} FPS"
    if value in right:
        return Check(True, f"{measurement.name} takes {measurement.predict_ms:.0f} ms per image here "
                           f"({measurement.fps:.2f} FPS): {ratio:.1f} times {published.speed_ms:.1f} ms, so "
                           f"{int(value)} such machines working side by side keep up with {gpu}")
    whole = value == round(value)
    if not whole and np.isclose(value, ratio, rtol=0.02):
        return Check(False, f"{value:g} machines: a machine comes whole; round up (the fraction still needs one)")
    if whole and value + 1 in right:
        return Check(False, f"with {value:g} machines the frame rate falls short of {gpu}: round up")
    _, network_right, network_ratio = _machines(measurement.network_ms, published)
    if np.isclose(value, network_ratio, rtol=0.02) or (value in network_right and value not in right):
        return Check(False, "use `predict_ms` (uint8 image to detections): the published figure times the "
                            "whole prediction, `network_ms` leaves out the post-processing")
    if ratio > 0 and np.isclose(value, 1 / ratio, rtol=0.02):
        return Check(False, "the ratio is upside down: a slower machine needs more copies of itself")
    return Check(False, "machines = (the GPU's frames per second) / (this machine's frames per second), "
                        "rounded up; frames per second = 1000 / (ms per image)")


__all__ = ["Check", "run_learner_code", "costliest_per_instance", "check_costliest_instance",
           "counts_at_most_share", "check_cost_share", "check_cell_pixels", "explorer_masks",
           "crop_region", "outside_box", "check_isolated", "isolate_without_crop", "most_subtracted",
           "check_flip_grows", "nms_differ_at", "first_agreement_below",
           "check_first_agreement_below", "check_prior_count", "check_crop_off", "smallest_good_k",
           "check_smallest_k", "box_free_families", "check_box_free", "machines_to_match",
           "check_machines_to_match"]
