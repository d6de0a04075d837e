"""The original's training augmentation: geometry stays consistent, the quirks are kept."""
import numpy as np
import pytest
import torch

from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.data.augment import (
    Sample,
    SSDAugmentation,
    augmentation,
    photometric_distort,
    random_sample_crop,
    shrink_boxes_to_masks,
)
from yolact_edu.ops.preprocess import RGB_MEAN


def make_sample(height=200, width=300, boxes=((30, 20, 100, 80), (150, 100, 290, 190), (5, 5, 15, 15)),
                crowd=None):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, height, width, generator=gen) * 255
    masks = torch.zeros(len(boxes), height, width, dtype=torch.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, y1:y2, x1:x2] = 1
    crowd = crowd or [False] * len(boxes)
    return Sample(image, torch.tensor(boxes, dtype=torch.float32), masks,
                  torch.arange(len(boxes)), torch.tensor(crowd))


def mask_box(mask):
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()


def test_boxes_and_masks_stay_consistent_over_many_draws():
    torch.manual_seed(0)
    augment = SSDAugmentation(96)
    sample = make_sample()
    seen_counts = set()
    for _ in range(150):
        out = augment(sample)
        assert out.image.shape == (3, 96, 96) and out.masks.shape[1:] == (96, 96)
        assert len(out) == len(out.boxes) == len(out.masks) == len(out.iscrowd) >= 1
        assert ((out.boxes >= 0) & (out.boxes <= 96)).all()
        sizes = out.boxes[:, 2:] - out.boxes[:, :2]
        assert (sizes >= 1).all(), "degenerate boxes are dropped"
        for box, mask in zip(out.boxes, out.masks):
            # nearest-neighbour masks vs exactly scaled boxes: within a pixel after resizing
            if mask.any():
                assert (mask_box(mask) - box).abs().max() <= 1.5
        seen_counts.add(len(out))
    assert len(seen_counts) > 1, "crops sometimes drop objects"


def test_deterministic_under_torch_seed():
    augment = SSDAugmentation(64)
    sample = make_sample()
    torch.manual_seed(3)
    first = [augment(sample) for _ in range(5)]
    torch.manual_seed(3)
    second = [augment(sample) for _ in range(5)]
    for a, b in zip(first, second):
        assert torch.equal(a.image, b.image) and torch.equal(a.boxes, b.boxes) and torch.equal(a.masks, b.masks)
    assert not all(torch.equal(a.image, first[0].image) for a in first[1:])


def test_sample_crop_keeps_objects_whose_centre_is_inside_and_clips_them():
    sample = make_sample()
    rng = np.random.default_rng(1)
    cropped_any = False
    for _ in range(60):
        out = random_sample_crop(sample, rng)
        if out.image.shape == sample.image.shape:
            continue
        cropped_any = True
        height, width = out.image.shape[-2:]
        assert 0.3 * 200 - 1 <= height and 0.3 * 300 - 1 <= width
        assert 0.5 - 0.05 <= height / width <= 2 + 0.05
        assert ((out.boxes[:, 0::2] >= 0) & (out.boxes[:, 0::2] <= width)).all()
        assert ((out.boxes[:, 1::2] >= 0) & (out.boxes[:, 1::2] <= height)).all()
        for box, mask in zip(out.boxes, out.masks):
            assert torch.equal(mask_box(mask), box), "crop moves masks and boxes together"
    assert cropped_any


def test_sample_crop_never_keeps_only_crowds():
    # The crowd region covers the middle; the only real object sits in a corner.
    sample = make_sample(boxes=((60, 40, 240, 160), (0, 0, 20, 20)), crowd=[True, False])
    rng = np.random.default_rng(0)
    for _ in range(40):
        out = random_sample_crop(sample, rng)
        assert (~out.iscrowd).any()


def test_photometric_distortion_does_not_clip_and_keeps_shape():
    image = np.full((8, 8, 3), 250.0, np.float32)
    outs = [photometric_distort(image, np.random.default_rng(seed)) for seed in range(40)]
    assert all(o.shape == image.shape and o.dtype == np.float32 for o in outs)
    assert max(o.max() for o in outs) > 255, "no clipping to 0..255, as the original"
    assert any(not np.allclose(o, image) for o in outs)


def test_expand_fills_with_the_mean_and_pads_masks_with_zero():
    augment = SSDAugmentation(64)
    sample = make_sample()
    torch.manual_seed(0)
    for _ in range(20):
        out = augment.expand(sample.as_tv())
        if out["image"].shape[-1] > 300:
            break
    else:
        pytest.fail("expand never fired in 20 draws")
    image, masks = out["image"], out["masks"]
    assert masks.shape[-2:] == image.shape[-2:] and masks.sum() == sample.masks.sum()
    corners = image[:, [0, 0, -1, -1], [0, -1, 0, -1]].T
    # at least one corner lies outside the pasted original: it carries the mean colour
    assert any(torch.allclose(c, torch.tensor(RGB_MEAN)) for c in corners)


