"""Fast NMS next to standard NMS: which boxes each keeps, why, and how long it takes
(notebook 03; paper §3.4).

The three variants themselves live in :mod:`yolact_edu.ops.nms`; here they are run side by
side on the same candidates, their keep sets compared and timed, and the Fast NMS
matrix (IoU, upper triangle, column max) laid open for one class.

Why Fast NMS keeps a subset: for candidates sorted by score, standard NMS keeps box j
unless a higher-scoring box *that it kept* overlaps it by more than the threshold;
Fast NMS drops j if *any* higher-scoring box overlaps it that much, kept or not. So on
the same candidates and threshold every box Fast NMS keeps, standard NMS keeps too
(``tests/test_nms_compare.py`` checks it). Fast NMS can only suppress more, never fewer.

    >>> cands = nms_candidates(model(model.preprocess(image)))
    >>> comparison = compare_nms(cands.boxes, cands.scores, repeats=20)
    >>> comparison.only_in("standard", "fast", min_score=0.05)   # suppressed by Fast NMS only
"""
from __future__ import annotations

import contextlib
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision

from ..bench.timing import repeat_seconds
from ..ops.boxes import jaccard
from ..ops.nms import NMS_KINDS, run_nms
from ..postprocess import prior_candidates
from ..viz.draw import place_box_labels

METHODS = NMS_KINDS


