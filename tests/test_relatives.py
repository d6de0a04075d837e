"""YOLACT's relatives (CondInst, SOLOv2, BlendMask, CenterMask): what is distinctive in each
(FCOS's assignment, dynamic filters, the blender, the SAG level rule, SOLO's grid), and the
faces they share with YOLACT: built by name, trained by the Trainer, saved, reloaded, scored."""
import pytest
import torch

import yolact_edu as ye
from yolact_edu.build import config_from_dict
from yolact_edu.config import config_to_dict
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.relatives.blendmask import BlendMaskTiny, blend
from yolact_edu.relatives.centermask import CenterMaskTiny, roi_levels
from yolact_edu.relatives.condinst import (
    CondInstTiny,
    condinst_num_params,
    dynamic_mask_logits,
    relative_coordinates,
)
from yolact_edu.relatives.fcos import centerness_target, fcos_targets, location_grid
from yolact_edu.relatives.instance_masks import detections_from_image_masks, roi_mask_targets
from yolact_edu.relatives.solov2 import SOLOv2Tiny
from yolact_edu.training.checkpoint import load_model
from yolact_edu.training.evaluation import evaluate
from yolact_edu.training.trainer import Trainer

SIZE = 128
RELATIVES = {"condinst_tiny": CondInstTiny, "solov2_tiny": SOLOv2Tiny, "blendmask_tiny": BlendMaskTiny,
             "centermask_tiny": CenterMaskTiny}


def small_config(name, **changes):
    return ye.get_model_config(name).with_classes(SHAPE_CLASSES).replace(**{"max_size": SIZE, **changes})


def new_model(name, seed=0, **changes):
    torch.manual_seed(seed)
    return ye.build_model(small_config(name, **changes))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=6, num_val=3, seed=7,
                       min_size=128, max_size=160)


def dataset(shapes, split="train", **kwargs):
    kwargs.setdefault("verbose", False)
    return CocoDataset(shapes[f"{split}_annotations"], shapes[f"{split}_images"], max_size=SIZE, **kwargs)


# -- built by name, configs of their own family --------------------------------------------------------
@pytest.mark.parametrize("name", RELATIVES)
def test_each_relative_is_built_by_name_and_its_config_round_trips(name):
    assert name in ye.list_models()
    model = ye.build_model(name)
    assert type(model) is RELATIVES[name]
    values = config_to_dict(small_config(name))
    assert values["family"] == name.removesuffix("_tiny")
    assert config_from_dict(values) == small_config(name)


def test_configs_refuse_inconsistent_levels():
    with pytest.raises(ValueError, match="one entry per FPN level"):
        small_config("condinst_tiny", strides=(8, 16))
    with pytest.raises(ValueError, match="multiple of 32"):
        small_config("blendmask_tiny", max_size=200)
    with pytest.raises(ValueError, match="grids and scale_ranges"):
        small_config("solov2_tiny", grids=(12, 8))
    with pytest.raises(ValueError, match="sizes_of_interest"):
        small_config("condinst_tiny", sizes_of_interest=(32, 64))


# -- FCOS: per-location targets ---------------------------------------------------------------------------
def test_fcos_assigns_locations_near_a_box_centre_to_it_on_the_level_of_its_size():
    cfg = small_config("condinst_tiny")
    points, levels = location_grid([(16, 16), (8, 8), (4, 4)], cfg.strides, "cpu")
    assert points[0].tolist() == [4, 4] and points[256].tolist() == [8, 8]      # stride // 2 + i * stride
    small = torch.tensor([[36.0, 36.0, 60.0, 60.0]])               # 24 px: max(l,t,r,b) <= 24 -> P3
    matched, ltrb = fcos_targets(points, levels, small, cfg)
    positive = torch.nonzero(matched >= 0).flatten()
    assert len(positive) > 0 and (levels[positive] == 0).all()
    centre = positive[(points[positive] == torch.tensor([44.0, 44.0])).all(1)]   # the cell at (44, 44)
    assert ltrb[centre].tolist() == [[8.0, 8.0, 16.0, 16.0]]
    # centre sampling: 1.5 strides (12 px) around the centre (48, 48), not the whole box
    assert (points[positive] - 48).abs().max() <= 12
    large = torch.tensor([[0.0, 0.0, 128.0, 128.0]])               # max(l,t,r,b) >= 64 -> P5 only
    matched, _ = fcos_targets(points, levels, large, cfg)
    assert set(levels[matched >= 0].tolist()) == {2}
    # where two boxes claim a location, the smaller one gets it
    matched, _ = fcos_targets(points, levels, torch.cat([torch.tensor([[20.0, 20.0, 76.0, 76.0]]), small]), cfg)
    assert matched[centre].item() == 1
    matched, ltrb = fcos_targets(points, levels, torch.zeros(0, 4), cfg)
    assert (matched == -1).all() and not ltrb.any()


