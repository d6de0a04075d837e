"""The bundled synthetic shapes set: real COCO format, exact masks, hard cases on purpose, reproducible."""
import hashlib
import itertools
import json
from collections import defaultdict

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from yolact_edu.data.shapes import SHAPE_CLASSES, make_shapes, render_scene, shapes_exist

SPLITS = ("train", "val")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    paths = make_shapes(root, num_train=20, num_val=8, seed=0)
    cocos = {split: COCO(str(paths[f"{split}_annotations"])) for split in SPLITS}
    return paths, cocos


def all_annotations(cocos):
    for split in SPLITS:
        for ann in cocos[split].dataset["annotations"]:
            yield split, ann


def masks_by_image(coco):
    """image id -> list of (category_id, bool mask)."""
    out = defaultdict(list)
    for ann in coco.dataset["annotations"]:
        out[ann["image_id"]].append((ann["category_id"], coco.annToMask(ann).astype(bool)))
    return out


def enclosed_background(mask: np.ndarray) -> int:
    """Pixels outside ``mask`` that cannot reach the image border without crossing it (holes)."""
    outside = np.ascontiguousarray(np.pad(1 - mask.astype(np.uint8), 1, constant_values=1))
    cv2.floodFill(outside, None, (0, 0), 0)  # 4-connected: a diagonal gap in the mask is no exit
    return int(outside.sum())


def file_digests(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.glob("*.jpg"))}


def test_returns_the_documented_paths_and_layout(shapes):
    paths, _ = shapes
    root = paths["root"]
    assert paths["train_images"] == root / "train" and paths["val_images"] == root / "val"
    assert paths["train_annotations"] == root / "instances_train.json"
    assert paths["val_annotations"] == root / "instances_val.json"
    assert len(list((root / "train").glob("train_*.jpg"))) == 20
    assert len(list((root / "val").glob("val_*.jpg"))) == 8


def test_real_coco_instances_format(shapes):
    paths, cocos = shapes
    for split in SPLITS:
        data = json.loads(paths[f"{split}_annotations"].read_text())
        assert set(data) >= {"info", "licenses", "images", "annotations", "categories"}
        assert [c["id"] for c in data["categories"]] == list(range(1, len(SHAPE_CLASSES) + 1))
        assert [c["name"] for c in data["categories"]] == list(SHAPE_CLASSES)
        assert all(c["supercategory"] for c in data["categories"])
        image_ids = [image["id"] for image in data["images"]]
        ann_ids = [ann["id"] for ann in data["annotations"]]
        assert len(set(image_ids)) == len(image_ids) and min(image_ids) >= 1
        assert len(set(ann_ids)) == len(ann_ids) and min(ann_ids) >= 1
        for image in data["images"]:
            assert set(image) >= {"id", "file_name", "width", "height"}
        for ann in data["annotations"]:
            assert set(ann) >= {"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd"}
            assert ann["iscrowd"] == 0 and ann["image_id"] in image_ids
            assert isinstance(ann["segmentation"]["counts"], str)  # compressed RLE, JSON-safe
            assert ann["segmentation"]["size"] == [cocos[split].imgs[ann["image_id"]]["height"],
                                                   cocos[split].imgs[ann["image_id"]]["width"]]


def test_at_least_six_classes_including_a_ring():
    assert len(SHAPE_CLASSES) >= 6 and len(set(SHAPE_CLASSES)) == len(SHAPE_CLASSES)
    assert "ring" in SHAPE_CLASSES


def test_every_class_is_annotated(shapes):
    _, cocos = shapes
    seen = {ann["category_id"] for _, ann in all_annotations(cocos)}
    assert seen == set(range(1, len(SHAPE_CLASSES) + 1))


def test_bbox_and_area_agree_exactly_with_the_mask(shapes):
    _, cocos = shapes
    for split, ann in all_annotations(cocos):
        rle = cocos[split].annToRLE(ann)
        mask = cocos[split].annToMask(ann)
        assert ann["bbox"] == mask_utils.toBbox(rle).tolist()
        assert ann["area"] == mask.sum() > 0
        ys, xs = np.nonzero(mask)  # and the box is the tight box of the pixels
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_one_to_ten_instances_per_image(shapes):
    _, cocos = shapes
    for coco in cocos.values():
        counts = [len(coco.getAnnIds(imgIds=[image_id])) for image_id in coco.getImgIds()]
        assert min(counts) >= 1 and max(counts) <= 10
        assert len(set(counts)) > 1


