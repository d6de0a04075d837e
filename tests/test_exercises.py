"""The notebooks' "Try it" checks: the right answer passes, a wrong one fails with a hint, and the
notebooks' solutions (the same library calls) solve them on the shipped model."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from yolact_edu.lessons import exercises as ex
from yolact_edu.lessons.landscape import mask_families as mf
from yolact_edu.lessons.landscape.measured import LatencyMeasurement
from yolact_edu.lessons.nms_comparison import nms_candidates
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


def test_cost_crossing():
    curves = {"YOLACT tiny": {"counts": [1, 10, 100], "median_ms": [10.0, 12.0, 20.0]},
              "Mask R-CNN tiny": {"counts": [1, 10, 100], "median_ms": [12.0, 25.0, 60.0]}}
    assert ex.first_count_below(curves, "YOLACT tiny", "Mask R-CNN tiny", 0.6) == 10
    assert ex.check_cost_crossing(curves, 10) and not ex.check_cost_crossing(curves, 100)
    assert not ex.check_cost_crossing(curves, None)
    assert ex.check_cost_crossing(curves, None, share=0.2)          # never that fast: None is right


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


def test_first_disagreement_matches_the_explorer(model, val):
    from yolact_edu.widgets import NmsExplorer

    image = val.load_image(50)
    with torch.no_grad():
        raw = model(model.preprocess(image))
    explorer = NmsExplorer(image, nms_candidates(raw, 0.05), val.class_names)
    truth = ex.first_disagreement(explorer)
    assert ex.check_first_disagreement(explorer, truth)
    if truth is not None:                                           # below it they agree, at it they do not
        explorer.iou_slider.value = truth
        assert explorer.comparison.only_in("standard", "fast", 0.05) or explorer.comparison.only_in(
            "fast", "standard", 0.05)
        assert not ex.check_first_disagreement(explorer, round(truth - 0.05, 2))
    else:
        assert not ex.check_first_disagreement(explorer, 0.5)


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

    measurement = LatencyMeasurement("yolact_tiny", "trained", 256, "cpu", 10.0, 25.0, 3, 5)
    assert ex.check_fps(measurement, 40.0) and not ex.check_fps(measurement, 25.0)
