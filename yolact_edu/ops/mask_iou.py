"""Mask IoU, one function per contract. The three differ in what they compare and in what two
empty masks score, on purpose, so each has its own name:

- :func:`paired_mask_iou`   n corresponding pairs -> [n]; two empties score 0 (a loss target:
  nothing to reward)
- :func:`pairwise_mask_iou` every mask against every other -> [N,M]; two empties score 0
  (matching detections to ground truth)
- :func:`mask_pair_iou`     one numpy pair -> float; two empties score 1.0 (they agree exactly,
  as Boundary IoU needs for a band that is empty in both)
"""
from __future__ import annotations

import numpy as np
import torch


def paired_mask_iou(masks_a: torch.Tensor, masks_b: torch.Tensor) -> torch.Tensor:
    """IoU of corresponding binary masks: [n,H,W] x [n,H,W] (bool or {0,1}) -> [n] float in
    [0,1]; 0 where both are empty."""
    if masks_a.shape != masks_b.shape:
        raise ValueError(f"mask shapes differ: {tuple(masks_a.shape)} vs {tuple(masks_b.shape)}")
    a, b = masks_a.float(), masks_b.float()
    intersection = (a * b).sum((-2, -1))
    union = a.sum((-2, -1)) + b.sum((-2, -1)) - intersection
    return intersection / union.clamp(min=1)  # union counts pixels: >= 1 unless both empty


def pairwise_mask_iou(masks_a: torch.Tensor, masks_b: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of binary masks: [N,H,W] x [M,H,W] -> [N,M] in [0,1] (0 for two empties)."""
    a = masks_a.reshape(len(masks_a), -1).float()
    b = masks_b.reshape(len(masks_b), -1).float()
    inter = a @ b.t()
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return inter / union.clamp(min=1)  # union counts pixels: >= 1 unless both empty (then inter is 0)


def mask_pair_iou(a, b) -> float:
    """IoU of two masks [H,W] (numpy or tensor, bool or {0,1}) as a float; 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


__all__ = ["paired_mask_iou", "pairwise_mask_iou", "mask_pair_iou"]
