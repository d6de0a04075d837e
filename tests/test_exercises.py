"""The notebooks' "Try it" checks: the right answer passes, a wrong one fails with a hint, and the
notebooks' solutions (the same library calls) solve them on the shipped model."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from yolact_edu.lessons import exercises as ex
from yolact_edu.lessons.landscape import mask_families as mf
from yolact_edu.lessons.landscape import published as ls
from yolact_edu.lessons.landscape.measured import LatencyMeasurement
from yolact_edu.lessons.nms_comparison import NmsCandidates, find_disagreement
from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model
from yolact_edu.ops.anchors import num_priors


@pytest.fixture(scope="module")
def model():
    return tiny_shapes_model()


@pytest.fixture(scope="module")
def val():
    return shapes_dataset("val")


def test_unanswered_is_not_right_and_says_what_to_do():
    verdict = ex.check_prior_count(SimpleNamespace(cfg=None), ...)
    assert not verdict and repr(verdict).startswith("✗ not yet: set `answer`")


def test_cell_pixels():
    right = ex.check_cell_pixels((56, 28), (256, 512), (64, 64), 56 * 28 / 784, 4 * 8)
    assert right and "28x28 cell covers 2.0 px" in repr(right)
    wrong = ex.check_cell_pixels((56, 28), (256, 512), (64, 64), 2.0, 16)
    assert not wrong and "proto_cell" in repr(wrong) and "roi_cell" not in repr(wrong)


def test_prior_count(model):
    truth = num_priors(model.cfg)
    assert ex.check_prior_count(model, truth) and not ex.check_prior_count(model, truth - 3)


def test_isolate_without_crop_solves_the_explorer_exercise(model, val):
    from yolact_edu.widgets import PrototypeExplorer

    explorer = PrototypeExplorer(model, val.load_image(3))
    assert not ex.check_isolated(explorer)                         # crop on: not attempted yet
    explorer.crop.value = False
    assert not ex.check_isolated(explorer)                         # every prototype still on
    off = ex.isolate_without_crop(explorer)
    verdict = ex.check_isolated(explorer)
    assert verdict, verdict
    assert off and not explorer.enabled[off].any() and not explorer.proto_toggles[off[0]].value
    mask, _ = ex.explorer_masks(explorer, crop=False)
    box = explorer.detections.boxes_rel[explorer.detection.value]
    assert ex.outside_box(mask, box) <= 0.1 * int(mask.sum())


def test_flip_of_the_most_negative_coefficient_grows_the_mask(model, val):
    from yolact_edu.widgets import PrototypeExplorer

    explorer = PrototypeExplorer(model, val.load_image(3))
    assert not ex.check_flip_grows(explorer)
    target = ex.most_subtracted(explorer)
    contributions = explorer.stages["contributions"]                # [k,Hp,Wp] c_i P_i, cropped view
    assert float(contributions[target].sum()) < 0
    other = (target + 1) % explorer.k
    explorer.coef_sliders[other].value = -explorer.coef_sliders[other].value
    assert not ex.check_flip_grows(explorer)                       # the wrong slider
    explorer.reset_coefficients()
    explorer.coef_sliders[target].value = -explorer.coef_sliders[target].value
    assert ex.check_flip_grows(explorer)


def test_first_agreement_below_on_the_notebooks_image(model, val):
    from yolact_edu.widgets import NmsExplorer

    cfg = model.cfg
    case = find_disagreement(model, val, min_score=0.9)              # the notebook's image
    explorer = NmsExplorer(val.load_image(case.index), case.candidates, val.class_names,
                           iou_threshold=cfg.nms_iou_thresh, min_score=0.05, nms_top_k=cfg.nms_top_k,
                           conf_threshold=cfg.nms_conf_thresh, max_detections=cfg.max_detections)
    truth = ex.first_agreement_below(explorer)
    # informative: not an end of the slider, and not the start (where the image was chosen to differ)
    assert truth is not None and explorer.iou_slider.min < truth < explorer.start_threshold
    assert ex.check_first_agreement_below(explorer, truth)
    explorer.iou_slider.value = truth                               # what the learner reads there: agreement
    assert not explorer.comparison.only_in("standard", "fast", 0.05)
    assert not explorer.comparison.only_in("fast", "standard", 0.05)
    assert "0 suppressed by Fast NMS only" in explorer.summary.value
    explorer.iou_slider.value = round(truth + 0.05, 2)              # one step higher they still differ
    assert explorer.comparison.only_in("standard", "fast", 0.05)

    unanswered = ex.check_first_agreement_below(explorer, ...)
    assert not unanswered and "set `answer`" in repr(unanswered)
    wrong = {round(truth + 0.05, 2): "still keep different boxes",          # stopped one step too early
             explorer.start_threshold: "still keep different boxes",        # the start itself
             explorer.iou_slider.max: "move the slider *down*",
             None: "they do agree somewhere below",
             "half": "is not a threshold"}
    for answer, hint in wrong.items():
        verdict = ex.check_first_agreement_below(explorer, answer)
        assert not verdict and hint in repr(verdict), (answer, verdict)
    lower = [t for t in np.arange(0.05, truth - 0.025, 0.05) if not ex.nms_differ_at(explorer, t)]
    if lower:                                                       # agreeing too, but not the first one down
        verdict = ex.check_first_agreement_below(explorer, round(float(lower[0]), 2))
        assert not verdict and "already at a higher threshold" in repr(verdict)


def _chain_explorer(start: float):
    """One class, three boxes in a row, scores A > B > C: IoU(A,B) = IoU(B,C) = 3/7, IoU(A,C) = 0. Below 3/7
    A suppresses B, and then standard NMS keeps C while Fast NMS lets the suppressed B remove it."""
    from yolact_edu.widgets import NmsExplorer

    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.125, 0.0, 0.875, 0.5], [0.5, 0.0, 1.0, 0.5]])
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    return NmsExplorer(np.zeros((32, 32, 3), np.uint8), NmsCandidates(boxes, scores, torch.arange(3)), ("a",),
                       iou_threshold=start, max_detections=None)


def test_first_agreement_below_is_none_when_they_differ_all_the_way_down():
    explorer = _chain_explorer(0.4)
    assert ex.first_agreement_below(explorer) is None
    assert ex.check_first_agreement_below(explorer, None)
    for answer in (0.4, 0.05, 0.2):
        verdict = ex.check_first_agreement_below(explorer, answer)
        assert not verdict and "the answer is None" in repr(verdict)
    # from a start above 3/7 they agree at the start itself: the start is the answer
    explorer = _chain_explorer(0.5)
    assert ex.first_agreement_below(explorer) == 0.5 and ex.check_first_agreement_below(explorer, 0.5)
    assert not ex.check_first_agreement_below(explorer, None)


def test_crop_off_smallest_k_box_free_and_fps():
    controls = SimpleNamespace(crop=SimpleNamespace(value=True))
    assert not ex.check_crop_off(controls)
    controls.crop.value = False
    assert ex.check_crop_off(controls)

    sweep = {"num_protos": np.array([1, 2, 4, 8]), "mask_AP": np.array([0.1, 0.3, 0.41, 0.42])}
    assert ex.smallest_good_k(sweep) == 4
    assert ex.check_smallest_k(sweep, 4) and not ex.check_smallest_k(sweep, 8)

    assert ex.box_free_families(mf.FAMILIES) == {"CondInst", "SOLOv2"}
    assert ex.check_box_free(mf.FAMILIES, ["condinst", "SOLOv2 (2020)"])
    assert not ex.check_box_free(mf.FAMILIES, ["CondInst"])


def test_check_costliest_instance_reads_the_slope_not_the_total():
    rows = [{"model": "YOLACT", "ms @ N=100": 90.0, "ms / instance": 0.2},
            {"model": "CenterMask", "ms @ N=100": 60.0, "ms / instance": 0.4},
            {"model": "SOLOv2", "ms @ N=100": 50.0, "ms / instance": None}]
    assert ex.costliest_per_instance(rows) == "CenterMask"
    assert ex.check_costliest_instance(rows, "centermask")
    verdict = ex.check_costliest_instance(rows, "YOLACT")       # the slowest in total, not per instance
    assert not verdict and "slope" in verdict.message
    assert not ex.check_costliest_instance(rows, ...)



def test_machines_to_match_a_gpu_right_passes_and_each_slip_has_its_hint():
    titan = ls.find("YOLACT-550", "R101-FPN", gpu="Titan Xp")              # 29.8 ms, 33.5 FPS
    here = LatencyMeasurement("yolact_base", "untrained", 550, "cpu", 480.0, 540.0, 0, 5)
    ratio = here.predict_ms / titan.speed_ms                               # about 18.1
    assert ex.machines_to_match(here, titan) == int(np.ceil(ratio)) == 19
    assert ex.check_machines_to_match(here, titan, 19)
    assert ex.check_machines_to_match(here, titan, np.ceil(titan.speed_fps / here.fps))   # the FPS way
    assert not ex.check_machines_to_match(here, titan, ...)
    network = np.ceil(here.network_ms / titan.speed_ms)                  # the network column: 17
    for wrong, hint in ((ratio, "round up"), (18, "round up"), (network, "predict_ms"), (1 / ratio, "upside down"),
                        (40, "frames per second"), ("many", "not a number")):
        verdict = ex.check_machines_to_match(here, titan, wrong)
        assert not verdict and hint in verdict.message, (wrong, verdict)
    # the paper's 29.8 ms and 33.5 FPS are rounded apart: either way of dividing, rounded up, is right
    slow = LatencyMeasurement("yolact_base", "untrained", 550, "cpu", 9000.0, 9750.7, 0, 1)
    by_ms, by_fps = np.ceil(slow.predict_ms / titan.speed_ms), np.ceil(titan.speed_fps / slow.fps)
    assert ex.check_machines_to_match(slow, titan, by_ms) and ex.check_machines_to_match(slow, titan, by_fps)
    verdict = ex.check_machines_to_match(slow, titan, by_ms + 3)
    assert not verdict and "round up" not in verdict.message
    # a machine faster than the GPU still counts as one
    fast = LatencyMeasurement("yolact_base", "trained", 550, "gpu", 5.0, 8.0, 10, 5)
    assert ex.machines_to_match(fast, titan) == 1 and ex.check_machines_to_match(fast, titan, 1)
