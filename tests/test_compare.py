"""yolact_edu.lessons.two_ways: Mask R-CNN stage by stage, YOLACT stage by stage, mask resolution, cost
against the number of instances (notebook 01). No network: Mask R-CNN is built untrained, small."""
import matplotlib
import numpy as np
import pytest
import torch

from yolact_edu.config import COCO_CLASSES
from yolact_edu.detections import Detections
from yolact_edu.lessons.two_ways.cost import (
    MASKRCNN_STAGES,
    YOLACT_STAGES,
    assembly_macs,
    format_table,
    inference_time,
    mask_head_macs,
    maskrcnn_stage_run,
    stage_costs,
    time_call,
)
from yolact_edu.lessons.two_ways.maskrcnn import (
    coco_maskrcnn_predict,
    coco_weights_path,
    maskrcnn_model,
    maskrcnn_stages,
    model_input,
    roi_crop,
)
from yolact_edu.lessons.two_ways.resolution import (
    best_masks,
    best_match,
    boundary_band,
    boundary_iou,
    error_picture,
    mask_box,
    paste_roi_mask,
    plot_boundary_zoom,
    plot_predicted_boundaries,
    plot_resolution_study,
    prototype_mask,
    resolution_study,
    roi_mask,
    shape_mask,
    size_sweep,
    summarize_by_size,
)
from yolact_edu.lessons.two_ways.single_shot import final_masks, yolact_stages
from yolact_edu.lessons.two_ways.tasks import semantic_map, task_views
from yolact_edu.ops.mask_iou import mask_pair_iou
from yolact_edu.relatives.maskrcnn import fixed_output_count

matplotlib.use("Agg")

