"""Looking at priors, matching and box encoding (notebook 03; paper §3.3 and §3.1).

Everything here explains existing steps, it adds none: the priors come from
:func:`~yolact_edu.ops.anchors.make_priors`, the labels from
:func:`~yolact_edu.loss.match_priors`, the regression targets from
:func:`~yolact_edu.ops.boxes.encode`. Drawings are in *input* pixels: the image is
stretched to ``S x S`` (``S = cfg.max_size``) as :meth:`Yolact.preprocess` does,
so a square prior looks square.

    >>> levels = prior_levels(cfg)                  # one PriorLevel per FPN level P3..P7
    >>> match = classify_priors(gt_boxes, gt_labels, priors)
    >>> match.positive.sum(), match.neutral.sum(), match.negative.sum()
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..loss import NEUTRAL, PriorTargets, match_priors
from ..ops.anchors import fpn_sizes, level_priors, make_priors
from ..ops.boxes import VARIANCES, center_size, decode, encode, jaccard, point_form

FIRST_LEVEL = 3     # the head predicts from P3 (stride 8) upwards


# -- priors per level ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PriorLevel:
    """One FPN level's share of the priors.

    name "P3".."P7"; feature_size (H, W) cells; stride: input pixels per cell (S / W);
    sides: (w, h) of each of the level's A priors in input pixels (same in every cell);
    count = H*W*A; the level's priors are rows ``start:stop`` of ``make_priors``'s [P,4].
    """

    name: str
    feature_size: tuple[int, int]
    stride: float
    sides: tuple[tuple[float, float], ...]
    count: int
    start: int

    @property
    def stop(self) -> int:
        return self.start + self.count


def prior_levels(cfg, input_size: int | None = None) -> list[PriorLevel]:
    """The levels P3..P7 of ``cfg`` for a square input of side ``input_size`` (default ``cfg.max_size``)."""
    size = input_size or cfg.max_size
    levels, start = [], 0
    for i, ((height, width), scales) in enumerate(zip(fpn_sizes(cfg, size), cfg.pred_scales)):
        cell = level_priors(1, 1, scales, cfg.aspect_ratios, cfg.max_size, cfg.square_anchors)  # [A,4]
        sides = tuple((float(w * size), float(h * size)) for w, h in cell[:, 2:])
        count = height * width * len(sides)
        levels.append(PriorLevel(f"P{FIRST_LEVEL + i}", (height, width), size / width, sides, count, start))
        start += count
    return levels


def priors_by_level(cfg, input_size: int | None = None) -> list[torch.Tensor]:
    """``make_priors`` split per level: a list of [H_l*W_l*A, 4] float32 (cx, cy, w, h), relative."""
    priors = make_priors(fpn_sizes(cfg, input_size or cfg.max_size), cfg)
    return [priors[level.start:level.stop] for level in prior_levels(cfg, input_size)]


def prior_level_index(cfg, input_size: int | None = None) -> torch.Tensor:
    """[P] int64: the level (0 for P3 ... 4 for P7) of every prior, in ``make_priors`` order."""
    levels = prior_levels(cfg, input_size)
    return torch.cat([torch.full((level.count,), i, dtype=torch.int64) for i, level in enumerate(levels)])


def prior_table(cfg, input_size: int | None = None) -> list[dict]:
    """One row per level (plus a total): level, feature map, stride, prior sides, count, index range."""
    rows = []
    for level in prior_levels(cfg, input_size):
        height, width = level.feature_size
        sides = ", ".join(f"{w:.0f}" if abs(w - h) < 0.5 else f"{w:.0f}x{h:.0f}" for w, h in level.sides)
        rows.append({"level": level.name, "feature map": f"{height}x{width}", "stride (px)": f"{level.stride:.1f}",
                     "prior sides (px)": sides, "priors": level.count,
                     "indices": f"{level.start}..{level.stop - 1}"})
    rows.append({"level": "total", "feature map": "", "stride (px)": "", "prior sides (px)": "",
                 "priors": sum(r["priors"] for r in rows), "indices": ""})
    return rows


def input_view(image: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 image stretched to size x size (bilinear): what the network sees, for drawing."""
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


