"""Do two runs of a model find the same things? The fast path's correctness guard (issue 16).

Lower precision (bf16/fp16) moves scores by a few thousandths, so two detections whose scores
nearly tie can swap places; comparing rank by rank would then compare different objects. So the
reference's top detections are each matched to a detection of the other run: the same class, the
largest box overlap, each used once, searched among the other run's top ``top + slack``.

    >>> report = detection_agreement(model.predict(image), fast.predict(image), top=20)
    >>> report["agrees"], report["max_box_px"], report["min_mask_iou"]
"""
from __future__ import annotations

import torch

from ..detections import Detections
from .boxes import jaccard
from .mask_iou import mask_pair_iou

BOX_PX = 1.0          # the guard: matched boxes within one pixel ...
MASK_IOU = 0.95       # ... and masks overlapping at IoU >= 0.95


def detection_agreement(reference: Detections, other: Detections, top: int = 20, slack: int = 10,
                        box_px: float = BOX_PX, min_iou: float = MASK_IOU) -> dict:
    """Match ``reference``'s ``top`` best detections to ``other``'s (same class, best box IoU,
    greedy in the reference's score order) and measure how far apart the matched pairs are.

    Returns {"compared": how many reference detections, "matched", "unmatched" (list of reference
    ranks without a partner), "same_order" (matched at the same rank throughout),
    "max_box_px" (largest coordinate difference of a matched pair, pixels), "min_mask_iou",
    "max_score_diff", "agrees" (all matched, boxes within ``box_px``, masks at IoU >= ``min_iou``)}.
    """
    compared = min(top, len(reference))
    pool = min(top + slack, len(other))
    ref_boxes, other_boxes = reference.boxes[:compared].float(), other.boxes[:pool].float()
    overlaps = (jaccard(ref_boxes, other_boxes) if compared and pool
                else torch.zeros((compared, pool)))
    same_class = reference.labels[:compared, None] == other.labels[None, :pool]
    overlaps = torch.where(same_class, overlaps, torch.full_like(overlaps, -1.0))
    used: set[int] = set()
    pairs, unmatched = [], []
    for i in range(compared):
        order = overlaps[i].argsort(descending=True).tolist()
        partner = next((j for j in order if j not in used and overlaps[i, j] >= 0), None)
        if partner is None:
            unmatched.append(i)
            continue
        used.add(partner)
        pairs.append((i, partner))
    max_box = max_score = 0.0
    min_mask = 1.0
    for i, j in pairs:
        max_box = max(max_box, float((reference.boxes[i] - other.boxes[j]).abs().max()))
        max_score = max(max_score, abs(float(reference.scores[i] - other.scores[j])))
        min_mask = min(min_mask, mask_pair_iou(reference.masks[i].cpu(), other.masks[j].cpu()))
    return {"compared": compared, "matched": len(pairs), "unmatched": unmatched,
            "same_order": all(i == j for i, j in pairs), "max_box_px": max_box, "min_mask_iou": min_mask,
            "max_score_diff": max_score,
            "agrees": not unmatched and max_box <= box_px and min_mask >= min_iou}


__all__ = ["detection_agreement", "BOX_PX", "MASK_IOU"]