def test_a_draw_that_loses_every_object_is_redrawn_then_falls_back():
    # A 1x1-pixel object at 300 px becomes < 1 px at 64: every draw loses it. The fallback is
    # the plain resize, and its degenerate box is dropped too, so a usable object must stay.
    augment = SSDAugmentation(64, redraws=3)
    sample = make_sample(boxes=((10, 10, 11, 11), (100, 50, 250, 150)))
    torch.manual_seed(0)
    for _ in range(10):
        out = augment(sample)
        assert len(out) >= 1 and out.labels.tolist() != [0]
    tiny_only = make_sample(boxes=((10, 10, 11, 11),))
    out = augment(tiny_only)
    assert len(out) == 0 and out.image.shape == (3, 64, 64)


def test_shrink_boxes_to_masks_follows_what_is_left_of_an_irregular_mask():
    # An L-shaped object whose clipped box is the whole 10x10 canvas, and one with no pixels left.
    masks = torch.zeros(2, 10, 10, dtype=torch.uint8)
    masks[0, 0:2, 0:10] = 1
    masks[0, 0:6, 0:2] = 1
    sample = Sample(torch.zeros(3, 10, 10), torch.tensor([[0.0, 0, 10, 10], [2.0, 2, 5, 5]]), masks,
                    torch.tensor([3, 4]), torch.tensor([False, False]))
    out = shrink_boxes_to_masks(sample)
    assert out.labels.tolist() == [3]
    assert out.boxes.tolist() == [[0.0, 0.0, 10.0, 6.0]]


def test_augmented_shapes_keep_boxes_and_masks_together(tmp_path):
    # Real occluded, ring-shaped objects: every box is its mask's tight box to within 1 px.
    paths = make_shapes(tmp_path, num_train=12, num_val=1, seed=3)
    dataset = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=128, augment=True,
                          verbose=False)
    torch.manual_seed(0)
    for i in range(60):
        _, target = dataset[i % len(dataset)]
        assert len(target["labels"]) >= 1
        for box, mask in zip(target["boxes"] * 128, target["masks"]):
            assert mask.any()
            assert (mask_box(mask) - box).abs().max() <= 1.0


def test_light_augmentation_keeps_every_object_at_its_place_or_mirrored():
    # zoom_out=1, sample_crop=False: only photometric distortion and the mirror remain, so
    # every object survives and each box is the plain resize of the original, or its mirror.
    torch.manual_seed(0)
    light = SSDAugmentation(100, zoom_out=1.0, sample_crop=False)
    sample = make_sample(boxes=((30, 20, 100, 80), (150, 100, 290, 190)))
    plain = SSDAugmentation(100).resize(sample).boxes
    mirrored = plain[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1, -1, 1]) + torch.tensor([100.0, 0, 100, 0])
    seen_mirror = seen_plain = False
    for _ in range(20):
        out = light(sample)
        assert len(out) == 2
        if torch.allclose(out.boxes, plain, atol=1.0):
            seen_plain = True
        else:
            assert torch.allclose(out.boxes, mirrored, atol=1.0)
            seen_mirror = True
    assert seen_plain and seen_mirror


def test_dataset_takes_a_configured_augmentation_of_its_size(tmp_path):
    paths = make_shapes(tmp_path, num_train=2, num_val=1, seed=4, min_size=64, max_size=80)
    light = SSDAugmentation(64, zoom_out=1.0, sample_crop=False)
    dataset = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=64, augment=light,
                          verbose=False)
    assert dataset.augmentation is light and dataset[0][0].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="ends at 64 px but max_size is 96"):
        CocoDataset(paths["train_annotations"], paths["train_images"], max_size=96, augment=light, verbose=False)


def test_augmentations_by_name_as_configs_carry_them(tmp_path):
    original, light = augmentation("original", 64), augmentation("light", 64)
    assert original.sample_crop and original.expand.p == 0.5
    assert not light.sample_crop and light.expand.p == 0.0 and light.max_size == 64
    assert augmentation("none", 64) is None
    with pytest.raises(ValueError, match="'heavy'"):
        augmentation("heavy", 64)
    paths = make_shapes(tmp_path, num_train=3, num_val=1, seed=4, min_size=64, max_size=80)
    by_name = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=64, augment="light",
                          verbose=False)
    assert not by_name.augmentation.sample_crop and by_name.augmentation.expand.p == 0.0
    plain = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=64, augment="none",
                        verbose=False)
    assert plain.augmentation is None
    assert torch.equal(plain[0][0], CocoDataset(paths["train_annotations"], paths["train_images"], max_size=64,
                                                verbose=False)[0][0])