SMALL = {"min_size": 128, "max_size": 160, "rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 100}


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    """Every test sees an empty torch hub cache, so nothing can come from (or go to) the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


@pytest.fixture(scope="module")
def maskrcnn():
    torch.manual_seed(0)
    return maskrcnn_model("none", box_score_thresh=0.0, box_detections_per_img=12, verbose=False, **SMALL)


@pytest.fixture(scope="module")
def picture():
    rng = np.random.RandomState(1)
    image = (rng.rand(150, 200, 3) * 60).astype(np.uint8)
    image[30:90, 40:120] = (220, 40, 40)
    return image


# -- Mask R-CNN -------------------------------------------------------------------------------
def test_weights_auto_is_untrained_without_a_cached_file(tmp_path, capsys):
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert coco_weights_path() == checkpoints / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    model = maskrcnn_model("auto", **SMALL)
    assert model.weights_source == "untrained" and model.is_trained is False
    assert not model.training
    assert "UNTRAINED" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="never downloads"):
        maskrcnn_model("coco", **SMALL)
    with pytest.raises(ValueError, match="weights must be"):
        maskrcnn_model("imagenet")


def test_weights_auto_reads_a_cached_file(capsys):
    # A state dict in the layout of torchvision's COCO file (frozen BatchNorm keeps no batch count).
    torch.manual_seed(3)
    donor = maskrcnn_model("none", verbose=False, **SMALL)
    # (float16 halves the 170 MB file; loading casts it back to float32)
    state = {k: v.half() if v.is_floating_point() else v for k, v in donor.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    path = coco_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    try:
        model = maskrcnn_model("auto", **SMALL)
    finally:
        path.unlink()
    assert model.is_trained and model.weights_source == "coco"
    assert "COCO weights from" in capsys.readouterr().out
    name = "roi_heads.mask_predictor.mask_fcn_logits.weight"
    assert torch.equal(model.state_dict()[name], state[name].float())


def test_maskrcnn_stages_shapes_and_agreement(maskrcnn, picture):
    stages = maskrcnn_stages(maskrcnn, picture)
    n, r = len(stages.boxes), len(stages.proposals)
    assert n == 12 and 0 < r <= 100
    assert stages.image_size == (150, 200)
    assert stages.resized_size == (120, 160)          # short side 128 would make the long side > 160
    assert stages.batch_shape[-1] % 32 == 0 and stages.batch_shape[-2] % 32 == 0
    assert list(stages.feature_shapes) == ["0", "1", "2", "3", "pool"]
    assert all(shape[1] == 256 for shape in stages.feature_shapes.values())
    assert stages.num_anchors == 3 * sum(s[-2] * s[-1] for s in stages.feature_shapes.values())
    assert stages.box_features_shape == (r, 256, 7, 7)
    assert stages.box_head_shape == (r, 1024)
    assert stages.mask_features.shape == (n, 256, 14, 14)
    assert stages.mask_logits.shape == (n, 91, 28, 28)
    assert stages.roi_masks.shape == (n, 28, 28)
    assert stages.roi_masks.min() >= 0 and stages.roi_masks.max() <= 1
    assert stages.masks.shape == (n, 150, 200)
    assert stages.proposals[:, 2].max() <= 200 + 1e-3 and stages.proposals[:, 3].max() <= 150 + 1e-3
    assert all(v > 0 for v in stages.times_ms.values()) and len(stages.times_ms) == 6
    assert len(stages.rows()) == 7 and stages.trained is False
    # Stage by stage must be exactly the model's own forward.
    with torch.no_grad():
        whole = maskrcnn([torch.from_numpy(picture).permute(2, 0, 1).float() / 255])[0]
    assert torch.allclose(whole["boxes"], stages.boxes)
    assert torch.allclose(whole["masks"][:, 0], stages.masks)
    # The pasted mask is the 28x28 RoI mask of the predicted class, resized into its box.
    logit = stages.mask_logits[torch.arange(n), stages.labels]
    assert torch.allclose(logit.sigmoid(), stages.roi_masks)


def test_stage_costs_force_n_and_time_every_stage(maskrcnn, tiny_model, picture):
    costs = stage_costs({"Mask R-CNN": maskrcnn, "YOLACT tiny": tiny_model}, picture, counts=(1, 3, 8),
                        repeats=1, warmup=0)
    rcnn, yolact = costs["Mask R-CNN"], costs["YOLACT tiny"]
    assert rcnn.family == "Mask R-CNN" and yolact.family == "YOLACT"
    assert rcnn.instances == [1, 3, 8] and yolact.instances == [1, 3, 8]
    assert list(rcnn.stages_ms) == list(MASKRCNN_STAGES) and list(yolact.stages_ms) == list(YOLACT_STAGES)
    assert all(len(t) == 3 and min(t) > 0 for cost in costs.values() for t in cost.stages_ms.values())
    assert yolact.input == [1, 3, tiny_model.cfg.max_size, tiny_model.cfg.max_size] and rcnn.input[:2] == [1, 3]
    # thresholds are put back
    assert maskrcnn.roi_heads.score_thresh == 0.0 and maskrcnn.roi_heads.detections_per_img == 12


def test_staged_maskrcnn_run_is_the_whole_forward(maskrcnn, picture):
    """The four timed stages are torchvision's own forward, split: the same boxes and masks."""
    x = model_input(maskrcnn, picture)
    with fixed_output_count(maskrcnn, 5), torch.no_grad():
        times, staged = maskrcnn_stage_run(maskrcnn, x, picture.shape[:2], "cpu")
        whole = maskrcnn([x])[0]
    assert list(times) == list(MASKRCNN_STAGES) and len(staged["boxes"]) == 5
    assert torch.allclose(staged["boxes"], whole["boxes"])
    assert torch.equal(staged["masks"], whole["masks"][:, 0] > 0.5)


def test_per_instance_work_counts(maskrcnn):
    convs = 4 * 14 * 14 * 256 * 256 * 9        # four 3x3 convs at 14x14
    deconv = 14 * 14 * 256 * 256 * 4            # 2x2 stride-2 deconvolution to 28x28
    logits = 28 * 28 * 256 * 91                 # 1x1 conv to one mask per class
    assert mask_head_macs(maskrcnn) == convs + deconv + logits
    assert assembly_macs((138, 138, 32)) == 609_408
    assert mask_head_macs(maskrcnn) > 800 * assembly_macs((138, 138, 32))


def test_inference_time_fixes_the_instance_count(maskrcnn, tiny_model, picture):
    timed = inference_time(maskrcnn, picture, instances=5, repeats=1, warmup=0)
    assert timed["instances"] == 5 and timed["median_ms"] > 0 and timed["input"][:2] == [1, 3]
    assert maskrcnn.roi_heads.detections_per_img == 12
    timed = inference_time(tiny_model, picture, instances=7, repeats=2, warmup=0)
    size = tiny_model.cfg.max_size
    assert timed["instances"] == 7 and timed["input"] == [1, 3, size, size] and len(timed["times_ms"]) == 2


# -- YOLACT -------------------------------------------------------------------------------------
def test_yolact_stages(tiny_model, images):
    image = images[0]
    stages = yolact_stages(tiny_model, image, top_k=5)
    n = len(stages.detections)
    assert n == 5
    size = tiny_model.cfg.max_size             # prototypes at P3 (stride 8) upsampled x2: size / 4
    assert stages.input_shape == (1, 3, size, size)
    assert stages.proto.shape == (size // 4, size // 4, 32)
    assert stages.pyramid_shapes[0][-2:] == (size // 8, size // 8) and stages.num_priors > 0
    assert stages.combined.shape == stages.cropped.shape == (n, size // 4, size // 4)
    assert torch.allclose(stages.detections.proto, stages.proto)
    # the crop only removes: outside the box the cropped mask is 0, inside it is unchanged
    changed = stages.cropped != stages.combined
    assert (stages.cropped[changed] == 0).all() and changed.any()
    assert torch.equal(final_masks(stages), stages.detections.masks)
    assert [row[0] for row in stages.rows()][-1].startswith("NMS")
    assert all(v > 0 for v in stages.times_ms.values())


def test_time_call_and_table():
    calls = []
    result = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(result["times_ms"]) == 3
    assert result["min_ms"] <= result["median_ms"]
    with pytest.raises(ValueError):
        time_call(lambda: None, repeats=0)
    text = format_table([("a", 1.25, None), ("bbb", 10.0, 3)], ["name", "ms", "n"])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "ms", "n"]
    assert lines[2] == "a      1.2   " and lines[3] == "bbb   10.0  3"
    assert format_table([[0.98765]], ["iou"], decimals=3).splitlines()[2] == "0.988"


# -- mask resolution ---------------------------------------------------------------------------
def test_box_aligned_rectangle_is_exact_on_the_roi_grid():
    mask = np.zeros((192, 192), bool)
    mask[41:99, 23:141] = True
    box = mask_box(mask)
    assert box == (23.0, 41.0, 141.0, 99.0)
    best = best_masks(mask, box, proto_grid=48)
    assert mask_pair_iou(mask, best["roi"].numpy()) == 1.0
    assert 0.99 < mask_pair_iou(mask, best["proto"].numpy()) < 1.0   # edges off the 4-px grid blur
    assert best["roi_grid"].shape == (28, 28) and best["proto_grid"].shape == (48, 48)
    # RoIAlign samples a bilinear ramp at the edges, so only the border cells fall a little short
    grid = roi_mask(mask, box)
    assert (grid[1:-1, 1:-1] == 1).all() and grid.min() > 0.9


def test_circle_loses_detail_at_low_resolution():
    circle = shape_mask("circle", 20, (192, 192))
    box = mask_box(circle)
    coarse = best_masks(circle, box, proto_grid=24)
    fine = best_masks(circle, box, proto_grid=192)
    assert mask_pair_iou(circle, coarse["proto"].numpy()) < 0.95
    assert mask_pair_iou(circle, fine["proto"].numpy()) > 0.99
    big = shape_mask("circle", 180, (192, 192))
    assert mask_pair_iou(big, best_masks(big, mask_box(big), roi_size=7)["roi"].numpy()) < 0.99


def test_size_sweep_trends():
    rows = size_sweep("star", sizes=(12, 48, 192), image_size=(240, 320), proto_grid=60)
    assert [r["across"] for r in rows] == [12, 48, 192]
    assert rows[0]["iou_proto"] < rows[-1]["iou_proto"]      # fixed grid: small objects suffer
    assert rows[0]["biou_roi"] > rows[-1]["biou_roi"]        # box grid: big boundaries get coarse
    for row in rows:
        assert all(0 <= row[k] <= 1 for k in ("iou_roi", "iou_proto", "biou_roi", "biou_proto"))
    ax = plot_resolution_study(rows, x="across")
    assert len(ax.lines) == 2


def test_resolution_study_skips_empty_and_uses_given_boxes():
    masks = np.zeros((3, 64, 64), bool)
    masks[0, 10:30, 10:30] = True
    masks[2, 5:60, 20:50] = True
    rows = resolution_study(masks, proto_grid=16)
    assert len(rows) == 2 and rows[0]["size"] == 20.0
    boxes = torch.tensor([[10, 10, 30, 30], [0, 0, 1, 1], [20, 5, 50, 60]], dtype=torch.float32)
    assert resolution_study(masks, boxes, proto_grid=16) == rows


def test_summarize_by_size():
    rows = [{"size": s, "iou_roi": v, "iou_proto": v, "biou_roi": v, "biou_proto": 1 - v}
            for s, v in [(10, 0.2), (20, 0.4), (50, 0.6), (200, 0.9)]]
    summary = summarize_by_size(rows)
    assert [r["bin"] for r in summary] == ["< 32 px", "32-96 px", ">= 96 px"]
    assert [r["count"] for r in summary] == [2, 1, 1]
    assert summary[0]["iou_roi"] == pytest.approx(0.3) and summary[2]["biou_proto"] == pytest.approx(0.1)


def test_boundary_measures():
    square = np.zeros((20, 20), bool)
    square[5:15, 5:15] = True
    assert boundary_band(square, 2).sum() == 100 - 36
    assert boundary_iou(square, square) == 1.0
    shifted = np.roll(square, 1, axis=1)
    assert boundary_iou(square, shifted) < mask_pair_iou(square, shifted) < 1.0
    assert mask_pair_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    with pytest.raises(ValueError):
        mask_box(np.zeros((4, 4)))
    with pytest.raises(ValueError):
        shape_mask("hexagon", 10)


def test_paste_and_prototype_crop():
    roi = torch.ones(28, 28)
    pasted = paste_roi_mask(roi, (10.0, 20.0, 30.0, 25.0), 40, 50)
    assert pasted.shape == (40, 50)
    assert pasted.sum() == 20 * 5 and pasted[20:25, 10:30].all()
    whole = np.ones((64, 64), bool)
    cells = prototype_mask(whole, (0, 0, 16, 16), grid=16)      # box = cells 0..3, +1 padding
    assert cells[:5, :5].eq(1).all() and cells[5:].eq(0).all() and cells[:, 5:].eq(0).all()


def test_boundary_zoom_plot_and_error_colours():
    truth = np.array([[1, 1, 0]], bool)
    guess = np.array([[1, 0, 1]], bool)
    assert error_picture(truth, guess).tolist() == [[[255, 255, 255], [40, 90, 255], [230, 40, 40]]]
    star = shape_mask("star", 80, (120, 120))
    axes = plot_boundary_zoom(star, proto_grid=30)
    assert len(axes) == 3 and "IoU" in axes[1].get_title()
    assert len(axes[1].lines) > 0 and len(axes[0].lines) == 0      # grid lines on the grid panels only


# -- detection + semantic = instance ----------------------------------------------------------
def test_semantic_map_and_views():
    masks = np.zeros((2, 10, 12), np.uint8)
    masks[0, 2:6, 2:6] = 1
    masks[1, 4:8, 4:10] = 1
    labels = torch.tensor([3, 0])
    class_map = semantic_map(masks, labels)
    assert class_map[3, 3] == 4 and class_map[5, 5] == 1 and class_map[0, 0] == 0   # later wins
    assert semantic_map(np.zeros((0, 4, 5)), [], 4, 5).shape == (4, 5)
    with pytest.raises(ValueError):
        semantic_map(np.zeros((0, 4, 5)), [])
    image = np.full((10, 12, 3), 100, np.uint8)
    target = {"boxes": torch.tensor([[2, 2, 6, 6], [4, 4, 10, 8]], dtype=torch.float32),
              "masks": torch.from_numpy(masks), "labels": labels}
    views = task_views(image, target, ["a", "b", "c", "d"])
    assert set(views) == {"detection", "semantic", "instance"}
    assert all(v.shape == image.shape and v.dtype == np.uint8 for v in views.values())
    assert (views["semantic"][0, 0] == 100).all() and not (views["semantic"][3, 3] == 100).all()


def test_predicted_boundaries_pick_and_score_the_matching_masks():
    truth = shape_mask("star", 80, (160, 200))
    shifted = np.roll(truth, 3, axis=1)
    other = shape_mask("circle", 30, (160, 200), center=(30, 30))
    assert best_match(np.stack([other, shifted, truth]), truth) == 2
    assert best_match(np.zeros((0, 160, 200), bool), truth) == -1
    axes = plot_predicted_boundaries(truth, {"exact": truth, "shifted": shifted})
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "ground truth" and "IoU 1.000, BIoU 1.00" in titles[1]
    assert "BIoU 1.00" not in titles[2]                 # 3 px off: the boundary bands barely meet
    shown = axes[2].get_images()[0].get_array()
    assert (shown == (230, 40, 40)).all(-1).any() and (shown == (40, 90, 255)).all(-1).any()



def test_coco_maskrcnn_predictions_become_detections(maskrcnn, picture):
    found = coco_maskrcnn_predict(maskrcnn, picture, score_threshold=0.0)
    assert isinstance(found, Detections) and len(found) > 0
    assert found.masks.shape[1:] == picture.shape[:2] and found.masks.dtype == torch.bool
    assert found.labels.min() >= 0 and found.labels.max() < 80 and found.coefs is None
    assert set(found.class_labels) <= set(COCO_CLASSES)
    assert len(coco_maskrcnn_predict(maskrcnn, picture, score_threshold=1.01)) == 0


def test_roi_crop_samples_the_box():
    image = np.zeros((60, 80, 3), np.uint8)
    image[10:30, 20:60] = (200, 100, 50)                 # a 40x20 block
    crop = roi_crop(image, (20, 10, 60, 30), size=14)
    assert crop.shape == (14, 14, 3) and crop.dtype == np.uint8
    assert (crop[2:-2, 2:-2] == (200, 100, 50)).all()     # inside the box: the block's colour
    outside = roi_crop(image, (0, 40, 20, 60), size=7)
    assert (outside == 0).all()


def test_stage_costs_on_the_shipped_tiny_maskrcnn(picture):
    from yolact_edu.lessons.pretrained import tiny_maskrcnn_model

    model = tiny_maskrcnn_model()
    cost = stage_costs({"Mask R-CNN tiny": model}, picture, counts=(1, 6), repeats=1, warmup=1)["Mask R-CNN tiny"]
    assert cost.instances == [1, 6] and cost.input == [1, 3, model.cfg.max_size, model.cfg.max_size]
    assert all(min(times) > 0 for times in cost.stages_ms.values())
    assert model.roi_heads.detections_per_img == model.cfg.max_detections
