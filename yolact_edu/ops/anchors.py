"""Prior (anchor) boxes, paper §3.3 and fig. 4.

Every cell of every FPN level owns ``A`` priors.  Their order is part of the
checkpoint contract (the head's channel ``a*4 + coord`` belongs to prior ``a``
of the cell), so it follows the original exactly: levels P3..P7, then rows
(y) outer, columns (x) inner, then scales, then aspect ratios.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def level_priors(conv_h: int, conv_w: int, scales: Sequence[float],
                 aspect_ratios: Sequence[float], max_size: int,
                 square: bool) -> np.ndarray:
    """Priors of one FPN level as a float64 array [conv_h*conv_w*A, 4] of (cx, cy, w, h),
    relative to the input (centres in (0, 1); sizes unclamped, may exceed 1).

    ``scales`` are anchor sides in pixels of a ``max_size`` input; an aspect ratio
    ``ar`` gives ``w = s*sqrt(ar)/max_size, h = s/sqrt(ar)/max_size``; ``square``
    (all YOLACT v1 checkpoints) replaces ``h`` by ``w``.
    """
    shapes = []
    for scale in scales:
        for ar in aspect_ratios:
            root = math.sqrt(ar)
            w = scale * root / max_size      # same operation order as the original, for bit-equality
            h = scale / root / max_size
            shapes.append((w, w if square else h))
    shapes_arr = np.asarray(shapes, dtype=np.float64)                     # [A, 2]
    ys, xs = np.meshgrid(np.arange(conv_h), np.arange(conv_w), indexing="ij")
    centres = np.stack([(xs + 0.5) / conv_w, (ys + 0.5) / conv_h], -1).reshape(-1, 1, 2)
    num_cells, num_anchors = centres.shape[0], shapes_arr.shape[0]
    out = np.concatenate([np.broadcast_to(centres, (num_cells, num_anchors, 2)),
                          np.broadcast_to(shapes_arr, (num_cells, num_anchors, 2))], -1)
    return out.reshape(-1, 4)


def make_priors(feature_sizes: Sequence[tuple[int, int]], cfg,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """All priors [P,4] float32 (cx, cy, w, h) for the FPN map sizes ``[(H3,W3), ..., (H7,W7)]``.

    P = A * sum(H_l * W_l): 19,248 for YOLACT at 550, 57,744 for YOLACT++.
    """
    levels = [level_priors(h, w, scales, cfg.aspect_ratios, cfg.max_size, cfg.square_anchors)
              for (h, w), scales in zip(feature_sizes, cfg.pred_scales)]
    return torch.from_numpy(np.concatenate(levels)).to(device=device, dtype=torch.float32)


def fpn_sizes(cfg, input_size: int | None = None) -> list[tuple[int, int]]:
    """FPN map sizes for a square input (the backbone's stride-2 convs round up)."""
    size = input_size or cfg.max_size
    stride_size = size
    sizes = []
    # ResNet: conv1 /2, maxpool /2, then layers.1..3 each /2 -> C3 at /8. DarkNet reaches the
    # same sizes (five stride-2 convs after a stride-1 stem), both with ceil rounding.
    for _ in range(3):
        stride_size = (stride_size + 1) // 2
    for _ in range(len(cfg.selected_layers) + cfg.fpn_num_downsample):
        sizes.append((stride_size, stride_size))
        stride_size = (stride_size + 1) // 2
    return sizes


def num_priors(cfg, input_size: int | None = None) -> int:
    """Number of priors P for a square input of side ``input_size`` (default ``cfg.max_size``)."""
    return cfg.num_anchors * sum(h * w for h, w in fpn_sizes(cfg, input_size))
