"""Notebook 03 §4: the five NMS methods timed on the same candidates, the greedy Python loop, the
sentences written from the measurements, and the image where Fast NMS and standard NMS differ."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from test_nms_compare import clustered_problem  # noqa: E402

from yolact_edu.lessons.nms_comparison import (  # noqa: E402
    fast_nms_steps,
    find_disagreement,
    suppression_chain,
)
from yolact_edu.lessons.nms_timing import (  # noqa: E402
    FAST_NMS,
    FASTEST_STANDARD,
    TIMED_METHODS,
    curve_sentence,
    fastest_at,
    greedy_nms,
    iou_work,
    nms_time_vs_candidates,
    pair_times,
    plot_nms_timings,
    python_loop_nms,
    ranking_sentence,
    time_nms_methods,
    torchvision_per_class_nms,
    work_sentence,
)
from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model  # noqa: E402
from yolact_edu.ops.nms import standard_nms  # noqa: E402


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_python_loop_is_torchvision_nms(seed, threshold):
    boxes, scores = clustered_problem(seed)
    keep, ious = greedy_nms(boxes, scores[0], threshold)
    assert torch.equal(keep, torchvision.ops.nms(boxes, scores[0], threshold))
    assert 0 < ious < len(boxes) ** 2 / 2        # never more than every pair once
    expected = standard_nms(boxes, scores, threshold, 0.2, None)
    for method in (python_loop_nms, torchvision_per_class_nms):
        got = method(boxes, scores, threshold, 0.2, None)
        assert set(zip(got[0].tolist(), got[1].tolist())) == set(zip(expected[0].tolist(), expected[1].tolist()))
        assert torch.equal(got[2], expected[2])          # the same scores, in the same (descending) order


def test_the_three_standard_methods_keep_the_same_boxes_and_cap_alike():
    boxes, scores = clustered_problem(5, num_boxes=120)
    runs = {name: fn(boxes, scores, 0.5, 200, 0.05, 7) for name, fn in TIMED_METHODS.items()}
    standard = [runs[name] for name in TIMED_METHODS if name.startswith("standard")]
    assert all(len(run[0]) == 7 for run in standard)
    assert all(torch.equal(run[2], standard[0][2]) for run in standard)


def test_timing_table_and_its_sentence():
    boxes, scores = clustered_problem(2, num_boxes=60)
    before = torch.get_num_threads()
    timing = time_nms_methods(boxes, scores, repeats=3, threads=1)
    assert torch.get_num_threads() == before
    rows = timing.rows()
    assert [row["method"] for row in rows] == sorted(timing.median_ms, key=timing.median_ms.get)
    assert rows[0]["x fastest"] == 1.0 and all(row["timed calls"] == 3 for row in rows)
    kept = {row["method"]: row["kept (score > 0.05)"] for row in rows}
    assert kept["standard, Python loop"] == kept["standard, torchvision batched_nms"] >= kept["Fast NMS"]
    sentence = timing.sentence()
    assert f"the fastest is **{rows[0]['method']}**" in sentence and "CPU (1 thread)" in sentence


@pytest.mark.parametrize("fast, standard, relation", [(3.0, 1.0, "3.0x as long as"), (1.0, 4.0, "4.0x faster than"),
                                                       (1.0, 1.02, "about as long as")])
def test_ranking_sentence_follows_the_numbers(fast, standard, relation):
    sentence = ranking_sentence({"Fast NMS": fast, "standard, torchvision batched_nms": standard, "x": 10.0}, "here")
    assert sentence.startswith("Here, the fastest is") and relation in sentence
    assert "the slowest **x**" in sentence


def test_curve_helpers():
    counts = [10, 30, 60]
    boxes, scores = clustered_problem(2, num_boxes=60)
    medians = nms_time_vs_candidates(boxes, scores, counts, repeats=2, threads=1)
    assert set(medians) == set(TIMED_METHODS) and all(len(v) == 3 and min(v) > 0 for v in medians.values())
    made_up = {"Fast NMS": [1, 2, 40], "standard, torchvision batched_nms": [2, 3, 4]}
    assert fastest_at(counts, made_up) == "standard, torchvision batched_nms"
    assert fastest_at(counts, made_up, 10) == "Fast NMS"
    three = {**made_up, "other": [9, 9, 0.5]}                       # fastest overall, left out by `among`
    assert fastest_at(counts, three) == "other"
    assert fastest_at(counts, three, among=(FAST_NMS, FASTEST_STANDARD)) == FASTEST_STANDARD
    assert fastest_at(counts, three, 10, among=(FAST_NMS, FASTEST_STANDARD)) == FAST_NMS
    assert pair_times(counts, {k: [v * 1e-3 for v in vs] for k, vs in three.items()}) == (
        "at n = 60: Fast NMS 40 ms, standard, torchvision batched_nms 4 ms (medians)")
    sentence = curve_sentence(counts, made_up, "CPU")
    assert "**Fast NMS** at n = 10, 30" in sentence and "at n = 60" in sentence
    assert "Fast NMS's time grows 40x, batched_nms's 2x" in sentence
    _, ax = plt.subplots()
    plot_nms_timings(ax, counts, medians, "CPU")
    assert len(ax.lines) == len(TIMED_METHODS)
    plt.close("all")


def test_iou_work_counts_the_matrix_and_the_loop():
    boxes, scores = clustered_problem(3, num_boxes=50, num_classes=2)
    work = iou_work(boxes, scores)
    assert work["Fast NMS"] == 2 * 50 * 50 and work["n"] == 50
    assert iou_work(boxes, scores, count=20)["Fast NMS"] == 2 * 20 * 20
    assert work["greedy"] == sum(greedy_nms(boxes, row, 0.5)[1] for row in scores) < work["Fast NMS"] / 2
    sentence = work_sentence(work, 2)
    assert "computes 5,000 IoUs" in sentence and f"computes {work['greedy']:,}, " in sentence
    assert "3.0 million IoUs" in work_sentence({"Fast NMS": 3_000_000, "greedy": 1000, "n": 1000}, 3)


def test_the_shipped_model_has_an_image_where_fast_nms_drops_a_confident_box():
    model, val = tiny_shapes_model(), shapes_dataset("val")
    cfg = model.cfg
    case = find_disagreement(model, val, min_score=0.9, limit=10)
    assert case.found and case.difference
    candidate, cls = case.difference[0]
    cands = case.candidates
    assert float(cands.scores[cls, candidate]) >= 0.9
    assert (candidate, cls) in case.comparison.runs["standard"].pairs(cfg.nms_conf_thresh)
    assert (candidate, cls) not in case.comparison.runs["fast"].pairs(cfg.nms_conf_thresh)
    chain = suppression_chain(cands.boxes, cands.scores, candidate, cls, cfg.nms_iou_thresh, cfg.nms_top_k,
                              case.comparison.runs["standard"].pairs(cfg.nms_conf_thresh))
    assert chain.iou_ab > cfg.nms_iou_thresh and chain.iou_bc > cfg.nms_iou_thresh
    assert chain.iou_ac <= cfg.nms_iou_thresh
    steps = fast_nms_steps(cands.boxes, cands.scores, cls, cfg.nms_iou_thresh, cfg.nms_top_k)
    assert len(steps.fast_only_ranks) > 0            # the step figure has orange bars