def test_centerness_is_one_at_the_centre_and_falls_towards_an_edge():
    values = centerness_target(torch.tensor([[10.0, 10.0, 10.0, 10.0], [2.0, 10.0, 18.0, 10.0],
                                             [0.0, 5.0, 20.0, 5.0]]))
    assert values.tolist() == pytest.approx([1.0, (2 / 18) ** 0.5, 0.0])


# -- CondInst: dynamic filters with relative coordinates ----------------------------------------------------
def test_dynamic_filters_are_each_instances_own_1x1_convs():
    torch.manual_seed(0)
    channels, hidden = 4, 5
    features, coords = torch.randn(2, channels, 6, 7), torch.randn(2, 2, 6, 7)
    params = torch.randn(2, condinst_num_params(channels, hidden))
    logits = dynamic_mask_logits(features, coords, params, hidden)
    assert logits.shape == (2, 6, 7)
    # instance 1 by hand with conv2d: weights first (row-major [out, in]), then the biases
    p, sizes = params[1], [channels + 2, hidden, hidden, 1]
    counts = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    w = torch.split(p[:sum(counts)], counts)
    b = torch.split(p[sum(counts):], sizes[1:])
    x = torch.cat([coords[1:], features[1:]], 1)
    for layer in range(3):
        x = torch.nn.functional.conv2d(x, w[layer].reshape(sizes[layer + 1], sizes[layer], 1, 1), b[layer])
        x = torch.relu(x) if layer < 2 else x
    assert torch.allclose(logits[1], x[0, 0], atol=1e-5)


def test_relative_coordinates_are_scaled_per_instance():
    coords = relative_coordinates(torch.tensor([[1.5, 0.5], [1.5, 0.5]]), 2, 3, torch.tensor([1.0, 2.0]))
    assert coords.shape == (2, 2, 2, 3)
    assert coords[0, 0, 0].tolist() == [1.0, 0.0, -1.0] and coords[0, 1, :, 0].tolist() == [0.0, -1.0]
    assert torch.equal(coords[1], coords[0] / 2)


# -- BlendMask: the blender ---------------------------------------------------------------------------------
def test_the_blender_follows_the_attention_pixel_by_pixel():
    crops = torch.stack([torch.full((4, 4), 3.0), torch.full((4, 4), -3.0)])[None]        # K = 2
    attention = torch.zeros(1, 2, 2, 2)
    attention[0, 0, :, 0], attention[0, 1, :, 1] = 50, 50    # left half: base 0, right half: base 1
    logits = blend(crops, attention)[0]
    assert logits[:, 0].tolist() == pytest.approx([3.0] * 4) and logits[:, -1].tolist() == pytest.approx([-3.0] * 4)
    even = blend(crops, torch.zeros(1, 2, 2, 2))
    assert torch.allclose(even, torch.zeros_like(even), atol=1e-6)                   # 50/50 mix


# -- CenterMask: which level a box reads -------------------------------------------------------------------
def test_centermask_reads_large_boxes_from_coarse_levels():
    boxes = torch.tensor([[0.0, 0.0, 256.0, 256.0], [0.0, 0.0, 128.0, 128.0], [0.0, 0.0, 90.0, 90.0],
                          [0.0, 0.0, 64.0, 64.0], [0.0, 0.0, 10.0, 10.0]])
    # k = ceil(5 - log2(256^2 / area)): 5, 3, 3 (5 - 3.01 -> 2, clamped), 1 -> 3, ...
    assert roi_levels(boxes, 256, 3).tolist() == [2, 0, 0, 0, 0]
    assert roi_levels(torch.tensor([[0.0, 0.0, 200.0, 200.0], [0.0, 0.0, 160.0, 160.0]]), 256, 3).tolist() == [2, 1]