@dataclass
class NmsCandidates:
    """What NMS sees for one image, exactly as :func:`~yolact_edu.postprocess.detect` builds it.

    boxes [n,4] point form relative to the input (decoded, unclamped); scores [C,n] softmax
    class scores in [0,1] (background dropped); prior_index [n] which prior each came from.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    prior_index: torch.Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def nms_candidates(raw: dict, conf_threshold: float = 0.05, image_index: int = 0) -> NmsCandidates:
    """Softmax, decode and keep priors whose best foreground score is > ``conf_threshold``
    (the first steps of ``detect``). raw: the dict of ``Yolact.forward``."""
    candidates, boxes, class_scores = prior_candidates(raw, image_index, conf_threshold)
    return NmsCandidates(boxes, class_scores, torch.nonzero(candidates).flatten())


# -- the Fast NMS matrix for one class -----------------------------------------------------------
@dataclass
class FastNmsSteps:
    """Fast NMS for one class, step by step, on its ``k`` best candidates (sorted by score).

    order [k] candidate indices; scores [k] descending; iou [k,k]; upper [k,k] = iou with the
    diagonal and lower triangle zeroed (row i, column j: overlap of j with the better box i);
    column_max [k]: j's largest overlap with any better box; keep [k] = column_max <= threshold;
    standard_keep [k]: what greedy NMS keeps on the same sorted list.
    """

    order: torch.Tensor
    scores: torch.Tensor
    iou: torch.Tensor
    upper: torch.Tensor
    column_max: torch.Tensor
    keep: torch.Tensor
    standard_keep: torch.Tensor
    iou_threshold: float

    @property
    def fast_only_ranks(self) -> torch.Tensor:
        """Ranks (into ``order``) of the boxes Fast NMS drops and greedy NMS keeps: the orange bars."""
        return torch.nonzero(~self.keep & self.standard_keep).flatten()

    def shown(self, minimum: int = 25) -> int:
        """How many ranks a figure needs to show at least ``minimum`` and every orange bar."""
        ranks = self.fast_only_ranks
        return min(len(self.order), max(minimum, int(ranks.max()) + 1 if len(ranks) else 0))


def fast_nms_steps(boxes: torch.Tensor, scores: torch.Tensor, class_index: int,
                   iou_threshold: float = 0.5, nms_top_k: int = 200) -> FastNmsSteps:
    """The intermediate tensors of :func:`~yolact_edu.ops.nms.fast_nms` for class ``class_index``.

    boxes [n,4] point form; scores [C,n]. Same rule and order as ``fast_nms``."""
    row_scores, order = scores[class_index].sort(descending=True)
    order, row_scores = order[:nms_top_k], row_scores[:nms_top_k]
    iou = jaccard(boxes[order], boxes[order])
    upper = iou.triu(diagonal=1)
    column_max = upper.amax(0)
    greedy = torchvision.ops.nms(boxes[order].float(), row_scores.float(), iou_threshold)
    standard_keep = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    standard_keep[greedy] = True
    return FastNmsSteps(order, row_scores, iou, upper, column_max, column_max <= iou_threshold,
                        standard_keep, iou_threshold)


def plot_fast_nms_steps(steps: FastNmsSteps, class_name: str = "", show: int = 30):
    """Three panels for the first ``show`` candidates: the IoU matrix, its upper triangle
    (pairs above the threshold outlined), and the column max against the threshold, bars
    coloured kept / suppressed / suppressed by Fast NMS only. Returns the Figure."""
    import matplotlib.pyplot as plt

    k = min(show, len(steps.order))
    iou, upper = steps.iou[:k, :k].cpu().numpy(), steps.upper[:k, :k].cpu().numpy()
    column_max, keep = steps.column_max[:k].cpu().numpy(), steps.keep[:k].cpu().numpy()
    standard_keep = steps.standard_keep[:k].cpu().numpy()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), dpi=90, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    for ax, matrix, title in ((axes[0], iou, "IoU of the candidates, sorted by score"),
                              (axes[1], upper, "upper triangle: overlap with a better box")):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("candidate j (rank)")
        ax.set_ylabel("candidate i (rank)")
    rows, cols = np.nonzero(upper > steps.iou_threshold)
    axes[1].scatter(cols, rows, s=12, facecolors="none", edgecolors="cyan", linewidths=0.8,
                    label=f"IoU > {steps.iou_threshold:g}")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.colorbar(image, ax=axes[1], fraction=0.046, pad=0.03)
    colors = np.where(keep, "tab:green", np.where(standard_keep, "orange", "tab:red"))
    # The best box has no better box (column max 0): a stub keeps its bar visible.
    axes[2].bar(range(k), np.maximum(column_max, 0.01), color=colors)
    axes[2].axhline(steps.iou_threshold, color="black", linestyle="--", linewidth=1)
    axes[2].set_xlabel("candidate j (rank)")
    axes[2].set_ylabel("column max: largest IoU with a better box")
    axes[2].set_ylim(0, 1.05)
    from matplotlib.patches import Patch
    both, fast_only = int((~keep & ~standard_keep).sum()), int((~keep & standard_keep).sum())
    axes[2].legend(handles=[Patch(color="tab:green", label=f"kept ({int(keep.sum())})"),
                            Patch(color="tab:red", label=f"suppressed by both ({both})"),
                            Patch(color="orange", label=f"suppressed by Fast NMS only ({fast_only})")],
                   fontsize=7, loc="upper right")
    axes[2].set_title("column max: kept iff <= threshold" + (f" (class {class_name})" if class_name else ""),
                      fontsize=9)
    fig.tight_layout()
    return fig


def suppressed_by(boxes: torch.Tensor, scores: torch.Tensor, candidate: int, class_index: int,
                  iou_threshold: float = 0.5, nms_top_k: int = 200) -> list[int]:
    """Candidates of class ``class_index`` that score higher than ``candidate`` (among the class's
    ``nms_top_k``) and overlap it by more than ``iou_threshold``: the boxes that make Fast NMS drop
    it, best first. Empty if Fast NMS keeps it."""
    row = scores[class_index]
    ranked = row.argsort(descending=True)[:nms_top_k]
    better = ranked[row[ranked] > row[candidate]]
    overlap = jaccard(boxes[better], boxes[candidate][None])[:, 0]
    return better[overlap > iou_threshold].tolist()


# -- side-by-side runs ---------------------------------------------------------------------------
@contextlib.contextmanager
def cpu_threads(threads: int | None):
    """Run the block with ``torch.set_num_threads(threads)`` (None: unchanged), then restore.
    One thread gives steadier CPU timings on a shared machine."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class NmsRun:
    """One method's output (``keep`` [m] candidate indices, ``classes`` [m] 0-based,
    ``scores`` [m], by score descending) and its timings in seconds."""

    keep: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    seconds: list[float]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def pairs(self, min_score: float = 0.0) -> set[tuple[int, int]]:
        """Kept (candidate, class) pairs scoring above ``min_score``."""
        above = self.scores > min_score
        return set(zip(self.keep[above].tolist(), self.classes[above].tolist()))


