"""Notebook 01 §2: RoIPool's whole-cell bins against RoIAlign's bilinear samples, written out
and checked against torchvision, and RoIPool swapped into the trained Mask R-CNN at test time."""
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torchvision.ops import MultiScaleRoIAlign, roi_align, roi_pool  # noqa: E402

from yolact_edu.lessons.pretrained import shapes_dataset, tiny_maskrcnn_model  # noqa: E402
from yolact_edu.lessons.two_ways.roi_pooling import (  # noqa: E402
    ALIGN,
    POOL_BOTH,
    POOL_MASK,
    MultiScaleRoIPool,
    plot_roi_geometry,
    pooling_sentence,
    pooling_study,
    roi_align_by_hand,
    roi_align_points,
    roi_geometry,
    roi_pool_bins,
    roi_pool_by_hand,
    roi_pooling,
)

BOXES = ([13.3, 20.1, 50.7, 61.9], [0.0, 0.0, 80.0, 96.0], [70.2, 3.3, 79.9, 10.1], [5.0, 5.0, 6.0, 6.0],
         [12.0, 20.0, 36.0, 44.0])


@pytest.mark.parametrize("box", BOXES)
def test_written_out_pooling_equals_torchvision(box):
    torch.manual_seed(0)
    feature = torch.randn(3, 12, 10)
    rois = torch.tensor([[0.0, *box]])
    assert torch.allclose(roi_align_by_hand(feature, box, 0.125, 7, 2), roi_align(feature[None], rois, 7, 0.125, 2)[0],
                          atol=1e-5)
    assert torch.equal(roi_pool_by_hand(feature, box, 0.125, 7), roi_pool(feature[None], rois, 7, 0.125)[0])


def test_roipool_rounds_twice_roialign_never():
    # a box of 37.4 px on 8-px cells: RoIPool snaps it to whole cells, RoIAlign keeps it
    box = [13.3, 20.1, 50.7, 61.9]
    bins = roi_pool_bins(box, 0.125, 14, (12, 10))
    assert bins["snapped"] == (2, 3, 6, 8)                           # round(1.66), round(2.51), ...
    for start, end in bins["rows"] + bins["cols"]:
        assert isinstance(start, int) and isinstance(end, int)
    assert len(set(bins["cols"])) < 14                                # 5 cells for 14 bins: repeats
    points = roi_align_points(box, 0.125, 14, 2)
    assert points.shape == (28, 28, 2)
    assert points[..., 0].min() > 13.3 / 8 and points[..., 0].max() < 50.7 / 8      # inside the exact box
    assert np.allclose(np.diff(points[0, :, 0]), (50.7 - 13.3) / 8 / 28)              # evenly spaced


