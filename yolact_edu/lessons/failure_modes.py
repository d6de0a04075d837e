"""YOLACT's own failure modes (paper §6), found automatically and counted against the crowd.

The paper names two:

* **leakage**: the mask is the prototype sum cropped to the predicted box, and nothing suppresses
  what the sum lights up inside that box; when another object lies in the box (or the box is too
  big) the mask can take that object in;
* **localisation failure**: with many objects in one place, the prototypes may not separate them,
  and a detection's mask comes out closer to a foreground mask of the group than to its instance.

Each confident detection is matched to the ground-truth instance its mask overlaps most (IoU), and
measured against the *other* instances of the image (visible masks, which never overlap):

* ``leak``: the share of its mask's pixels that lie on other instances, in [0, 1];
* ``taken_in``: the other instances it covers at least :data:`TAKEN_IN` of (their visible pixels);
* ``merged``: how many instances *of its own class* it covers that much, its own included;
  two or more is a localisation failure: one mask for a group;
* ``crowd``: the size of its instance's crowd, the instances of one class joined by touching
  (1 for an object that touches nothing of its class);
* ``box_iou``: how well its box fits its instance's (IoU of the boxes), since the paper blames
  leakage on boxes that do not fit.

:func:`analyse` gives these per detection; :func:`summarize` counts how often each mode happens,
overall and by crowd size; :func:`worst_case` finds the example to draw; :func:`describe_failures`
says what the counts of two models show, generated from the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..ops.boxes import jaccard

CONFIDENT = 0.3                 # detections scored below this are not looked at
TAKEN_IN = 0.5                  # a mask covering this share of another instance has taken it in
MIN_OWN_IOU = 0.1               # below this mask IoU with every instance: a false positive, not analysed
LOOSE_BOX = 0.7                 # a box with IoU below this with its object's box fits it poorly
CROWD_BINS = ((1, 1), (2, 4), (5, 9), (10, 10 ** 6))   # crowd sizes, inclusive ranges


@dataclass
class DetectionRecord:
    """One confident detection, measured against the ground truth of its image."""

    image: int                  # dataset index
    detection: int              # index into that image's detections
    score: float
    label: int                  # 0-based class
    own: int                    # ground-truth instance it matches (index into load_target)
    own_iou: float              # mask IoU with it, in [0, 1]
    leak: float                 # share of the mask's pixels on other instances, in [0, 1]
    taken_in: list[int] = field(default_factory=list)   # other instances covered >= TAKEN_IN
    merged: int = 1             # same-class instances covered >= TAKEN_IN, its own included
    crowd: int = 1              # size of its instance's same-class touching group
    box_iou: float = 1.0        # IoU of its box with its instance's box, in [0, 1]

    @property
    def leaks(self) -> bool:
        return bool(self.taken_in)

    @property
    def localisation_failure(self) -> bool:
        return self.merged >= 2


def crowd_sizes(masks, labels) -> np.ndarray:
    """[n] int: for each instance (``masks`` [n,H,W] {0,1}, ``labels`` [n]) the number of instances in
    its crowd: those of its class reachable through instances that touch (share an edge or a corner)."""
    masks = np.asarray(masks, np.uint8)
    labels = np.asarray(labels).reshape(-1)
    n = len(masks)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    grown = [cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool) for mask in masks]
    for i in range(n):
        for j in range(i + 1, n):
            if labels[i] == labels[j] and (grown[i] & masks[j].astype(bool)).any():
                parent[root(i)] = root(j)
    roots = [root(i) for i in range(n)]
    return np.array([roots.count(r) for r in roots], np.int64)


def _mask_box(mask: torch.Tensor) -> torch.Tensor:
    """[4] (x1, y1, x2, y2) of a [H,W] mask's pixels, in the pixel-edge convention of the boxes."""
    cols, rows = torch.nonzero(mask.any(0)).flatten(), torch.nonzero(mask.any(1)).flatten()
    if cols.numel() == 0:
        return torch.zeros(4)
    return torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)


def largest_crowd_image(dataset, indices) -> int:
    """The index among ``indices`` of the ``dataset`` image holding the largest crowd (ties: the first)."""
    best, best_size = None, -1
    for index in indices:
        target = dataset.load_target(index)
        size = int(crowd_sizes(target["masks"], target["labels"]).max()) if len(target["labels"]) else 0
        if size > best_size:
            best, best_size = index, size
    if best is None:
        raise ValueError("largest_crowd_image needs at least one image index")
    return best


