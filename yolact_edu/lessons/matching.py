"""Looking at matching and box encoding (notebook 03; paper §3.3 and §3.1): which priors an
object makes positive, neutral or negative, and the regression targets of a positive one.

Everything here explains existing steps, it adds none: the labels come from
:func:`~yolact_edu.loss.match_priors`, the targets from :func:`~yolact_edu.ops.boxes.encode`.
Drawings are in *input* pixels, as in :mod:`.priors`.

    >>> match = classify_priors(gt_boxes, gt_labels, priors)
    >>> match.positive.sum(), match.neutral.sum(), match.negative.sum()
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..loss import NEUTRAL, PriorTargets, match_priors
from ..ops.boxes import VARIANCES, center_size, decode, encode, jaccard, point_form
from .priors import FIRST_LEVEL, draw_box, input_view, prior_levels


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

    Returns arrays over objects: "size" (sqrt of the box area in input pixels), "width" and
    "height" (input pixels), "positives",
    "forced_only" (bool: the forced prior is its only positive), "best_iou" (over all priors),
    "level" (level of its best prior).
    """
    stats: dict[str, list] = {"size": [], "width": [], "height": [], "positives": [], "forced_only": [],
                              "best_iou": [], "level": []}
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
        for row, iou, prior, box in zip(match.per_object(boxes, labels, level_index, input_size),
                                        best_iou.tolist(), best_prior.tolist(), boxes.tolist()):
            stats["size"].append(row["size (px)"])
            stats["width"].append((box[2] - box[0]) * input_size)
            stats["height"].append((box[3] - box[1]) * input_size)
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


def prior_balance_sentence(match: PriorMatch) -> str:
    """How many priors of one image are negative, neutral and positive, in words."""
    total = int(match.iou.numel())
    counts = {name: int(getattr(match, name).sum()) for name in ("negative", "neutral", "positive")}
    shares = ", ".join(f"{n} {name} ({n / total:.1%})" for name, n in counts.items())
    return f"{shares} of this image's {total} priors."


def small_object_sentences(stats: dict[str, np.ndarray], sweeps: dict[str, dict[str, np.ndarray]],
                           few: int = 3) -> list[str]:
    """What §2's size figure measured, in words: per model (``sweeps``: name -> :func:`positives_vs_box_size`)
    the largest square box that trains on its forced prior alone and the largest with at most ``few``
    positives on average, against the range for larger boxes; for the dataset (``stats`` of
    :func:`matching_statistics`) its smallest object and the shapes of its forced-only objects."""
    lines = []
    for name, sweep in sweeps.items():
        side, positives = sweep["side"], sweep["positives"]
        starved = side[sweep["forced_only"] == 1]
        scarce = side[positives <= few]
        text = f"{name}: a square box up to {starved.max():.0f} px trains on its forced prior alone" if len(starved) \
            else f"{name}: every square box gets a natural positive"
        if len(scarce):
            larger = positives[side > scarce.max()]
            text += f"; one up to {scarce.max():.0f} px through at most {few} positives on average"
            if len(larger):
                text += f", against {larger.min():.1f} to {larger.max():.1f} for larger ones"
        lines.append(text + ".")
    forced = stats["forced_only"].astype(bool)
    shapes = ", ".join(f"{w:.0f}×{h:.0f}" for w, h in zip(stats["width"][forced][:4], stats["height"][forced][:4]))
    listed = f" (w×h px: {shapes}{', ...' if forced.sum() > 4 else ''})." if forced.any() else "."
    lines.append(f"Shapes val set: smallest object {stats['size'].min():.0f} px; objects with only the forced "
                 f"prior: {int(forced.sum())} of {len(forced)}{listed}")
    return lines


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
        draw_box(axes[0], prior_px[p], colors[g % 10], 1.0, "--" if match.forced[p] else "-", 0.9)
    for p in torch.nonzero(match.neutral).flatten().tolist():
        draw_box(axes[1], prior_px[p], "orange", 0.8, "-", 0.6)
    for g, box in enumerate(gt_px):
        draw_box(axes[0], box, colors[g % 10], 3.0)
        axes[0].text(box[0] + 1, box[1] + 7, str(g), color="white", fontsize=8, weight="bold",
                     bbox={"facecolor": colors[g % 10], "pad": 1, "linewidth": 0})
        draw_box(axes[1], box, "white", 2.0)
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