@dataclass
class NmsComparison:
    """Several NMS methods run on the same candidates with the same threshold."""

    runs: dict[str, NmsRun]
    iou_threshold: float

    def only_in(self, method: str, other: str, min_score: float = 0.0) -> list[tuple[int, int]]:
        """(candidate, class) pairs scoring above ``min_score`` that ``method`` keeps and ``other`` does not."""
        return sorted(self.runs[method].pairs(min_score) - self.runs[other].pairs(min_score))

    def summary(self, min_score: float = 0.0) -> list[dict]:
        """One row per method: detections kept, kept above ``min_score`` and, for timed runs,
        the median time in ms over the timed calls."""
        rows = []
        for name, run in self.runs.items():
            row = {"method": name, "kept": len(run.keep), f"kept (score > {min_score:g})": len(run.pairs(min_score))}
            if run.seconds:
                row.update({"median ms": round(run.median_seconds * 1e3, 3), "timed calls": len(run.seconds)})
            rows.append(row)
        return rows


def kept_sentence(comparison: NmsComparison, min_score: float = 0.05) -> str:
    """Which method keeps the most and the fewest boxes above ``min_score``, and how many more Fast NMS
    returns at or below it (the original's behaviour), written from ``comparison``."""
    kept = {name: len(run.pairs(min_score)) for name, run in comparison.runs.items()}
    text = "Boxes kept above " + f"{min_score:g}: " + ", ".join(f"{name} {n}" for name, n in kept.items())
    fewest, most = min(kept, key=kept.get), max(kept, key=kept.get)
    if kept[fewest] < kept[most]:
        text += f"; **{fewest}** keeps the fewest, **{most}** the most"
    if "fast" in comparison.runs:
        below = len(comparison.runs["fast"].keep) - kept["fast"]
        text += f". Fast NMS also returns {below} pairs scoring {min_score:g} or less"
    return text + "."


def compare_nms(boxes: torch.Tensor, scores: torch.Tensor, methods: Sequence[str] = METHODS,
                iou_threshold: float = 0.5, nms_top_k: int = 200, conf_threshold: float = 0.05,
                max_detections: int | None = 100, repeats: int = 0, threads: int | None = None) -> NmsComparison:
    """Run each method of :mod:`yolact_edu.ops.nms` (through ``detect``'s dispatcher) on
    boxes [n,4] point form and scores [C,n], and time it ``repeats`` times (0: no timing).

    Settings as ``detect``: Fast NMS takes the ``nms_top_k`` best per class and, like the original,
    may keep class scores below ``conf_threshold``; standard NMS considers only pairs above it;
    "cross_class" is capped by ``nms_top_k`` only (``max_detections`` does not apply to it).
    Compare keep sets above ``conf_threshold`` (``only_in(..., min_score=conf_threshold)``).
    threads: CPU threads while timing (:func:`cpu_threads`).
    """
    runs = {}
    for method in methods:
        cap = None if method == "cross_class" else max_detections

        def call(method=method, cap=cap):
            return run_nms(method, boxes, scores, iou_threshold=iou_threshold, nms_top_k=nms_top_k,
                           conf_threshold=conf_threshold, max_detections=cap)

        keep, classes, kept_scores = call()
        with cpu_threads(threads):
            seconds = repeat_seconds(call, repeats, device=boxes.device) if repeats else []
        runs[method] = NmsRun(keep, classes, kept_scores, seconds)
    return NmsComparison(runs, iou_threshold)


# -- a case where the two differ -----------------------------------------------------------------
@dataclass
class NmsCase:
    """One image's candidates and its standard/Fast NMS comparison (:func:`find_disagreement`).

    index: the dataset image; raw: the network's output on it; difference: (candidate, class) pairs
    kept by standard NMS only, scoring above the candidate threshold, best first; found: whether
    it holds one scoring at least the requested ``min_score`` (otherwise the last image searched)."""

    index: int
    raw: dict
    candidates: NmsCandidates
    comparison: NmsComparison
    difference: list[tuple[int, int]]
    found: bool