def measure_image(detections, target, image_index: int = 0, score_threshold: float = CONFIDENT
                  ) -> list[DetectionRecord]:
    """The records of one image's ``detections`` (scored >= ``score_threshold``) against ``target``
    (``load_target``: masks [n,H,W] {0,1} at image size, labels [n])."""
    gt = torch.as_tensor(np.asarray(target["masks"])).flatten(1).float()        # [n, HW]
    labels = np.asarray(target["labels"]).reshape(-1)
    keep = torch.nonzero(detections.scores >= score_threshold).flatten().tolist()
    if not keep or gt.shape[0] == 0:
        return []
    pred = detections.masks[keep].flatten(1).float()                           # [N, HW]
    inter = pred @ gt.T                                                         # [N, n] pixels
    pred_area, gt_area = pred.sum(1, keepdim=True), gt.sum(1)[None]
    iou = inter / (pred_area + gt_area - inter).clamp(min=1)
    covered = inter / gt_area.clamp(min=1)                                      # share of each instance
    crowds = crowd_sizes(target["masks"], labels)
    records = []
    for row, index in enumerate(keep):
        own = int(iou[row].argmax())
        if float(iou[row, own]) < MIN_OWN_IOU:
            continue
        others = float(inter[row].sum() - inter[row, own])
        taken = [j for j in torch.nonzero(covered[row] >= TAKEN_IN).flatten().tolist() if j != own]
        same_class = [j for j in [own, *taken] if labels[j] == labels[own]]
        records.append(DetectionRecord(
            image=image_index, detection=index, score=float(detections.scores[index]),
            label=int(detections.labels[index]), own=own, own_iou=float(iou[row, own]),
            leak=others / max(float(pred_area[row]), 1.0), taken_in=taken, merged=len(same_class),
            crowd=int(crowds[own]),
            box_iou=float(jaccard(detections.boxes[index:index + 1].float(),
                                  _mask_box(torch.as_tensor(target["masks"][own]).bool())[None])[0, 0])))
    return records


def crowd_member(detections, target, top_k: int = 10) -> int | None:
    """Index (< ``top_k``) of the most confident of ``detections`` whose object stands in the image's
    largest crowd, or None: the detection to open an explorer on when the crowd is the point."""
    records = [r for r in measure_image(detections, target, score_threshold=0.0) if r.detection < top_k]
    if not records:
        return None
    largest = max(r.crowd for r in records)
    return min(r.detection for r in records if r.crowd == largest)


@torch.no_grad()
def analyse(model, dataset, indices, score_threshold: float = CONFIDENT) -> list[DetectionRecord]:
    """:func:`measure_image` over ``dataset`` images ``indices`` (a CocoDataset), with ``model.predict``."""
    records = []
    for index in indices:
        image = dataset.load_image(index)
        if image is None:
            continue
        detections = model.predict(image, score_threshold=score_threshold)
        records += measure_image(detections, dataset.load_target(index), index, score_threshold)
    return records


def _bin_label(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}+" if high >= 10 ** 6 else f"{low}-{high}"


def summarize(records: list[DetectionRecord]) -> dict:
    """Counts of one model: ``detections``; ``leak_rate`` (share that take in another instance);
    ``median_leak`` (median leaked share of the mask among those); ``failure_rate`` (share that merge
    two or more instances of their class); and ``by_crowd``: {bin label: {"detections", "leak_rate",
    "failure_rate", "median_leak"}} over :data:`CROWD_BINS` (bins with no detection left out)."""

    def counts(chosen: list[DetectionRecord]) -> dict:
        leaking = [r.leak for r in chosen if r.leaks]
        return {"detections": len(chosen),
                "leak_rate": len(leaking) / len(chosen) if chosen else 0.0,
                "median_leak": float(np.median(leaking)) if leaking else 0.0,
                "failure_rate": sum(r.localisation_failure for r in chosen) / len(chosen) if chosen else 0.0}

    summary = counts(records)
    summary["by_crowd"] = {_bin_label(low, high): counts([r for r in records if low <= r.crowd <= high])
                           for low, high in CROWD_BINS if any(low <= r.crowd <= high for r in records)}
    return summary


def worst_case(records: list[DetectionRecord], mode: str) -> DetectionRecord | None:
    """The clearest example of ``mode``: ``"leakage"`` the leaking detection with the largest leaked
    share, among those that took in objects of other classes only when there are any (a merged crowd
    is the other mode's example); ``"localisation"`` the one merging the most instances of its class
    (then the most leaked)."""
    if mode == "leakage":
        chosen = [r for r in records if r.leaks and not r.localisation_failure] or [r for r in records if r.leaks]
        return max(chosen, key=lambda r: (r.leak, r.score), default=None)
    if mode == "localisation":
        chosen = [r for r in records if r.localisation_failure]
        return max(chosen, key=lambda r: (r.merged, r.leak), default=None)
    raise ValueError(f"mode must be 'leakage' or 'localisation', not {mode!r}")


