"""Notebook 03 §4's learner-written Fast NMS step: the right answer passes on the shipped model's
candidates, each usual mistake fails with its own hint, an unwritten stub asks to write it."""
import pytest
import torch

from yolact_edu.lessons.nms_comparison import nms_candidates
from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model
from yolact_edu.lessons.write_fast_nms import (
    DIAGONAL,
    INVERTED,
    LOWER,
    SORT,
    STRICT,
    WRITE_IT,
    check_fast_nms_keep,
    reference_keep,
)
from yolact_edu.ops.boxes import jaccard
from yolact_edu.ops.nms import fast_nms


@pytest.fixture(scope="module")
def candidates():
    model, val = tiny_shapes_model(), shapes_dataset("val")
    with torch.no_grad():
        raw = model(model.preprocess(val.load_image(0)))
    cands = nms_candidates(raw, model.cfg.nms_conf_thresh)
    assert len(cands) > 20
    return cands.boxes, cands.scores


def right(boxes, scores, iou_threshold):
    _, order = scores.sort(dim=1, descending=True)
    X = jaccard(boxes[order], boxes[order])
    return order, X.triu(diagonal=1).max(dim=1).values <= iou_threshold


def test_reference_keep_is_fast_nms(candidates):
    boxes, scores = candidates
    _, order = scores.sort(dim=1, descending=True, stable=True)
    keep = reference_keep(boxes, order, 0.5)
    kept, classes, _ = fast_nms(boxes, scores, 0.5, nms_top_k=scores.shape[1], max_detections=None)
    ranks = torch.nonzero(keep)
    assert {(int(order[c, r]), int(c)) for c, r in ranks.tolist()} == set(zip(kept.tolist(), classes.tolist()))


def test_right_answer_passes(candidates):
    verdict = check_fast_nms_keep(right, *candidates)
    assert verdict and "fast_nms" in repr(verdict), repr(verdict)


def test_one_class_at_a_time_in_a_loop_passes_too(candidates):
    def per_class(boxes, scores, iou_threshold):
        orders, keeps = [], []
        for row in scores:
            order = row.argsort(descending=True)
            X = torch.triu(jaccard(boxes[order], boxes[order]), diagonal=1)
            orders.append(order)
            keeps.append(X.max(dim=0).values <= iou_threshold)
        return torch.stack(orders), torch.stack(keeps)

    assert check_fast_nms_keep(per_class, *candidates)


def test_unwritten_stub_asks_to_write_it(candidates):
    def stub(boxes, scores, iou_threshold):
        ...

    verdict = check_fast_nms_keep(stub, *candidates)
    assert not verdict and WRITE_IT in repr(verdict)


def keeps_diagonal(boxes, scores, t):
    _, order = scores.sort(dim=1, descending=True)
    return order, torch.triu(jaccard(boxes[order], boxes[order])).max(dim=1).values <= t


def row_max(boxes, scores, t):
    _, order = scores.sort(dim=1, descending=True)
    return order, torch.triu(jaccard(boxes[order], boxes[order]), diagonal=1).max(dim=2).values <= t


def lower_triangle(boxes, scores, t):
    _, order = scores.sort(dim=1, descending=True)
    return order, torch.tril(jaccard(boxes[order], boxes[order]), diagonal=-1).max(dim=1).values <= t


def strict(boxes, scores, t):
    _, order = scores.sort(dim=1, descending=True)
    return order, torch.triu(jaccard(boxes[order], boxes[order]), diagonal=1).max(dim=1).values < t


def inverted(boxes, scores, t):
    _, order = scores.sort(dim=1, descending=True)
    return order, torch.triu(jaccard(boxes[order], boxes[order]), diagonal=1).max(dim=1).values > t


def unsorted(boxes, scores, t):
    order = torch.arange(scores.shape[1]).expand_as(scores)
    return order, torch.triu(jaccard(boxes[order], boxes[order]), diagonal=1).max(dim=1).values <= t


def sorted_order_unsorted_matrix(boxes, scores, t):
    _, order = scores.sort(dim=1, descending=True)
    keep = torch.triu(jaccard(boxes, boxes), diagonal=1).max(dim=0).values <= t
    return order, keep.expand_as(scores)


@pytest.mark.parametrize("wrong, hint", [
    (keeps_diagonal, DIAGONAL), (row_max, LOWER), (lower_triangle, LOWER), (strict, STRICT),
    (inverted, INVERTED), (unsorted, SORT), (sorted_order_unsorted_matrix, SORT)])
def test_each_mistake_fails_with_its_hint(candidates, wrong, hint):
    verdict = check_fast_nms_keep(wrong, *candidates)
    assert not verdict and hint in repr(verdict), repr(verdict)


def test_a_crashing_answer_is_reported_not_raised(candidates):
    def broken(boxes, scores, t):
        raise ValueError("oops")

    verdict = check_fast_nms_keep(broken, *candidates)
    assert not verdict and "raised ValueError: oops" in repr(verdict)


def test_the_notebooks_solution_passes(candidates):
    from test_write_box_coding import notebook_solution

    assert check_fast_nms_keep(notebook_solution("def fast_nms_keep(")["fast_nms_keep"], *candidates)