ENCODING_STYLE = {"prior": ("gold", "--", 2.5), "ground truth": ("lime", "-", 3.0),
                  "network's decoded box": ("magenta", (0, (4, 2)), 2.5)}
"""name -> (colour, line style, width) of the three boxes of :func:`plot_encoding`; each drawn over a
black outline so it stays visible on any image and where the boxes nearly coincide."""


def _outlined_box(ax, box, color, linestyle, linewidth, label):
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in box)
    patch = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linestyle=linestyle,
                      linewidth=linewidth, label=label)
    patch.set_path_effects([patheffects.Stroke(linewidth=linewidth + 2.5, foreground="black"), patheffects.Normal()])
    ax.add_patch(patch)
    return patch


def prediction_gap_sentence(example: EncodingExample, predicted_loc: torch.Tensor) -> str:
    """How far the network's regression [4] is from the target, per coordinate, in words."""
    gap = (predicted_loc.double().cpu().reshape(4) - example.loc).abs().tolist()
    names = ("dx", "dy", "dw", "dh")
    pairs = ", ".join(f"{name} {g:.2f}" for name, g in zip(names, gap))
    return (f"The trained network's loc differs from the target by {pairs}: closest in "
            f"{names[int(np.argmin(gap))]}, farthest in {names[int(np.argmax(gap))]}.")


def plot_encoding(ax, example: EncodingExample, input_size: int, image: np.ndarray | None = None,
                  predicted_loc: torch.Tensor | None = None):
    """Draw the prior (dashed gold), the ground truth (solid green), the centre shift (arrow) and, if
    given, the box the network's regression ``predicted_loc`` [4] decodes to (dashed magenta), each
    outlined in black, with a legend (:data:`ENCODING_STYLE`). Returns ``ax``."""
    from matplotlib import patheffects

    if image is not None:
        ax.imshow(input_view(image, input_size), extent=(0, input_size, input_size, 0))
    prior_box = point_form(example.prior[None])[0].numpy() * input_size
    gt = example.gt.numpy() * input_size
    boxes = {"prior": prior_box, "ground truth": gt}
    if predicted_loc is not None:
        predicted = decode(predicted_loc.double().reshape(1, 4).cpu(), example.prior[None])[0].numpy() * input_size
        boxes["network's decoded box"] = predicted
    for name, box in boxes.items():        # the predicted box last: on top where it meets the ground truth
        color, linestyle, linewidth = ENCODING_STYLE[name]
        _outlined_box(ax, box, color, linestyle, linewidth, name)
    (px, py), (gx, gy) = example.prior[:2].numpy() * input_size, example.gt_centre_size[:2].numpy() * input_size
    arrow = ax.annotate("", xy=(gx, gy), xytext=(px, py), arrowprops={"arrowstyle": "->", "color": "white", "lw": 2})
    arrow.arrow_patch.set_path_effects([patheffects.Stroke(linewidth=4, foreground="black"), patheffects.Normal()])
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    extent = np.stack(list(boxes.values()) + [np.array([0, 0, input_size, input_size])])
    ax.set_xlim(extent[:, 0].min() - 2, extent[:, 2].max() + 2)
    ax.set_ylim(extent[:, 3].max() + 2, extent[:, 1].min() - 2)
    ax.set_aspect("equal")
    return ax


__all__ = ["PriorMatch", "classify_priors", "matching_statistics", "prior_balance_sentence",
           "small_object_sentences", "prediction_gap_sentence", "positives_vs_box_size", "plot_matching",
           "plot_iou_histogram", "plot_positives_vs_size", "EncodingExample", "explain_encoding", "ENCODING_STYLE",
           "plot_encoding"]
