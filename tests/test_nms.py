"""Fast NMS, cross-class Fast NMS and standard NMS against plain-Python versions of their rules."""
import pytest
import torch

from yolact_edu.ops.nms import cross_class_fast_nms, fast_nms, standard_nms


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def random_problem(seed, num_boxes=60, num_classes=4):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_boxes, 2, generator=gen) * 0.7
    boxes = torch.cat([xy, xy + 0.05 + torch.rand(num_boxes, 2, generator=gen) * 0.3], 1)
    scores = torch.rand(num_classes, num_boxes, generator=gen)
    return boxes, scores


def brute_fast_nms(boxes, scores, threshold, top_k, max_dets):
    """Per class: a box survives iff no better-scored box of its class (among the class's
    top_k, suppressed or not) overlaps it by more than the threshold."""
    kept = []
    b = boxes.tolist()
    for c, row in enumerate(scores.tolist()):
        order = sorted(range(len(row)), key=lambda i: -row[i])[:top_k]
        for rank, i in enumerate(order):
            if all(iou(b[j], b[i]) <= threshold for j in order[:rank]):
                kept.append((row[i], i, c))
    kept.sort(key=lambda t: -t[0])
    return kept[:max_dets]


def brute_cross_class(boxes, scores, threshold, top_k):
    best, classes = scores.max(0)
    order = sorted(range(len(best)), key=lambda i: -float(best[i]))[:top_k]
    b = boxes.tolist()
    return [(float(best[i]), i, int(classes[i])) for rank, i in enumerate(order)
            if all(iou(b[j], b[i]) <= threshold for j in order[:rank])]


def brute_standard(boxes, scores, threshold, conf, max_dets):
    """Classic greedy NMS per class: take the best remaining box, drop what overlaps it."""
    kept = []
    b = boxes.tolist()
    for c, row in enumerate(scores.tolist()):
        remaining = sorted((i for i in range(len(row)) if row[i] > conf), key=lambda i: -row[i])
        while remaining:
            best = remaining.pop(0)
            kept.append((row[best], best, c))
            remaining = [i for i in remaining if iou(b[best], b[i]) <= threshold]
    kept.sort(key=lambda t: -t[0])
    return kept[:max_dets]


def as_tuples(result):
    idx, classes, scores = result
    return [(float(s), int(i), int(c)) for i, c, s in zip(idx, classes, scores)]


def assert_same(got, expected):
    assert [(i, c) for _, i, c in got] == [(i, c) for _, i, c in expected]
    assert torch.allclose(torch.tensor([s for s, _, _ in got]), torch.tensor([s for s, _, _ in expected]))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold,top_k,max_dets", [(0.5, 200, 100), (0.3, 20, 25), (0.7, 60, 500)])
def test_fast_nms_matches_brute_force(seed, threshold, top_k, max_dets):
    boxes, scores = random_problem(seed)
    got = as_tuples(fast_nms(boxes, scores, threshold, top_k, max_dets))
    assert_same(got, brute_fast_nms(boxes, scores, threshold, top_k, max_dets))


def test_fast_nms_suppresses_more_than_greedy_nms():
    # A chain: B overlaps A, C overlaps B but not A. Greedy keeps A and C (B was removed
    # before it could suppress C); Fast NMS also lets the suppressed B suppress C.
    boxes = torch.tensor([[0.0, 0, 1, 1], [0.4, 0, 1.4, 1], [0.8, 0, 1.8, 1]])
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    fast = fast_nms(boxes, scores, 0.4)[0].tolist()
    greedy = standard_nms(boxes, scores, 0.4, 0.05)[0].tolist()
    assert fast == [0] and sorted(greedy) == [0, 2]


@pytest.mark.parametrize("seed", range(5))
def test_cross_class_fast_nms_matches_brute_force(seed):
    boxes, scores = random_problem(seed, num_boxes=80, num_classes=6)
    got = as_tuples(cross_class_fast_nms(boxes, scores, 0.5, 50))
    assert_same(got, brute_cross_class(boxes, scores, 0.5, 50))


@pytest.mark.parametrize("seed", range(5))
def test_standard_nms_matches_greedy(seed):
    boxes, scores = random_problem(seed)
    got = as_tuples(standard_nms(boxes, scores, 0.5, conf_threshold=0.3, max_detections=40))
    assert_same(got, brute_standard(boxes, scores, 0.5, 0.3, 40))


def test_fast_nms_keeps_non_max_class_scores_like_the_original():
    # One box, two classes: both (box, class) pairs survive, even the 0.01 one.
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    scores = torch.tensor([[0.9], [0.01]])
    idx, classes, kept = fast_nms(boxes, scores)
    assert classes.tolist() == [0, 1] and torch.allclose(kept, torch.tensor([0.9, 0.01]))
