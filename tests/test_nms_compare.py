"""Fast NMS next to standard NMS: candidates, the Fast NMS matrix, keep-set comparison, timing (notebook 03)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

from yolact_edu.bench.timing import repeat_seconds
from yolact_edu.lessons.nms_comparison import (  # noqa: E402
    METHODS,
    NmsCandidates,
    compare_nms,
    cpu_threads,
    fast_nms_steps,
    nms_candidates,
    plot_fast_nms_steps,
    plot_nms_comparison,
    suppressed_by,
    suppression_chain,
)
from yolact_edu.ops.nms import fast_nms  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def clustered_problem(seed, num_boxes=80, num_classes=4):
    """Boxes jittered around a few centres (like a detector's output), distinct random scores."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(6, 2, generator=gen) * 0.6 + 0.2
    which = torch.randint(0, 6, (num_boxes,), generator=gen)
    xy = centres[which] + (torch.rand(num_boxes, 2, generator=gen) - 0.5) * 0.15
    size = 0.1 + torch.rand(num_boxes, 2, generator=gen) * 0.2
    boxes = torch.cat([xy - size / 2, xy + size / 2], 1)
    return boxes, torch.rand(num_classes, num_boxes, generator=gen)


CHAIN_BOXES = torch.tensor([[0.0, 0, 1, 1], [0.4, 0, 1.4, 1], [0.8, 0, 1.8, 1]])
CHAIN_SCORES = torch.tensor([[0.9, 0.8, 0.7]])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_fast_nms_keeps_a_subset_of_standard_nms(seed, threshold):
    """The claim the notebook states: on the same candidates Fast NMS suppresses more, never fewer."""
    boxes, scores = clustered_problem(seed)
    comparison = compare_nms(boxes, scores, ("fast", "standard"), threshold, nms_top_k=len(boxes),
                             conf_threshold=0.0, max_detections=None)
    fast, standard = comparison.runs["fast"].pairs(), comparison.runs["standard"].pairs()
    assert fast <= standard
    assert comparison.only_in("fast", "standard") == []
    assert comparison.only_in("standard", "fast") == sorted(standard - fast)


def test_subset_holds_for_detect_settings_above_the_candidate_threshold():
    # Default settings: Fast NMS also returns pairs below conf_threshold (as the original), which
    # standard NMS never sees; above the threshold the subset relation holds.
    boxes, scores = clustered_problem(0, num_boxes=120)
    comparison = compare_nms(boxes, scores, iou_threshold=0.5, nms_top_k=200, conf_threshold=0.3, max_detections=None)
    assert comparison.runs["fast"].pairs(0.3) <= comparison.runs["standard"].pairs(0.3)
    assert (comparison.runs["fast"].scores <= 0.3).any()
    assert bool((comparison.runs["standard"].scores > 0.3).all())


def test_cross_class_keeps_a_subset_of_class_agnostic_nms():
    boxes, scores = clustered_problem(3)
    comparison = compare_nms(boxes, scores, ("cross_class",), 0.5, nms_top_k=len(boxes))
    best, _ = scores.max(0)
    agnostic = set(torchvision.ops.nms(boxes, best, 0.5).tolist())
    assert set(comparison.runs["cross_class"].keep.tolist()) <= agnostic


def test_fast_nms_strictly_suppresses_more_on_a_chain():
    comparison = compare_nms(CHAIN_BOXES, CHAIN_SCORES, ("fast", "standard"), 0.4, conf_threshold=0.05)
    assert comparison.only_in("standard", "fast") == [(2, 0)]
    assert suppressed_by(CHAIN_BOXES, CHAIN_SCORES, 2, 0, 0.4) == [1]     # a box standard NMS removed
    assert suppressed_by(CHAIN_BOXES, CHAIN_SCORES, 0, 0, 0.4) == []
    chain = suppression_chain(CHAIN_BOXES, CHAIN_SCORES, 2, 0, 0.4)
    assert (chain.keeper, chain.suppressor, chain.dropped) == (0, 1, 2)
    assert chain.iou_ab > 0.4 and chain.iou_bc > 0.4 and chain.iou_ac <= 0.4
    assert "standard NMS removes B" in chain.sentence("thing", 0.4)
    assert suppression_chain(CHAIN_BOXES, CHAIN_SCORES, 0, 0, 0.4).suppressor is None
    rows = comparison.summary(0.05)
    assert [(r["method"], r["kept"]) for r in rows] == [("fast", 1), ("standard", 2)]


@pytest.mark.parametrize("seed", range(4))
def test_standard_keep_set_equals_torchvision_batched_nms(seed):
    boxes, scores = clustered_problem(seed)
    comparison = compare_nms(boxes, scores, ("standard",), 0.45, conf_threshold=0.2, max_detections=None)
    classes, candidates = torch.nonzero(scores > 0.2, as_tuple=True)
    keep = torchvision.ops.batched_nms(boxes[candidates], scores[classes, candidates], classes, 0.45)
    expected = set(zip(candidates[keep].tolist(), classes[keep].tolist()))
    assert comparison.runs["standard"].pairs() == expected


@pytest.mark.parametrize("class_index", range(3))
def test_fast_nms_steps_agree_with_fast_nms(class_index):
    boxes, scores = clustered_problem(1, num_boxes=50, num_classes=3)
    steps = fast_nms_steps(boxes, scores, class_index, 0.5, nms_top_k=40)
    keep, classes, _ = fast_nms(boxes, scores, 0.5, nms_top_k=40, max_detections=None)
    assert set(steps.order[steps.keep].tolist()) == set(keep[classes == class_index].tolist())
    assert torch.equal(steps.upper, steps.iou.triu(1)) and bool((steps.scores[:-1] >= steps.scores[1:]).all())
    assert torch.equal(steps.column_max, steps.upper.max(0).values)
    assert bool((steps.keep <= steps.standard_keep).all())          # per class, the subset again
    assert torch.equal(steps.fast_only_ranks, torch.nonzero(steps.standard_keep & ~steps.keep).flatten())
    assert steps.shown(5) >= 5 and all(int(r) < steps.shown(5) for r in steps.fast_only_ranks)
    fig = plot_fast_nms_steps(steps, "c", show=20)
    bars = fig.axes[2].patches
    assert len(bars) == 20


def test_candidates_and_fast_run_reproduce_detect(tiny_model, images):
    image = images[0]
    with torch.no_grad():
        raw = tiny_model(tiny_model.preprocess(image))
    cfg = tiny_model.cfg
    candidates = nms_candidates(raw, cfg.nms_conf_thresh)
    assert isinstance(candidates, NmsCandidates) and len(candidates) > 0
    assert candidates.scores.shape == (cfg.num_classes, len(candidates))
    assert bool((candidates.scores.max(0).values > cfg.nms_conf_thresh).all())
    comparison = compare_nms(candidates.boxes, candidates.scores, iou_threshold=cfg.nms_iou_thresh,
                             nms_top_k=cfg.nms_top_k, conf_threshold=cfg.nms_conf_thresh,
                             max_detections=cfg.max_detections)
    for method in METHODS:
        detections = tiny_model.detect(raw, image.shape[:2], nms=method)[0]
        run = comparison.runs[method]
        assert torch.allclose(candidates.boxes[run.keep], detections.boxes_rel)
        assert torch.equal(run.classes, detections.labels) and torch.allclose(run.scores, detections.scores)


def test_timing_helpers():
    calls = []
    seconds = repeat_seconds(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(seconds) == 4 and len(calls) == 6 and min(seconds) >= 0
    boxes, scores = clustered_problem(2, num_boxes=60)
    comparison = compare_nms(boxes, scores, repeats=3, threads=1)
    assert all(len(run.seconds) == 3 and run.median_seconds > 0 for run in comparison.runs.values())


def test_cpu_threads_restores_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), cpu_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_comparison_figure_draws_each_keep_set():
    image = np.zeros((100, 200, 3), np.uint8)
    comparison = compare_nms(CHAIN_BOXES * 0.5, CHAIN_SCORES, ("standard", "fast"), 0.4)
    fig = plot_nms_comparison(image, CHAIN_BOXES * 0.5, comparison, class_names=("thing",), scores=CHAIN_SCORES)
    standard_ax, fast_ax, diff_ax = fig.axes
    assert len(standard_ax.patches) == 2 and len(fast_ax.patches) == 1
    assert len(diff_ax.patches) == 2            # the difference and the box that suppressed it
    suppressor = diff_ax.patches[1]
    assert suppressor.get_x() == pytest.approx(0.2 * 200) and suppressor.get_linestyle() == ":"


def test_explorer_reruns_on_slider_change():
    pytest.importorskip("ipywidgets")
    from yolact_edu.widgets.nms_explorer import NmsExplorer

    boxes, scores = clustered_problem(4, num_boxes=40)
    explorer = NmsExplorer(np.zeros((64, 64, 3), np.uint8), NmsCandidates(boxes, scores, torch.arange(40)),
                           ("a", "b", "c", "d"), iou_threshold=0.3, max_detections=None)
    strict = explorer.comparison.runs["fast"].pairs()
    explorer.iou_slider.value = 0.7
    assert explorer.comparison.iou_threshold == pytest.approx(0.7)
    # Fast NMS keeps j iff its column max <= threshold: a higher threshold keeps a superset.
    assert strict < explorer.comparison.runs["fast"].pairs()
    assert "standard keeps" in explorer.summary.value


def test_explorer_shows_its_picture_and_carries_it_for_an_untrusted_notebook():
    pytest.importorskip("ipywidgets")
    import base64

    from yolact_edu.widgets.nms_explorer import NmsExplorer

    boxes, scores = clustered_problem(4, num_boxes=40)
    explorer = NmsExplorer(np.zeros((64, 64, 3), np.uint8), NmsCandidates(boxes, scores, torch.arange(40)),
                           ("a", "b", "c", "d"), iou_threshold=0.3, max_detections=None)
    first = explorer.widget.png
    shown = explorer.output.outputs[-1]["data"]["image/png"]
    assert first.startswith(b"\x89PNG") and base64.b64decode(shown) == first
    explorer.iou_slider.value = 0.7
    assert explorer.widget.png != first
    bundle = explorer.widget._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]) == explorer.widget.png
    assert bundle["text/plain"].startswith("NmsExplorer: a live widget")


def test_box_labels_of_overlapping_boxes_do_not_overlap():
    """Three near-identical boxes (duplicates NMS keeps at a high threshold): their labels must
    all be readable, so no two drawn labels may overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from yolact_edu.viz.draw import place_box_labels

    fig, ax = plt.subplots(figsize=(3, 3), dpi=90)
    ax.imshow(np.zeros((200, 200, 3), np.uint8))
    requests = [((50 + i, 60 + i, 150 + i, 160), f"ring 0.{9 - i}0", "white") for i in range(3)]
    artists = place_box_labels(ax, requests)
    renderer = fig.canvas.get_renderer()
    extents = [a.get_window_extent(renderer) for a in artists]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not extents[i].overlaps(extents[j]), (extents[i], extents[j])
    plt.close(fig)