# -- SOLOv2: the grid cell of the centre owns the object -----------------------------------------------------
def test_solo_makes_the_cells_around_an_objects_centre_positive_on_its_level():
    model = new_model("solov2_tiny")
    masks = torch.zeros(2, SIZE, SIZE)
    masks[0, 40:56, 40:56] = 1                   # 16 px: only P3's range (0..48)
    masks[1, 10:110, 20:120] = 1                 # 100 px: only P5's (48..)
    target = {"boxes": torch.tensor([[40, 40, 56, 56], [20, 10, 120, 110]]) / SIZE, "labels": torch.tensor([1, 4]),
              "masks": masks, "iscrowd": torch.tensor([0, 0])}
    cells, objects = model.grid_targets(target)
    levels = torch.cat([torch.full((g * g,), level) for level, g in enumerate(model.cfg.grids)])[cells]
    grid3 = model.cfg.grids[0]
    small = cells[objects == 0]
    assert (levels[objects == 0] == 0).all() and (levels[objects == 1] == 2).all()
    centre = int(48 / SIZE * grid3) * grid3 + int(48 / SIZE * grid3)
    assert centre in small.tolist() and len(small) <= 9
    target["iscrowd"] = torch.tensor([1, 0])
    cells, objects = model.grid_targets(target)
    assert objects.tolist() and set(objects.tolist()) == {1}                     # crowd regions teach nothing


def test_point_nms_keeps_one_peak_per_neighbourhood():
    model = new_model("solov2_tiny", grids=(4, 2, 2), scale_ranges=((0, 48), (24, 96), (48, 1e8)))
    probs = torch.zeros(16 + 4 + 4, len(SHAPE_CLASSES))
    probs[5, 0], probs[6, 0], probs[15, 0] = 0.9, 0.8, 0.7      # cells (1,1), (1,2) neighbours; (3,3) alone
    kept = model.point_nms(probs)
    assert kept[:, 0].nonzero().flatten().tolist() == [5, 15]


# -- masks to Detections -------------------------------------------------------------------------------------
def test_image_masks_become_detections_with_the_masks_own_boxes():
    probs = torch.zeros(2, 32, 32)
    probs[0, 8:16, 4:12] = 1                                    # input rows 32..64, cols 16..48 at 128 px
    found = detections_from_image_masks(torch.tensor([0.9, 0.5]), torch.tensor([2, 1]), probs, 128, (256, 128),
                                        SHAPE_CLASSES)
    assert found.masks.shape == (2, 256, 128) and not found.masks[1].any()
    assert found.boxes[0].tolist() == pytest.approx([16, 64, 48, 128], abs=2)   # the mask's own box
    assert found.boxes[1].tolist() == [0, 0, 0, 0]


def test_roi_mask_targets_are_the_ground_truth_inside_each_box():
    masks = torch.zeros(1, 64, 64)
    masks[0, :, :32] = 1
    crop = roi_mask_targets(masks, torch.tensor([[16.0, 0.0, 48.0, 64.0]]), 8)
    assert crop[0, :, :4].all() and not crop[0, :, 4:].any()


# -- every relative: losses, detect, the Trainer, checkpoints, evaluate ---------------------------------------
@pytest.mark.parametrize("name", RELATIVES)
def test_losses_are_finite_and_images_without_objects_still_teach(name, shapes):
    model = new_model(name).train()
    images, targets = zip(*(dataset(shapes)[i] for i in range(2)))
    images, targets = torch.stack(images), list(targets)
    parts = model.criterion()(model(images), targets)
    assert "mask" in parts and all(torch.isfinite(v) and v > 0 for v in parts.values()), parts
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
              "masks": torch.zeros(0, SIZE, SIZE), "iscrowd": torch.zeros(0)} for _ in range(2)]
    parts = model.criterion()(model(images), empty)
    first = "category" if name == "solov2_tiny" else "class"
    assert parts[first] > 0 and parts["mask"] == 0               # background still teaches the classifier
    sum(parts.values()).backward()                               # and the graph is whole