def find_disagreement(model, dataset, min_score: float = 0.9, limit: int | None = None) -> NmsCase:
    """The first image of ``dataset`` (of its first ``limit``) where standard NMS keeps a box scoring
    at least ``min_score`` that Fast NMS drops, with ``detect``'s settings of ``model.cfg``.
    A high score, so the dropped box is a confident detection, not a faint duplicate."""
    cfg = model.cfg
    for index in range(min(len(dataset), limit or len(dataset))):
        image = dataset.load_image(index)
        with torch.no_grad():
            raw = model(model.preprocess(image))
        cands = nms_candidates(raw, cfg.nms_conf_thresh)
        comparison = compare_nms(cands.boxes, cands.scores, iou_threshold=cfg.nms_iou_thresh, nms_top_k=cfg.nms_top_k,
                                 conf_threshold=cfg.nms_conf_thresh, max_detections=cfg.max_detections)
        difference = sorted(comparison.only_in("standard", "fast", cfg.nms_conf_thresh),
                            key=lambda pair: -float(cands.scores[pair[1], pair[0]]))
        found = bool(difference) and float(cands.scores[difference[0][1], difference[0][0]]) >= min_score
        if found:
            break
    return NmsCase(index, raw, cands, comparison, difference, found)


@dataclass
class SuppressionChain:
    """Why Fast NMS drops ``dropped`` (C) while standard NMS keeps it, for one class: C's best
    suppressor B (a better box with IoU(B, C) > threshold) was itself removed by standard NMS because
    of A, a box it kept (IoU(A, B) > threshold), and A overlaps C too little to remove it. Indices are
    candidates; ``None`` members when the chain does not exist (Fast NMS keeps C)."""

    dropped: int
    suppressor: int | None
    keeper: int | None
    iou_ab: float
    iou_bc: float
    iou_ac: float
    scores: tuple[float, float, float]

    def sentence(self, class_name: str = "", threshold: float = 0.5) -> str:
        if self.suppressor is None or self.keeper is None:
            return f"candidate {self.dropped}: no chain, Fast NMS keeps it"
        (sa, sb, sc), what = self.scores, f"{class_name} " if class_name else ""
        return (f"A = candidate {self.keeper} ({what}{sa:.2f}) overlaps B = candidate {self.suppressor} ({sb:.2f}) by "
                f"IoU {self.iou_ab:.2f} > {threshold:g}: standard NMS removes B. B overlaps C = candidate "
                f"{self.dropped} ({sc:.2f}) by {self.iou_bc:.2f} > {threshold:g}, but A overlaps C by only "
                f"{self.iou_ac:.2f}: standard NMS keeps C. Fast NMS lets the removed B suppress C anyway.")


def suppression_chain(boxes: torch.Tensor, scores: torch.Tensor, candidate: int, class_index: int,
                      iou_threshold: float = 0.5, nms_top_k: int = 200,
                      standard_kept: set[tuple[int, int]] | None = None) -> SuppressionChain:
    """The A → B → C chain behind a box that Fast NMS drops and standard NMS keeps. boxes [n,4];
    scores [C,n]; ``standard_kept``: the (candidate, class) pairs standard NMS keeps (default: greedy
    NMS on the class's ``nms_top_k`` candidates)."""
    row = scores[class_index]
    if standard_kept is None:
        ranked = row.argsort(descending=True)[:nms_top_k]
        kept = ranked[torchvision.ops.nms(boxes[ranked].float(), row[ranked].float(), iou_threshold)]
        standard_kept = {(int(i), class_index) for i in kept}
    culprits = [b for b in suppressed_by(boxes, scores, candidate, class_index, iou_threshold, nms_top_k)
                if (b, class_index) not in standard_kept]
    suppressor = culprits[0] if culprits else None
    keeper = None
    if suppressor is not None:
        better = [a for a, c in standard_kept if c == class_index and float(row[a]) > float(row[suppressor])]
        better.sort(key=lambda a: -float(row[a]))
        keeper = next((a for a in better if float(jaccard(boxes[a][None], boxes[suppressor][None])[0, 0])
                       > iou_threshold), None)

    def iou(a, b):
        return float(jaccard(boxes[a][None], boxes[b][None])[0, 0]) if a is not None and b is not None else float("nan")

    def score(i):
        return float(row[i]) if i is not None else float("nan")

    return SuppressionChain(candidate, suppressor, keeper, iou(keeper, suppressor), iou(suppressor, candidate),
                            iou(keeper, candidate), (score(keeper), score(suppressor), score(candidate)))


