"""Non-maximum suppression, paper §3.4.

Fast NMS replaces the sequential "pick the best, drop its overlaps, repeat"
loop by one matrix operation: a box is suppressed if *any* higher-scoring box
of its class overlaps it by more than the threshold, even one that was itself
suppressed. That lets slightly more boxes be removed, costs ~0.1 mAP, and runs
in a handful of GPU kernels.

``nms_top_k`` (the original's name, ``cfg.nms_top_k``) is how many candidates per class NMS looks
at; ``top_k`` elsewhere (``detect``, ``predict``) is only ever the cap on the output.

All functions take point-form ``boxes [n,4]`` and class scores ``[C,n]``
(C foreground classes, n candidate priors) and return
``(keep_idx [m] into the n candidates, classes [m] 0-based, scores [m])``
sorted by score, descending.
"""
from __future__ import annotations

import torch
import torchvision

from .boxes import jaccard


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
             nms_top_k: int = 200, max_detections: int | None = 100
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-specific Fast NMS (the paper's) on one image's candidates.

    Per class keep the ``nms_top_k`` best candidates, build the [C,k,k] IoU matrix,
    keep the upper triangle (pairs where the row box scores higher) and keep a
    box iff its largest IoU with a better box of its class is <= ``iou_threshold``.
    Then all classes are pooled, sorted and cut to ``max_detections``.
    Scores of kept boxes may be below the candidate threshold (as the original).

    One implementation serves one image and a batch: this is :func:`batched_fast_nms` on a batch of
    one in which every box is a candidate, so the two cannot drift apart.
    """
    everyone = torch.ones((1, boxes.shape[0]), dtype=torch.bool, device=boxes.device)
    prior_idx, classes, kept_scores, valid = batched_fast_nms(boxes[None], scores[None], everyone, iou_threshold,
                                                              nms_top_k, max_detections)
    count = int(valid.sum())              # valid entries come first
    return prior_idx[0, :count], classes[0, :count], kept_scores[0, :count]


def stable_topk(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest of float ``values`` [..., n] along the last dim, descending, exactly as a stable
    sort followed by ``[..., :k]`` gives them: among exactly tied values (a trained model's saturated
    scores of 1.0) the lower index comes first, also in choosing which ties make the cut-off.
    ``topk`` alone leaves both to chance. Returns (values [..., k], indices [..., k] int64).

    One ``topk`` on int64 keys: the float's bit pattern made monotonic (negative floats have their
    magnitude bits flipped) in the high 32 bits, ``n - 1 - index`` in the low 32, so equal values are
    ordered by index. Several times faster on a CPU than a full stable sort of every row."""
    n = values.shape[-1]
    bits = values.float().contiguous().view(torch.int32)
    monotonic = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    reverse_index = torch.arange(n - 1, -1, -1, device=values.device, dtype=torch.int64)
    keys = monotonic * 2**32 + reverse_index
    idx = (n - 1) - (keys.topk(k, dim=-1).values & 0xFFFFFFFF)
    return values.gather(-1, idx), idx


def batched_fast_nms(boxes: torch.Tensor, scores: torch.Tensor, candidates: torch.Tensor,
                     iou_threshold: float = 0.5, nms_top_k: int = 200, max_detections: int | None = 100
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`fast_nms` for a whole batch at once, with fixed-size outputs: no step needs to know how
    many boxes survive, so on a GPU nothing waits for the host until the result is read.

    boxes [B,P,4] point form; scores [B,C,P] foreground class scores in [0,1]; candidates [B,P] bool,
    the priors :func:`fast_nms` would be given (best score above the candidate threshold).
    Returns (prior_idx [B,D] int64, classes [B,D] 0-based, scores [B,D], valid [B,D] bool), sorted by
    score with the valid entries first, D = min(max_detections, C * nms_top_k). Per image the valid entries
    are exactly what :func:`fast_nms` returns on the candidates, exact ties included (:func:`stable_topk`).

    Non-candidates get the score -1: they sort after every candidate, so in the upper-triangular IoU
    matrix they can be suppressed but never suppress, and they are marked invalid at the end.
    """
    batch, num_classes, num_priors = scores.shape
    k = min(nms_top_k, num_priors)
    masked = scores.masked_fill(~candidates[:, None, :], -1.0)
    # per class, the k best candidates, best first (exact ties keep prior order)
    top_scores, idx = stable_topk(masked, k)                                    # [B,C,k], descending
    class_boxes = boxes.gather(1, idx.reshape(batch, -1, 1).expand(-1, -1, 4)).view(batch * num_classes, k, 4)
    # the paper's step: IoU of every pair of a class, upper triangle = "with a better box", column max;
    # amax gives the same values as max(dim=1) without its argmax (10x on a CPU)
    iou_max = jaccard(class_boxes, class_boxes).triu_(diagonal=1).amax(dim=1)
    keep = (iou_max.view(batch, num_classes, k) <= iou_threshold) & (top_scores >= 0)
    pooled = torch.where(keep, top_scores, torch.full_like(top_scores, -1.0)).view(batch, -1)
    count = pooled.shape[1] if max_detections is None else min(max_detections, pooled.shape[1])
    det_scores, order = stable_topk(pooled, count)      # ties in class-major order, as fast_nms
    prior_idx = idx.view(batch, -1).gather(1, order)
    return prior_idx, torch.div(order, k, rounding_mode="floor"), det_scores, det_scores >= 0


def cross_class_fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
                         nms_top_k: int = 200, max_detections: int | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fast NMS over all classes at once: each prior votes for its best class, the
    ``nms_top_k`` best priors form one IoU matrix, and overlapping boxes suppress each
    other whatever their class. Faster with many classes; the original caps the
    output only by ``nms_top_k``."""
    best_scores, classes = scores.max(dim=0)
    _, idx = best_scores.sort(0, descending=True)
    idx = idx[:nms_top_k]
    top_boxes = boxes[idx]
    iou = jaccard(top_boxes, top_boxes).triu_(diagonal=1)
    iou_max = iou.amax(dim=0)
    keep_idx = idx[iou_max <= iou_threshold]
    if max_detections is not None:
        keep_idx = keep_idx[:max_detections]
    return keep_idx, classes[keep_idx], best_scores[keep_idx]


def standard_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
                 conf_threshold: float = 0.05, max_detections: int | None = 100
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Classic sequential per-class NMS (``torchvision.ops.batched_nms``) over every
    (candidate, class) pair scoring above ``conf_threshold``."""
    class_idx, det_idx = torch.nonzero(scores > conf_threshold, as_tuple=True)
    det_scores = scores[class_idx, det_idx]
    keep = torchvision.ops.batched_nms(boxes[det_idx].float(), det_scores.float(), class_idx,
                                       iou_threshold)
    if max_detections is not None:
        keep = keep[:max_detections]  # batched_nms returns indices sorted by score
    return det_idx[keep], class_idx[keep], det_scores[keep]


NMS_KINDS = ("fast", "cross_class", "standard")


def run_nms(kind: str, boxes: torch.Tensor, scores: torch.Tensor, *, iou_threshold: float = 0.5,
            nms_top_k: int = 200, conf_threshold: float = 0.05, max_detections: int | None = 100
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Any of the NMS kinds through one signature (what ``detect``, the lessons and the widgets call).

    kind: "fast" (:func:`fast_nms`), "cross_class" (:func:`cross_class_fast_nms`) or "standard"
    (:func:`standard_nms`). boxes [n,4] point form; scores [C,n] in [0,1].
    conf_threshold: what a candidate must score above, in the original's sense for each kind: a box
    whose best class does (the Fast NMS kinds, as ``detect`` picks its candidate priors), or each
    (box, class) pair that does (standard NMS, as the original's ``traditional_nms``).
    nms_top_k: the per-class (cross-class: overall) candidate count of the Fast NMS kinds; standard
    NMS, like the original's, looks at every pair. max_detections: the output cap (None: none).
    Returns (keep_idx [m] into the n boxes, classes [m] 0-based, scores [m]) by score, descending.
    """
    if kind not in NMS_KINDS:
        raise ValueError(f"nms must be one of {', '.join(NMS_KINDS)}, got {kind!r}")
    if kind == "standard":
        return standard_nms(boxes, scores, iou_threshold, conf_threshold, max_detections)
    where = torch.nonzero(scores.max(dim=0).values > conf_threshold).flatten()
    suppress = fast_nms if kind == "fast" else cross_class_fast_nms
    keep, classes, kept_scores = suppress(boxes[where], scores[:, where], iou_threshold, nms_top_k, max_detections)
    return where[keep], classes, kept_scores
