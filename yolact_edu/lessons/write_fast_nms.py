"""Notebook 03 §4, written by the learner: Fast NMS's matrix step, checked on real candidates
against :func:`yolact_edu.ops.nms.fast_nms`.

The learner writes::

    def fast_nms_keep(boxes, scores, iou_threshold):
        # boxes [n,4] point form; scores [C,n] -> order [C,n] (each class's candidates, best first),
        #                                          keep [C,n] bool (keep[c, r]: the r-th best of class c survives)

sort each class by score, build the [C,n,n] IoU matrix X of the sorted boxes, keep its upper
triangle (``torch.triu(X, diagonal=1)``: X[i, j] for a better i), take each column's max and keep
j iff it is <= the threshold. :func:`check_fast_nms_keep` runs it at the threshold ``detect`` uses
and at 0 (where ``<`` and ``<=`` part: a box that touches no better box must survive), and
compares a wrong answer with the usual mistakes, each with its own hint.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..ops.boxes import jaccard
from ..ops.nms import fast_nms
from .exercises import Check, run_learner_code

WRITE_IT = "write `fast_nms_keep` (its body is still `...`), then run this cell again"
SORT = ("sort each class by score first (scores.sort(dim=1, descending=True)): the upper triangle means "
        "'a better box' only when row i scores higher than column j")
DIAGONAL = ("nothing survives: the diagonal X[j, j] = 1 (every box overlaps itself) is in your max; "
            "use torch.triu(X, diagonal=1)")
LOWER = ("worse boxes are suppressing better ones: keep the upper triangle (row i better than column j) "
         "and take the max over the rows (dim=1), i.e. each column's max")
STRICT = ("at threshold 0 a box that touches no better box (column max exactly 0) must survive: "
          "keep j iff its column max is <= the threshold, not <")
INVERTED = "you kept the suppressed boxes: keep j iff its column max is <= the threshold"


def reference_keep(boxes: torch.Tensor, order: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Fast NMS's keep [C,n] bool for each class's candidates in ``order`` [C,n] (best first)."""
    sorted_boxes = boxes[order]                                     # [C,n,4]
    return jaccard(sorted_boxes, sorted_boxes).triu_(diagonal=1).amax(dim=1) <= iou_threshold


def _mistakes(boxes: torch.Tensor, order: torch.Tensor, iou_threshold: float) -> list[tuple[torch.Tensor, str]]:
    sorted_boxes = boxes[order]
    iou = jaccard(sorted_boxes, sorted_boxes)                       # [C,n,n]
    upper = iou.triu(diagonal=1)
    column_max = upper.amax(dim=1)
    unsorted = jaccard(boxes, boxes).triu(diagonal=1).amax(dim=0)   # [n], in candidate order
    # STRICT first: at threshold 0, `<` keeps nothing, like a kept diagonal; the diagonal already failed at 0.5
    return [(column_max < iou_threshold, STRICT),
            (iou.triu().amax(dim=1) <= iou_threshold, DIAGONAL),
            (iou.amax(dim=1) <= iou_threshold, DIAGONAL),
            (iou.tril(diagonal=-1).amax(dim=1) <= iou_threshold, LOWER),
            (upper.amax(dim=2) <= iou_threshold, LOWER),
            (column_max > iou_threshold, INVERTED),
            ((unsorted <= iou_threshold).expand_as(column_max), SORT),
            ((unsorted <= iou_threshold)[order], SORT)]


def _is_descending_order(order, scores: torch.Tensor) -> bool:
    if not isinstance(order, torch.Tensor) or order.shape != scores.shape:
        return False
    if order.dtype not in (torch.int64, torch.int32):
        return False
    ranked = scores.gather(1, order.long())
    is_permutation = bool((order.long().sort(dim=1).values == torch.arange(scores.shape[1])).all())
    return is_permutation and bool((ranked[:, :-1] >= ranked[:, 1:]).all())


def check_fast_nms_keep(fn: Callable, boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> Check:
    """Check the learner's ``fn(boxes, scores, iou_threshold) -> (order, keep)`` on real candidates:
    boxes [n,4] point form, scores [C,n], at ``iou_threshold`` and at 0. Its kept (candidate, class)
    pairs must be those of :func:`~yolact_edu.ops.nms.fast_nms` (in the learner's own order of tied scores)."""
    boxes, scores = boxes.detach().cpu(), scores.detach().cpu()
    for threshold in (iou_threshold, 0.0):
        answer, error = run_learner_code(fn, boxes, scores, threshold)
        if error is not None:
            return Check(False, f"`fast_nms_keep` raised {error}")
        if answer is None or answer is ...:
            return Check(False, WRITE_IT)
        if not (isinstance(answer, tuple) and len(answer) == 2):
            return Check(False, "return two tensors: `order` [C,n] (candidates by score, best first) "
                                "and `keep` [C,n] bool")
        order, keep = answer
        if not isinstance(keep, torch.Tensor) or keep.shape != scores.shape:
            got = list(keep.shape) if isinstance(keep, torch.Tensor) else type(keep).__name__
            return Check(False, f"`keep` must be [C,n] = {list(scores.shape)} (one flag per class and rank), got {got}")
        if not _is_descending_order(order, scores):
            return Check(False, SORT)
        order, keep = order.long(), keep.bool()
        if torch.equal(keep, reference_keep(boxes, order, threshold)):
            continue
        for wrong, hint in _mistakes(boxes, order, threshold):
            if torch.equal(keep, wrong):
                return Check(False, hint)
        return Check(False, f"at threshold {threshold:g} your keep differs from Fast NMS's in "
                            f"{int((keep != reference_keep(boxes, order, threshold)).sum())} places: "
                            "keep = triu(X, diagonal=1).max over dim 1 <= threshold")
    order, keep = fn(boxes.clone(), scores.clone(), iou_threshold)
    ranks = torch.nonzero(keep.bool())
    yours = {(int(order[c, r]), int(c)) for c, r in ranks.tolist()}
    kept, classes, _ = fast_nms(boxes, scores, iou_threshold, nms_top_k=scores.shape[1], max_detections=None)
    library = set(zip(kept.tolist(), classes.tolist()))
    same = (f"the same {len(library)} (candidate, class) pairs as yolact_edu.ops.nms.fast_nms" if yours == library else
            f"{len(yours)} (candidate, class) pairs, by fast_nms's rule (exactly tied scores ranked in your order)")
    return Check(True, f"on {scores.shape[1]} candidates x {scores.shape[0]} classes at IoU {iou_threshold:g} you keep "
                       f"{same}, and the right ones at threshold 0")


__all__ = ["WRITE_IT", "SORT", "DIAGONAL", "LOWER", "STRICT", "INVERTED", "reference_keep", "check_fast_nms_keep"]