def test_multiscale_roipool_reads_the_level_roialign_reads():
    torch.manual_seed(0)
    features = OrderedDict((str(i), torch.randn(1, 4, 32 // 2 ** i, 32 // 2 ** i)) for i in range(4))
    boxes = [torch.tensor([[10.0, 10, 30, 40], [0, 0, 250, 250], [5, 60, 200, 180], [100, 100, 228, 228]])]
    align = MultiScaleRoIAlign(list(features), 7, 2)
    pool = MultiScaleRoIPool.like(align)
    pooled = pool(features, boxes, [(256, 256)])
    aligned = align(features, boxes, [(256, 256)])
    assert pooled.shape == aligned.shape == (4, 4, 7, 7)
    levels_seen = set()
    for i, box in enumerate(boxes[0]):
        rois = torch.cat([torch.zeros(1), box])[None]
        # the level whose RoIAlign output is MultiScaleRoIAlign's is the one RoIPool must read
        level = next(k for k, f in enumerate(features.values())
                     if torch.allclose(roi_align(f, rois, 7, 1 / 8 / 2 ** k, 2)[0], aligned[i]))
        levels_seen.add(level)
        f = list(features.values())[level]
        assert torch.equal(pooled[i], roi_pool(f, rois, 7, 1 / 8 / 2 ** level)[0])
    assert len(levels_seen) > 1


@pytest.fixture(scope="module")
def maskrcnn():
    return tiny_maskrcnn_model()


def test_roi_pooling_swaps_and_always_restores(maskrcnn):
    heads = maskrcnn.roi_heads
    mask_pool, box_pool = heads.mask_roi_pool, heads.box_roi_pool
    with roi_pooling(maskrcnn, ("mask",)):
        assert isinstance(heads.mask_roi_pool, MultiScaleRoIPool) and heads.box_roi_pool is box_pool
        assert heads.mask_roi_pool.output_size == mask_pool.output_size
    assert heads.mask_roi_pool is mask_pool
    with pytest.raises(RuntimeError), roi_pooling(maskrcnn, ("mask", "box")):
        assert isinstance(heads.box_roi_pool, MultiScaleRoIPool)
        raise RuntimeError("boom")
    assert heads.mask_roi_pool is mask_pool and heads.box_roi_pool is box_pool
    with pytest.raises(ValueError):
        with roi_pooling(maskrcnn, ("mask", "rpn")):
            pass
    assert heads.mask_roi_pool is mask_pool


def test_geometry_of_a_real_box_and_the_study(maskrcnn):
    dataset = shapes_dataset("val")
    image = dataset.load_image(0)
    found = maskrcnn.predict(image, score_threshold=0.3)
    geometry = roi_geometry(maskrcnn, image, found.boxes[0].tolist())
    out = maskrcnn.roi_heads.mask_roi_pool.output_size[0]
    assert geometry["align"].shape == geometry["pool"].shape == (maskrcnn.cfg.fpn_features, out, out)
    assert geometry["level"] in maskrcnn.roi_heads.mask_roi_pool.featmap_names
    axes = plot_roi_geometry(geometry)
    assert len(axes) == 4 and "RoIPool" in axes[0].get_title() and "RoIAlign" in axes[1].get_title()
    study = pooling_study(maskrcnn, dataset, 2)
    scores = study["scores"]
    assert set(scores) == {ALIGN, POOL_MASK, POOL_BOTH}
    # the box branch is untouched by the mask-branch swap: same detections, same box AP
    assert scores[ALIGN]["box AP"] == scores[POOL_MASK]["box AP"]
    assert isinstance(maskrcnn.roi_heads.mask_roi_pool, MultiScaleRoIAlign) and \
        not isinstance(maskrcnn.roi_heads.mask_roi_pool, MultiScaleRoIPool)
    sentence = pooling_sentence(study)
    assert "test time" in sentence and f"{scores[ALIGN]['mask AP']:.3f}" in sentence


def test_pooling_sentence_follows_the_numbers():
    def row(mask, box):
        return {"mask AP": mask, "mask AP75": mask, "box AP": box, "boundary IoU": mask}

    study = {"images": 3, "scores": {ALIGN: row(0.6, 0.7), POOL_MASK: row(0.4, 0.7), POOL_BOTH: row(0.65, 0.5)}}
    text = pooling_sentence(study)
    assert "mask AP falls from 0.600 to 0.400" in text and "box AP falls from 0.700 to 0.500" in text
    assert "mask AP rises from 0.600 to 0.650" in text


def test_smallest_confident_box():
    from yolact_edu.lessons.two_ways.roi_pooling import smallest_box

    boxes = torch.tensor([[0.0, 0, 50, 50], [0, 0, 10, 10], [0, 0, 20, 20]])
    assert smallest_box(boxes, torch.tensor([0.9, 0.1, 0.8])) == 2       # the tiny one is not confident
    assert smallest_box(boxes, torch.tensor([0.9, 0.6, 0.8])) == 1
    assert smallest_box(boxes, torch.tensor([0.2, 0.1, 0.3])) == 2       # none confident: the best