def test_visible_masks_of_one_image_are_disjoint(shapes):
    _, cocos = shapes
    for coco in cocos.values():
        for instances in masks_by_image(coco).values():
            painted = np.zeros(instances[0][1].shape, np.int32)
            for _, mask in instances:
                painted += mask
            assert painted.max() == 1


def test_ring_masks_have_a_background_hole(shapes):
    _, cocos = shapes
    ring_id = SHAPE_CLASSES.index("ring") + 1
    holes = [enclosed_background(cocos[split].annToMask(ann))
             for split, ann in all_annotations(cocos) if ann["category_id"] == ring_id]
    # Objects on top may cut through a ring's body and open its hole to the outside (correctly:
    # the mask is the visible part), so not every ring shows one -- but many must.
    assert sum(h > 20 for h in holes) >= 3


def test_ring_hole_shows_what_lies_behind():
    # A ring with a large hole: the hole is not in its mask, and the image there is not the
    # ring's fill (painting the hole over would leave a ring-coloured disc labelled background).
    ring_id = SHAPE_CLASSES.index("ring") + 1
    rng = np.random.default_rng(123)
    for _ in range(60):
        image, instances = render_scene(rng, 256, 256)
        for category_id, mask in instances:
            if category_id != ring_id or enclosed_background(mask) < 200:
                continue
            outside = np.ascontiguousarray(np.pad(1 - mask.astype(np.uint8), 1, constant_values=1))
            cv2.floodFill(outside, None, (0, 0), 0)
            hole = outside[1:-1, 1:-1].astype(bool)
            hole = cv2.erode(hole.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # skip blurred edges
            ring = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            if hole.sum() < 50 or ring.sum() < 50:
                continue
            ring_mean = image[ring].astype(float).mean(0)
            hole_mean = image[hole].astype(float).mean(0)
            assert not mask[hole].any()
            assert np.linalg.norm(ring_mean - hole_mean) > 20
            return
    pytest.fail("no ring with a visible hole in 60 scenes")


def test_same_class_instances_touch_or_occlude(shapes):
    _, cocos = shapes
    kernel = np.ones((3, 3), np.uint8)
    pairs, images, images_with_pairs = 0, 0, 0
    for coco in cocos.values():
        for instances in masks_by_image(coco).values():
            here = sum(cat_a == cat_b and bool((cv2.dilate(a.astype(np.uint8), kernel).astype(bool) & b).any())
                       for (cat_a, a), (cat_b, b) in itertools.combinations(instances, 2))
            pairs += here
            images += 1
            images_with_pairs += here > 0
    # Placed on purpose, not by chance: random placement alone gives about half as many
    # (27 pairs in 14 of these 28 images, against 88 in 22 with deliberate neighbours).
    assert pairs >= 40
    assert images_with_pairs >= 0.6 * images


def test_image_files_match_the_json_and_sizes_vary(shapes):
    paths, cocos = shapes
    widths, heights = set(), set()
    for split in SPLITS:
        for image in cocos[split].dataset["images"]:
            pixels = cv2.imread(str(paths[f"{split}_images"] / image["file_name"]))
            assert pixels is not None and pixels.shape == (image["height"], image["width"], 3)
            assert 256 <= image["width"] <= 384 and 256 <= image["height"] <= 384
            widths.add(image["width"])
            heights.add(image["height"])
    assert len(widths) > 5 and len(heights) > 5


def test_object_sizes_span_small_to_large(shapes):
    _, cocos = shapes
    fractions = []
    for split, ann in all_annotations(cocos):
        image = cocos[split].imgs[ann["image_id"]]
        fractions.append(ann["area"] / (image["width"] * image["height"]))
    assert min(fractions) <= 0.02
    assert max(fractions) >= 0.30


def test_backgrounds_and_objects_are_textured_not_flat(shapes):
    paths, cocos = shapes
    coco = cocos["train"]
    for image_id, instances in list(masks_by_image(coco).items())[:5]:
        image = cv2.imread(str(paths["train_images"] / coco.imgs[image_id]["file_name"])).astype(float)
        background = ~np.any([mask for _, mask in instances], axis=0)
        assert image[background].std(0).max() > 3  # noise and texture, never one flat colour
        for _, mask in instances:
            if mask.sum() > 200:
                assert image[mask].std(0).max() > 2


def test_train_and_val_are_disjoint(shapes):
    paths, cocos = shapes
    names = {split: {image["file_name"] for image in cocos[split].dataset["images"]} for split in SPLITS}
    assert not names["train"] & names["val"]
    assert all(name.startswith("train_") for name in names["train"])
    assert all(name.startswith("val_") for name in names["val"])

    def pixel_digests(split):
        return {hashlib.sha256(cv2.imread(str(paths[f"{split}_images"] / name)).tobytes()).hexdigest()
                for name in names[split]}

    train, val = pixel_digests("train"), pixel_digests("val")
    assert len(train) == 20 and len(val) == 8 and not train & val


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    runs = {name: make_shapes(tmp_path / name, num_train=4, num_val=3, seed=seed)
            for name, seed in (("a", 7), ("b", 7), ("c", 8))}
    for split in SPLITS:
        key = f"{split}_annotations"
        assert runs["a"][key].read_bytes() == runs["b"][key].read_bytes()
        assert runs["a"][key].read_bytes() != runs["c"][key].read_bytes()
        a, b, c = (file_digests(runs[name][f"{split}_images"]) for name in "abc")
        assert a == b and len(a) == (4 if split == "train" else 3)
        assert set(a) == set(c) and all(a[name] != c[name] for name in a)


def test_val_stream_does_not_depend_on_the_train_size(tmp_path):
    small = make_shapes(tmp_path / "small", num_train=2, num_val=2, seed=3)
    large = make_shapes(tmp_path / "large", num_train=5, num_val=2, seed=3)
    assert small["val_annotations"].read_bytes() == large["val_annotations"].read_bytes()
    assert file_digests(small["val_images"]) == file_digests(large["val_images"])


def test_shapes_exist_and_no_overwrite(tmp_path):
    root = tmp_path / "set"
    assert not shapes_exist(root)
    paths = make_shapes(root, num_train=3, num_val=2, seed=1)
    assert shapes_exist(root)
    before = {split: file_digests(paths[f"{split}_images"]) for split in SPLITS}
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    assert make_shapes(root, num_train=3, num_val=2, seed=1) == paths  # complete: left untouched
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps
    with pytest.warns(UserWarning, match="overwrite=True"):  # different request: reused, but said so
        make_shapes(root, num_train=3, num_val=2, seed=2)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps

    # A missing image (an interrupted run, a deleted file) makes the set incomplete and it is remade.
    (paths["val_images"] / "val_000001.jpg").unlink()
    assert not shapes_exist(root)
    make_shapes(root, num_train=3, num_val=2, seed=1)
    assert shapes_exist(root)
    assert {split: file_digests(paths[f"{split}_images"]) for split in SPLITS} == before

    # Without annotation files nothing counts as a set, whatever images are there.
    paths["train_annotations"].unlink()
    assert not shapes_exist(root)

    # overwrite=True regenerates, and images of the larger old set do not linger.
    make_shapes(root, num_train=2, num_val=2, seed=5, overwrite=True)
    assert shapes_exist(root)
    assert sorted(file_digests(paths["train_images"])) == ["train_000000.jpg", "train_000001.jpg"]
    assert file_digests(paths["train_images"])["train_000000.jpg"] != before["train"]["train_000000.jpg"]
    assert not list(root.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("kwargs", "name", "value"),
    [
        ({"num_train": 0}, "num_train", "0"),
        ({"num_val": -2}, "num_val", "-2"),
        ({"min_size": 300, "max_size": 200}, "min_size", "300"),
        ({"min_size": 16, "max_size": 32}, "min_size", "16"),
        ({"max_size": 40}, "max_size", "40"),
        ({"seed": -1}, "seed", "-1"),
        ({"num_train": 2.5}, "num_train", "2.5"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(tmp_path, kwargs, name, value):
    with pytest.raises(ValueError, match=name) as error:
        make_shapes(tmp_path / "bad", **kwargs)
    assert value in str(error.value)
    assert not (tmp_path / "bad").exists()  # checked before anything is written