@pytest.mark.parametrize("name", RELATIVES)
def test_trainer_fits_two_images(name, shapes, tmp_path):
    """The shared Trainer drives each relative's losses down on two images it sees again and again."""
    train_set = torch.utils.data.Subset(dataset(shapes), [0, 1])
    train_set.num_classes = len(SHAPE_CLASSES)
    trainer = Trainer(new_model(name), train_set, out_dir=tmp_path / "run", batch_size=2, max_iter=80,
                      lr=2e-3, device="cpu", progress=False, log_every=10, checkpoint_every=1000)
    rows = []
    trainer.callbacks.append(lambda event, info: rows.append(info) if event == "log" else None)
    trainer.run()
    assert rows[-1]["mask"] < 0.8 * rows[0]["mask"], rows
    assert rows[-1]["total"] < 0.7 * rows[0]["total"], rows


@pytest.mark.parametrize("name", RELATIVES)
def test_checkpoint_reloads_as_the_same_model_detects_and_scores(name, shapes, tmp_path):
    trainer = Trainer(new_model(name), dataset(shapes, augment="light"), out_dir=tmp_path / "run",
                      batch_size=2, max_iter=2, device="cpu", progress=False)
    summary = trainer.run()
    model = load_model(summary["checkpoint"])
    assert type(model) is RELATIVES[name] and model.cfg == trainer.cfg and not model.training
    image = (torch.rand(3, 150, 170) * 255).to(torch.uint8)
    before = trainer.model.eval().predict(image, score_threshold=0.0)
    after = model.predict(image, score_threshold=0.0)
    assert torch.equal(before.boxes, after.boxes) and torch.equal(before.masks, after.masks)
    assert after.masks.shape[1:] == (150, 170) and after.masks.dtype == torch.bool
    assert len(after) <= model.cfg.max_detections and bool((after.scores[:-1] >= after.scores[1:]).all())
    assert ((after.boxes[:, 0::2] <= 170) & (after.boxes[:, 1::2] <= 150)).all()
    assert len(model.predict(image, score_threshold=0.0, top_k=1)) <= 1
    metrics = evaluate(model, dataset(shapes, "val"), progress=False, verbose=False)
    assert metrics["num_images"] == 3 and set(metrics) >= {"bbox", "segm"}


def test_every_family_brings_masks_to_image_size_a_few_at_a_time(monkeypatch):
    """The chunked paths (issue 24: within YOLACT's float32 budget, not all masks at once) give the
    very masks of the all-at-once computation."""
    import torch.nn.functional as F
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from yolact_edu.ops import assemble
    from yolact_edu.relatives.instance_masks import detections_from_image_masks, detections_from_roi_masks

    generator = torch.Generator().manual_seed(0)
    count, height, width = 11, 90, 130
    monkeypatch.setattr(assemble, "UPSAMPLE_CHUNK_BYTES", 3 * 4 * height * width)        # three masks per step
    corners = torch.rand(count, 2, generator=generator) * 40
    boxes = torch.cat([corners, corners + 5 + torch.rand(count, 2, generator=generator) * 20], 1)
    roi = torch.rand(count, 14, 14, generator=generator)
    found = detections_from_roi_masks(boxes, torch.rand(count), torch.zeros(count, dtype=torch.long), roi, 64,
                                      (height, width), ["thing"])
    at_once = paste_masks_in_image(roi[:, None], found.boxes, (height, width))[:, 0] > 0.5
    assert torch.equal(found.masks, at_once) and found.masks.any()
    probs = torch.rand(count, 16, 16, generator=generator)
    found = detections_from_image_masks(torch.rand(count), torch.zeros(count, dtype=torch.long), probs, 64,
                                        (height, width), ["thing"])
    at_once = F.interpolate(probs[:, None], (height, width), mode="bilinear", align_corners=False)[:, 0] > 0.5
    assert torch.equal(found.masks, at_once) and found.masks.any()