# -- pictures and a widget -----------------------------------------------------------------------
def _draw_pairs(ax, boxes_px: np.ndarray, pairs, scores: dict, class_names, linestyle="-", color=None) -> list:
    """Draw the boxes of ``pairs``; return their label requests for :func:`place_box_labels`
    (written once the layout is final, so that they can avoid each other), best score first."""
    from matplotlib.patches import Rectangle

    from ..viz.draw import class_color

    requests = []
    for candidate, cls in pairs:
        x1, y1, x2, y2 = boxes_px[candidate]
        rgb = color or tuple(c / 255 for c in class_color(cls))
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=rgb, linewidth=1.5,
                               linestyle=linestyle))
        name = class_names[cls] if cls < len(class_names) else str(cls)
        score = scores[(candidate, cls)]
        requests.append((score, ((x1, y1, x2, y2), f"{name} {score:.2f}", rgb)))
    return [request for _, request in sorted(requests, key=lambda item: -item[0])]


def plot_nms_comparison(image: np.ndarray, boxes: torch.Tensor, comparison: NmsComparison,
                        methods: Sequence[str] = ("standard", "fast"), min_score: float = 0.05,
                        class_names: Sequence[str] = (), scores: torch.Tensor | None = None,
                        nms_top_k: int = 200):
    """One panel per method with its kept boxes scoring above ``min_score`` on ``image``
    (HxWx3 uint8; boxes [n,4] relative point form are scaled to it), and a last panel with
    the difference of the first two: kept by the first only (red), by the second only (blue
    dashed). With the class ``scores`` [C,n] and ``methods[1] == "fast"``, the best box that made
    Fast NMS drop each red one (:func:`suppressed_by`) is drawn white dotted.
    Returns the Figure."""
    import matplotlib.pyplot as plt

    height, width = image.shape[:2]
    boxes_px = (boxes.detach().cpu().double() * torch.tensor([width, height] * 2, dtype=torch.float64)).numpy()
    first, second = methods[0], methods[1]
    fig, axes = plt.subplots(1, len(methods) + 1, figsize=(4.2 * (len(methods) + 1), 4.6), dpi=90)
    all_scores = {}
    for name in methods:
        run = comparison.runs[name]
        all_scores.update(zip(zip(run.keep.tolist(), run.classes.tolist()), run.scores.tolist()))
    labels = {}
    for ax, name in zip(axes, methods):
        pairs = comparison.runs[name].pairs(min_score)
        ax.imshow(image)
        labels[ax] = _draw_pairs(ax, boxes_px, pairs, all_scores, class_names)
        ax.set_title(f"{name}: {len(pairs)} kept (score > {min_score:g})", fontsize=9)
    only_first, only_second = comparison.only_in(first, second, min_score), comparison.only_in(second, first, min_score)
    axes[-1].imshow(image)
    labels[axes[-1]] = (_draw_pairs(axes[-1], boxes_px, only_first, all_scores, class_names, "-", "red")
                        + _draw_pairs(axes[-1], boxes_px, only_second, all_scores, class_names, "--", "deepskyblue"))
    if scores is not None and second == "fast":
        from matplotlib.patches import Rectangle

        for candidate, cls in only_first:
            culprits = suppressed_by(boxes, scores, candidate, cls, comparison.iou_threshold, nms_top_k)
            if culprits:
                x1, y1, x2, y2 = boxes_px[culprits[0]]
                axes[-1].add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="white",
                                             linewidth=1.5, linestyle=":"))
    culprit_note = "; white dotted: its suppressor" if scores is not None and second == "fast" else ""
    axes[-1].set_title(f"{len(only_first)} kept by {first} only (red{culprit_note}),\n{len(only_second)} by "
                       f"{second} only (blue dashed)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    for ax, requests in labels.items():
        place_box_labels(ax, requests)
    return fig


__all__ = ["METHODS", "NmsCandidates", "nms_candidates", "FastNmsSteps", "fast_nms_steps", "plot_fast_nms_steps",
           "suppressed_by", "cpu_threads", "NmsRun", "NmsComparison", "compare_nms",
           "plot_nms_comparison", "kept_sentence", "NmsCase", "find_disagreement", "SuppressionChain",
           "suppression_chain"]