def counterpart(records: list[DetectionRecord], case: DetectionRecord) -> DetectionRecord | None:
    """Another model's best-scored detection of the same instance as ``case`` (same image and ``own``)."""
    same = [r for r in records if r.image == case.image and r.own == case.own]
    return max(same, key=lambda r: r.score, default=None)


def _outline(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, np.uint8)
    return (cv2.dilate(mask, np.ones((3, 3), np.uint8)) - mask).astype(bool)


def draw_case(ax, image: np.ndarray, target, detections, record: DetectionRecord | None, title: str,
              zoom: tuple[float, float, float, float] | None = None) -> None:
    """One panel: ``image`` dimmed, the detection's mask (``detections.masks[record.detection]``) in
    orange, its own instance outlined in white and the instances it took in outlined in red;
    ``zoom`` (x1, y1, x2, y2 pixels) shows only that region."""
    shown = (np.asarray(image, np.float32) * 0.6).astype(np.uint8)
    masks = np.asarray(target["masks"])
    if record is not None:
        mask = detections.masks[record.detection].numpy()
        shown[mask] = (0.45 * shown[mask] + 0.55 * np.array([255, 150, 0])).astype(np.uint8)
        shown[_outline(masks[record.own])] = (255, 255, 255)
        for j in record.taken_in:
            shown[_outline(masks[j])] = (255, 40, 40)
        x1, y1, x2, y2 = detections.boxes[record.detection].tolist()
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="orange", lw=1.2))
        title += (f"\nscore {record.score:.2f}, IoU with its object {record.own_iou:.2f}, "
                  f"{record.leak:.0%} of the mask on other objects")
    else:
        title += "\nno confident detection of this object"
    ax.imshow(shown)
    if zoom is not None:
        ax.set_xlim(zoom[0], zoom[2])
        ax.set_ylim(zoom[3], zoom[1])
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def plot_by_crowd(summaries: dict[str, dict], colors: dict[str, str] | None = None, axes=None):
    """Leak rate and localisation-failure rate against crowd size, one line per model
    (``summaries``: {label: :func:`summarize`}), each point labelled with its number of detections."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, key, title in zip(axes, ("leak_rate", "failure_rate"),
                              ("detections that take in another object", "detections that merge their crowd")):
        for label, summary in summaries.items():
            bins = list(summary["by_crowd"])
            values = [summary["by_crowd"][b][key] for b in bins]
            line, = ax.plot(bins, values, "o-", label=label, color=(colors or {}).get(label))
            for x, (b, value) in enumerate(zip(bins, values)):     # how many detections each point rests on
                ax.annotate(f"n={summary['by_crowd'][b]['detections']}", (x, value), textcoords="offset points",
                            xytext=(4, 4), fontsize=7, color=line.get_color())
        ax.set_xlabel("crowd size of the detected object")
        ax.set_ylabel("share of confident detections")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    return axes


def _rises(values: list[float]) -> bool:
    return all(b >= a for a, b in zip(values, values[1:])) and values[-1] > values[0]


def describe_failures(summaries: dict[str, dict]) -> str:
    """Markdown: for each model how often it leaks (and by how much) and merges a crowd, whether each
    rate rises with the crowd size, and which model does each more often -- from the numbers."""
    lines = []
    for label, s in summaries.items():
        bins = list(s["by_crowd"])
        leak = [s["by_crowd"][b]["leak_rate"] for b in bins]
        fail = [s["by_crowd"][b]["failure_rate"] for b in bins]
        trend = []
        for name, values in (("leakage", leak), ("merging", fail)):
            if len(values) >= 2:
                trend.append(f"{name} {'rises' if _rises(values) else 'does not rise steadily'} with the crowd "
                             f"({' → '.join(f'{v:.0%}' for v in values)} over crowds of {', '.join(bins)})")
        lines.append(f"- **{label}**: of {s['detections']} confident detections, {s['leak_rate']:.1%} take in another "
                     f"object (median {s['median_leak']:.0%} of such a mask lies on other objects) and "
                     f"{s['failure_rate']:.1%} merge two or more objects of their class; " + "; ".join(trend) + ".")
    if len(summaries) == 2:
        (a, sa), (b, sb) = summaries.items()
        for key, what in (("leak_rate", "leaks"), ("failure_rate", "merges a crowd")):
            if sa[key] == sb[key]:
                lines.append(f"- Both models {what.replace('leaks', 'leak').replace('merges', 'merge')} "
                             f"equally often ({sa[key]:.1%}).")
            else:
                more, less = (a, b) if sa[key] > sb[key] else (b, a)
                high, low = max(sa[key], sb[key]), min(sa[key], sb[key])
                ratio = f"{high / low:.1f}× as often" if low > 0 else "where the other never does"
                lines.append(f"- **{more}** {what} more often than {less}: {high:.1%} against {low:.1%} ({ratio}).")
    return "\n".join(lines)


def describe_paper_agreement(records: list[DetectionRecord], label: str) -> str:
    """Markdown: whether ``label``'s measured failures (its :func:`analyse` records) behave as the paper
    says they do -- merging grows where many objects are in one place, and leaking detections are the
    ones whose box fits their object poorly (box IoU < :data:`LOOSE_BOX`) -- each answered from the numbers."""
    summary = summarize(records)
    bins = list(summary["by_crowd"])
    lines = []
    if len(bins) >= 2:
        low, high = (summary["by_crowd"][b]["failure_rate"] for b in (bins[0], bins[-1]))
        verdict = "the measurement agrees" if high > low else "the measurement does not bear this out"
        lines.append(f"- *Localisation failure grows with the number of objects in one place*: {label} merges "
                     f"{low:.0%} of its detections in crowds of {bins[0]} and {high:.0%} in crowds of {bins[-1]}: "
                     f"{verdict}.")
    leaking, clean = [r for r in records if r.leaks], [r for r in records if not r.leaks]
    if leaking and clean:
        loose = [float(np.mean([r.box_iou < LOOSE_BOX for r in group])) for group in (leaking, clean)]
        verdict = "the measurement agrees" if loose[0] > loose[1] else "the measurement does not bear this out"
        lines.append(f"- *Leakage comes with boxes that do not fit*: {loose[0]:.0%} of {label}'s leaking detections "
                     f"have a box with IoU < {LOOSE_BOX} against their object's box, and {loose[1]:.0%} of the others: "
                     f"{verdict}.")
    else:
        lines.append(f"- {label} has {'no leaking' if not leaking else 'only leaking'} detections here, so the "
                     "paper's account of leakage cannot be checked on them.")
    return "\n".join(lines)


def draw_worst(models: dict, dataset, records: dict[str, list[DetectionRecord]], mode: str, reference: str):
    """A figure: the clearest example of ``mode`` (:func:`worst_case`) among ``reference``'s records, and
    the same object as each model in ``models`` ({label: model}) segments it, side by side. None when
    ``reference`` shows no such failure."""
    case = worst_case(records[reference], mode)
    if case is None:
        return None
    image, target = dataset.load_image(case.image), dataset.load_target(case.image)
    # the region around the object and everything the mask took in, with a margin, so a small object shows
    regions = [_mask_box(torch.as_tensor(target["masks"][j]).bool()) for j in [case.own, *case.taken_in]]
    low, high = torch.stack(regions)[:, :2].amin(0), torch.stack(regions)[:, 2:].amax(0)
    margin = max(float((high - low).max()) * 0.6, 24.0)
    height, width = image.shape[:2]
    zoom = (max(float(low[0]) - margin, 0.0), max(float(low[1]) - margin, 0.0),
            min(float(high[0]) + margin, float(width)), min(float(high[1]) + margin, float(height)))
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 5.2))
    for ax, (label, model) in zip(np.atleast_1d(axes), models.items()):
        found = model.predict(image, score_threshold=CONFIDENT)
        record = case if label == reference else counterpart(records[label], case)
        draw_case(ax, image, target, found, record, f"{label} · {mode}", zoom=zoom)
    fig.suptitle(f"val image {case.image}, enlarged: orange = the mask, white = its object, red = objects it "
                 "took in", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))      # room for the title above the panels' own
    return fig


__all__ = ["CONFIDENT", "TAKEN_IN", "MIN_OWN_IOU", "CROWD_BINS", "DetectionRecord", "crowd_sizes", "measure_image",
           "analyse", "summarize", "worst_case", "counterpart", "draw_case", "plot_by_crowd", "describe_failures",
           "describe_paper_agreement", "draw_worst", "LOOSE_BOX", "largest_crowd_image", "crowd_member"]
