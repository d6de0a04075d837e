"""Looking at the priors of each FPN level (notebook 03; paper §3.3).

Everything here explains existing steps, it adds none: the priors come from
:func:`~yolact_edu.ops.anchors.make_priors`, the labels from
:func:`~yolact_edu.loss.match_priors`, the regression targets from
:func:`~yolact_edu.ops.boxes.encode`. Drawings are in *input* pixels: the image is
stretched to ``S x S`` (``S = cfg.max_size``) as :meth:`Yolact.preprocess` does,
so a square prior looks square.

    >>> levels = prior_levels(cfg)                  # one PriorLevel per FPN level P3..P7

Matching and box encoding are drawn by :mod:`.matching`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..ops.anchors import fpn_sizes, level_priors, make_priors
from ..ops.boxes import point_form

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


def draw_box(ax, box, color, linewidth=1.0, linestyle="-", alpha=1.0):
    """Draw a point-form box (x1, y1, x2, y2 in pixels), unfilled, on ``ax``."""
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
            draw_box(ax, box, ANCHOR_COLORS[a % len(ANCHOR_COLORS)], linewidth=1.5)
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


__all__ = ["FIRST_LEVEL", "PriorLevel", "prior_levels", "priors_by_level", "prior_level_index", "prior_table",
           "input_view", "draw_box", "draw_level_priors", "plot_prior_levels"]