# -- drawing priors -----------------------------------------------------------------------------
ANCHOR_COLORS = ("#ff3b30", "#ffcc00", "#34c759", "#0a84ff", "#bf5af2", "#ff9f0a", "#64d2ff", "#ff375f",
                 "#ffffff")


def _rectangle(ax, box, color, linewidth=1.0, linestyle="-", alpha=1.0):
    """Draw a point-form box (pixels) on ``ax``."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=linewidth,
                           linestyle=linestyle, alpha=alpha))


def draw_level_priors(ax, cfg, level: int, image: np.ndarray | None = None,
                      cells: list[tuple[int, int]] | None = None, input_size: int | None = None):
    """Draw one level's grid of prior centres and the A priors of a few cells.

    level: 0 (P3) .. 4 (P7). image: optional HxWx3 uint8, shown stretched to the input size.
    cells: (row, col) grid cells whose priors are drawn; default the top-left, centre and
    bottom-right cells. Every cell centre is one scatter point, so the scatter holds
    ``count / A`` points. The view widens to show priors larger than the image.
    Returns ``ax``.
    """
    size = input_size or cfg.max_size
    info = prior_levels(cfg, size)[level]
    priors = priors_by_level(cfg, size)[level].double() * size                     # pixels
    num_anchors = len(info.sides)
    height, width = info.feature_size
    if cells is None:
        cells = list(dict.fromkeys([(0, 0), (height // 2, width // 2), (height - 1, width - 1)]))
    if image is not None:
        ax.imshow(input_view(image, size), extent=(0, size, size, 0))
    centres = priors[::num_anchors, :2].numpy()
    ax.scatter(centres[:, 0], centres[:, 1], s=6, c="white", edgecolors="black", linewidths=0.4, zorder=3)
    corners = [np.array([0.0, 0.0, size, size])]
    for row, col in cells:
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(f"cell {(row, col)} is outside {info.name}'s {height}x{width} grid")
        first = (row * width + col) * num_anchors           # rows outer, columns inner (ops/anchors.py)
        for a, box in enumerate(point_form(priors[first:first + num_anchors]).numpy()):
            _rectangle(ax, box, ANCHOR_COLORS[a % len(ANCHOR_COLORS)], linewidth=1.5)
            corners.append(box)
    corners = np.stack(corners)
    margin = 0.03 * (corners[:, 2:].max() - corners[:, :2].min())
    ax.set_xlim(corners[:, 0].min() - margin, corners[:, 2].max() + margin)
    ax.set_ylim(corners[:, 3].max() + margin, corners[:, 1].min() - margin)
    ax.set_aspect("equal")
    ax.set_title(f"{info.name}: {height}x{width} cells, stride {info.stride:.0f} px\n{info.count} priors",
                 fontsize=9)
    return ax


def plot_prior_levels(cfg, image: np.ndarray | None = None, input_size: int | None = None, cells=None):
    """All levels side by side (:func:`draw_level_priors`), with a legend of the anchor shapes.
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    levels = prior_levels(cfg, input_size)
    fig, axes = plt.subplots(1, len(levels), figsize=(3.2 * len(levels), 3.8), dpi=90)
    for i, ax in enumerate(np.atleast_1d(axes)):
        draw_level_priors(ax, cfg, i, image, cells, input_size)
        ax.tick_params(labelsize=7)
    # Anchor order inside a cell: scales outer, aspect ratios inner (ops/anchors.py).
    shapes = [(scale_index, ar) for scale_index in range(len(cfg.pred_scales[0])) for ar in cfg.aspect_ratios]
    handles = [Line2D([], [], color=ANCHOR_COLORS[a % len(ANCHOR_COLORS)],
                      label=(f"scale {s + 1}, " if len(cfg.pred_scales[0]) > 1 else "") + f"aspect ratio {ar:g}")
               for a, (s, ar) in enumerate(shapes)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


# -- matching -----------------------------------------------------------------------------------
@dataclass
class PriorMatch:
    """How one image's ground truth labels its P priors (:func:`classify_priors`).

    iou      [P] float, best IoU of each prior with any ground-truth box (0 without boxes)
    targets  :class:`~yolact_edu.loss.PriorTargets` exactly as the loss receives them
    forced   [P] bool, positives whose IoU is below ``pos_threshold``: a box claimed them
             as its best prior so that no object goes untrained
    """

    iou: torch.Tensor
    targets: PriorTargets
    forced: torch.Tensor
    pos_threshold: float
    neg_threshold: float

    @property
    def positive(self) -> torch.Tensor:
        return self.targets.labels > 0

    @property
    def neutral(self) -> torch.Tensor:
        return self.targets.labels == NEUTRAL

    @property
    def negative(self) -> torch.Tensor:
        return self.targets.labels == 0

    @property
    def gt_index(self) -> torch.Tensor:
        return self.targets.gt_index

    def per_object(self, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, level_index: torch.Tensor,
                   input_size: int, class_names=None) -> list[dict]:
        """One row per ground-truth box: its size in input pixels (sqrt of the area), its
        positives per level, its neutral priors (those whose best box it is) and whether its
        only positive is the forced one."""
        num_levels = int(level_index.max()) + 1
        rows = []
        for g, (box, label) in enumerate(zip(gt_boxes.tolist(), gt_labels.tolist())):
            mine = self.gt_index == g
            positives = self.positive & mine
            per_level = torch.bincount(level_index[positives], minlength=num_levels).tolist()
            rows.append({"object": g, "class": class_names[label] if class_names else label,
                         "size (px)": round(float(np.sqrt((box[2] - box[0]) * (box[3] - box[1]))) * input_size, 1),
                         "positives": int(positives.sum()), "per level": per_level,
                         "neutral": int((self.neutral & mine).sum()),
                         "forced only": bool(positives.sum() == (positives & self.forced).sum())})
        return rows


def classify_priors(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, priors: torch.Tensor,
                    pos_threshold: float = 0.5, neg_threshold: float = 0.4,
                    crowd_boxes: torch.Tensor | None = None) -> PriorMatch:
    """Label every prior positive / neutral / negative with :func:`~yolact_edu.loss.match_priors`
    and keep the IoU it was decided on.

    gt_boxes [G,4] point form relative (0..1); gt_labels [G] int64 0-based; priors [P,4] (cx,cy,w,h).
    Positive: IoU >= pos_threshold, or forced (each box's best prior); negative: IoU < neg_threshold;
    neutral: in between (no class loss at all).
    """
    targets = match_priors(gt_boxes.clone(), gt_labels, priors, crowd_boxes, pos_threshold, neg_threshold)
    if gt_boxes.shape[0]:
        iou = jaccard(gt_boxes, point_form(priors)).max(0).values
    else:
        iou = priors.new_zeros(priors.shape[0])
    forced = (targets.labels > 0) & (iou < pos_threshold)
    return PriorMatch(iou, targets, forced, pos_threshold, neg_threshold)


def matching_statistics(dataset, priors: torch.Tensor, level_index: torch.Tensor, input_size: int,
                        pos_threshold: float = 0.5, neg_threshold: float = 0.4,
                        limit: int | None = None) -> dict[str, np.ndarray]:
    """Match every non-crowd object of ``dataset`` (a CocoDataset; its first ``limit`` images).

    Returns arrays over objects: "size" (sqrt of the box area in input pixels), "positives",
    "forced_only" (bool: the forced prior is its only positive), "best_iou" (over all priors),
    "level" (level of its best prior).
    """
    stats: dict[str, list] = {"size": [], "positives": [], "forced_only": [], "best_iou": [], "level": []}
    prior_boxes = point_form(priors)
    for index in range(min(len(dataset), limit or len(dataset))):
        info, target = dataset.image_info(index), dataset.load_target(index)
        keep = ~target["iscrowd"]
        scale = torch.tensor([info["width"], info["height"]] * 2, dtype=torch.float32)
        boxes, labels = target["boxes"][keep] / scale, target["labels"][keep]
        if not len(labels):
            continue
        match = classify_priors(boxes, labels, priors, pos_threshold, neg_threshold)
        best_iou, best_prior = jaccard(boxes, prior_boxes).max(1)
        for row, iou, prior in zip(match.per_object(boxes, labels, level_index, input_size),
                                   best_iou.tolist(), best_prior.tolist()):
            stats["size"].append(row["size (px)"])
            stats["positives"].append(row["positives"])
            stats["forced_only"].append(row["forced only"])
            stats["best_iou"].append(iou)
            stats["level"].append(int(level_index[prior]))
    return {key: np.asarray(value) for key, value in stats.items()}


def positives_vs_box_size(priors: torch.Tensor, sides: Sequence[float], input_size: int, trials: int = 25,
                          pos_threshold: float = 0.5, seed: int = 0) -> dict[str, np.ndarray]:
    """A controlled experiment: a single square box of each side (input pixels) at ``trials``
    random positions inside the input. Returns "side", "positives" (mean positive priors) and
    "forced_only" (fraction of trials whose only positive is the forced one).

    With one box, :func:`match_priors` reduces to: positives are the priors with IoU >=
    ``pos_threshold``, or the single best prior when none reaches it; so all boxes are
    matched in one IoU matrix (``tests/test_prior_viz.py`` checks it against ``classify_priors``).
    """
    gen = torch.Generator().manual_seed(seed)
    sides_t = torch.as_tensor(np.asarray(sides, dtype=np.float64))
    half = (sides_t.clamp(max=input_size) / 2 / input_size)[:, None, None]              # [N,1,1]
    centres = half + torch.rand(len(sides_t), trials, 2, generator=gen, dtype=torch.float64) * (1 - 2 * half)
    radius = (sides_t / 2 / input_size)[:, None, None]
    boxes = torch.cat([centres - radius, centres + radius], -1).reshape(-1, 4)         # [N*T,4]
    iou = jaccard(boxes, point_form(priors.double()))                                  # [N*T,P]
    natural = (iou >= pos_threshold).sum(1)
    positives = torch.where(natural > 0, natural, torch.ones_like(natural)).reshape(len(sides_t), trials)
    forced_only = (natural == 0).reshape(len(sides_t), trials)
    return {"side": sides_t.numpy(), "positives": positives.double().mean(1).numpy(),
            "forced_only": forced_only.double().mean(1).numpy()}


def plot_matching(image: np.ndarray, gt_boxes: torch.Tensor, match: PriorMatch, priors: torch.Tensor,
                  level_index: torch.Tensor, input_size: int, gt_labels=None, class_names=None):
    """Three panels for one image: positives (coloured by the box they matched, forced ones
    dashed), neutral priors, and a bar chart of positives per level for each object.
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors
    prior_px = point_form(priors).double().numpy() * input_size
    gt_px = gt_boxes.double().numpy() * input_size
    view = input_view(image, input_size)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), dpi=90, gridspec_kw={"width_ratios": [1, 1, 1.25]})
    for ax in axes[:2]:
        ax.imshow(view, extent=(0, input_size, input_size, 0))
        ax.set_xlim(0, input_size)
        ax.set_ylim(input_size, 0)
        ax.axis("off")
    for p in torch.nonzero(match.positive).flatten().tolist():
        g = int(match.gt_index[p])
        _rectangle(axes[0], prior_px[p], colors[g % 10], 1.0, "--" if match.forced[p] else "-", 0.9)
    for p in torch.nonzero(match.neutral).flatten().tolist():
        _rectangle(axes[1], prior_px[p], "orange", 0.8, "-", 0.6)
    for g, box in enumerate(gt_px):
        _rectangle(axes[0], box, colors[g % 10], 3.0)
        axes[0].text(box[0] + 1, box[1] + 7, str(g), color="white", fontsize=8, weight="bold",
                     bbox={"facecolor": colors[g % 10], "pad": 1, "linewidth": 0})
        _rectangle(axes[1], box, "white", 2.0)
    axes[0].set_title(f"{int(match.positive.sum())} positive priors (IoU >= {match.pos_threshold:g};"
                      " dashed: forced)", fontsize=9)
    axes[1].set_title(f"{int(match.neutral.sum())} neutral priors ({match.neg_threshold:g} <= IoU < "
                      f"{match.pos_threshold:g}); {int(match.negative.sum())} negative", fontsize=9)
    labels = gt_labels if gt_labels is not None else torch.zeros(len(gt_boxes), dtype=torch.int64)
    rows = match.per_object(gt_boxes, labels, level_index, input_size, class_names)
    counts = np.array([row["per level"] for row in rows]).reshape(len(rows), -1)
    bottom = np.zeros(len(rows))
    level_colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, counts.shape[1]))
    for level in range(counts.shape[1]):
        axes[2].bar(range(len(rows)), counts[:, level], bottom=bottom, color=level_colors[level],
                    label=f"P{FIRST_LEVEL + level}")
        bottom += counts[:, level]
    names = [f"{r['object']}\n{r['class']}\n{r['size (px)']:.0f}px" for r in rows]
    axes[2].set_xticks(range(len(rows)), names, fontsize=7)
    axes[2].set_ylabel("positive priors")
    axes[2].yaxis.get_major_locator().set_params(integer=True)
    axes[2].set_title("positives per object and level (object size = sqrt(area))", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_iou_histogram(ax, match: PriorMatch, bins: int = 50):
    """Histogram (log counts) of every prior's best IoU, the negative / neutral / positive bands shaded."""
    iou = match.iou.numpy()
    ax.axvspan(0, match.neg_threshold, color="tab:blue", alpha=0.1, label=f"negative ({int(match.negative.sum())})")
    ax.axvspan(match.neg_threshold, match.pos_threshold, color="orange", alpha=0.2,
               label=f"neutral ({int(match.neutral.sum())})")
    ax.axvspan(match.pos_threshold, 1, color="tab:green", alpha=0.15,
               label=f"positive ({int(match.positive.sum())}, {int(match.forced.sum())} forced)")
    ax.hist(iou, bins=bins, range=(0, 1), color="black", log=True)
    ax.set_xlabel("best IoU of the prior with any ground-truth box")
    ax.set_ylabel("priors (log scale)")
    ax.legend(fontsize=8)
    return ax


def plot_positives_vs_size(ax, stats: dict[str, np.ndarray] | None, cfg, input_size: int | None = None,
                           sweep: dict[str, np.ndarray] | None = None):
    """Positives per object against object size: the dataset's objects (:func:`matching_statistics`;
    forced-only in red) and/or the square-box experiment (:func:`positives_vs_box_size`; a line,
    the sides where every trial had only its forced prior shaded). The first anchor side of
    every level is a dotted line. Returns ``ax``."""
    if stats is not None:
        jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(stats["size"]))
        forced = stats["forced_only"].astype(bool)
        ax.scatter(stats["size"][~forced], stats["positives"][~forced] + jitter[~forced], s=10, alpha=0.5,
                   label="dataset objects")
        ax.scatter(stats["size"][forced], stats["positives"][forced] + jitter[forced], s=14, color="red",
                   label=f"dataset objects with only the forced prior ({int(forced.sum())})")
    if sweep is not None:
        ax.plot(sweep["side"], sweep["positives"], color="black", linewidth=1.5,
                label="square box at random positions (mean)")
        starved = sweep["side"][sweep["forced_only"] == 1]
        if len(starved):
            ax.axvspan(sweep["side"].min(), starved.max(), color="red", alpha=0.1,
                       label="square boxes: only the forced prior")
    levels = prior_levels(cfg, input_size)
    for level in levels:
        ax.axvline(level.sides[0][0], color="gray", linestyle=":", linewidth=1)
    _log_ticks(ax, [t for t in (5, 10, 20, 50, 100, 200, 500, 1000) if t <= 2 * (input_size or cfg.max_size)])
    top = ax.secondary_xaxis("top")      # level names above the plot, clear of the data and legend
    top.set_xticks([level.sides[0][0] for level in levels], [level.name for level in levels], fontsize=8)
    top.tick_params(which="minor", labeltop=False, top=False)
    ax.set_xlabel("object size: sqrt(box area) in input pixels (log)")
    ax.set_ylabel("positive priors")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def _log_ticks(ax, ticks):
    """Log x axis labelled with plain numbers at ``ticks`` only (no 3x10^1-style minor labels)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


# -- box encoding -------------------------------------------------------------------------------
@dataclass
class EncodingExample:
    """One ground-truth box encoded against one prior (SSD encoding with variances).

    gt [4] point form and gt_centre_size [4] (cx, cy, w, h), relative; prior [4] (cx, cy, w, h);
    offsets [4] = ((gx-px)/pw, (gy-py)/ph, log(gw/pw), log(gh/ph)) before the variances;
    loc [4] = offsets / (0.1, 0.1, 0.2, 0.2), the regression target; decoded [4] point form;
    round_trip_error: max |decoded - gt|.
    """

    gt: torch.Tensor
    gt_centre_size: torch.Tensor
    prior: torch.Tensor
    offsets: torch.Tensor
    loc: torch.Tensor
    decoded: torch.Tensor
    round_trip_error: float


def explain_encoding(gt_box: torch.Tensor, prior: torch.Tensor) -> EncodingExample:
    """Encode ``gt_box`` [4] (point form) against ``prior`` [4] (cx,cy,w,h) with
    :func:`~yolact_edu.ops.boxes.encode`, and decode it back with :func:`~yolact_edu.ops.boxes.decode`."""
    gt_box, prior = gt_box.double().reshape(4), prior.double().reshape(4)
    loc = encode(gt_box[None], prior[None])[0]
    decoded = decode(loc[None], prior[None])[0]
    variances = torch.tensor([VARIANCES[0]] * 2 + [VARIANCES[1]] * 2, dtype=torch.float64)
    return EncodingExample(gt_box, center_size(gt_box), prior, loc * variances, loc, decoded,
                           float((decoded - gt_box).abs().max()))


def plot_encoding(ax, example: EncodingExample, input_size: int, image: np.ndarray | None = None,
                  predicted_loc: torch.Tensor | None = None):
    """Draw the prior (dashed), the ground truth (solid), the centre shift (arrow) and, if given,
    the box the network's regression ``predicted_loc`` [4] decodes to (dotted). Returns ``ax``."""
    if image is not None:
        ax.imshow(input_view(image, input_size), extent=(0, input_size, input_size, 0))
    prior_box = point_form(example.prior[None])[0].numpy() * input_size
    gt = example.gt.numpy() * input_size
    _rectangle(ax, prior_box, "yellow", 2.0, "--")
    _rectangle(ax, gt, "lime", 2.0)
    (px, py), (gx, gy) = example.prior[:2].numpy() * input_size, example.gt_centre_size[:2].numpy() * input_size
    ax.annotate("", xy=(gx, gy), xytext=(px, py), arrowprops={"arrowstyle": "->", "color": "white", "lw": 1.5})
    boxes = [prior_box, gt]
    if predicted_loc is not None:
        predicted = decode(predicted_loc.double().reshape(1, 4), example.prior[None])[0].numpy() * input_size
        _rectangle(ax, predicted, "magenta", 2.0, ":")
        boxes.append(predicted)
    boxes = np.stack(boxes + [np.array([0, 0, input_size, input_size])])
    ax.set_xlim(boxes[:, 0].min() - 2, boxes[:, 2].max() + 2)
    ax.set_ylim(boxes[:, 3].max() + 2, boxes[:, 1].min() - 2)
    ax.set_aspect("equal")
    return ax


__all__ = ["PriorLevel", "prior_levels", "priors_by_level", "prior_level_index", "prior_table",
           "input_view", "draw_level_priors", "plot_prior_levels", "PriorMatch", "classify_priors",
           "matching_statistics", "positives_vs_box_size", "plot_matching", "plot_iou_histogram",
           "plot_positives_vs_size", "EncodingExample", "explain_encoding", "plot_encoding"]
