"""The crowded shapes variant: crowds of one class, nesting, clutter, class-blind colours, any size."""
import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from pycocotools.coco import COCO

from yolact_edu.cli.main import main
from yolact_edu.data import crowded_scenes, shape_scenes
from yolact_edu.data.shapes import make_shapes, shapes_exist

SPLITS = ("train", "val")


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    root = tmp_path_factory.mktemp("crowded")
    paths = make_shapes(root, num_train=40, num_val=10, seed=0, variant="crowded")
    return paths, COCO(str(paths["train_annotations"]))


def by_image(coco):
    out = defaultdict(list)
    for ann in coco.dataset["annotations"]:
        out[ann["image_id"]].append(ann)
    return [out[image["id"]] for image in coco.dataset["images"]]


def test_every_image_has_a_crowd_of_one_class(crowded):
    _, coco = crowded
    largest = [max(Counter(a["category_id"] for a in anns).values()) for anns in by_image(coco)]
    # A crowd of 5-15 is drawn in every image; members hidden below the visibility limit are
    # dropped, so a few crowds end up smaller -- but most keep five or more.
    assert np.mean([n >= 5 for n in largest]) >= 0.8, largest
    assert max(largest) >= 10
    plain = COCO(str(make_shapes(crowded[0]["root"].parent / "plain", num_train=40, num_val=2,
                                 seed=0)["train_annotations"]))
    plain_largest = [max(Counter(a["category_id"] for a in anns).values()) for anns in by_image(plain)]
    assert np.median(largest) >= np.median(plain_largest) + 3  # far more crowded than the plain set


def test_same_class_crowd_members_touch_or_overlap(crowded):
    _, coco = crowded
    touching = 0
    for anns in by_image(coco):
        masks = [(a["category_id"], coco.annToMask(a).astype(bool)) for a in anns]
        for (c1, m1), (c2, m2) in zip(masks, masks[1:]):
            grown = np.zeros_like(m1)
            grown[1:, :] |= m1[:-1, :]
            grown[:-1, :] |= m1[1:, :]
            grown[:, 1:] |= m1[:, :-1]
            grown[:, :-1] |= m1[:, 1:]
            touching += c1 == c2 and bool((grown & m2).any())
    assert touching >= 3 * len(coco.dataset["images"])


def test_objects_lie_inside_other_objects_boxes(crowded):
    _, coco = crowded

    def inside(inner, outer):
        x, y, w, h = inner["bbox"]
        X, Y, W, H = outer["bbox"]
        return X <= x and Y <= y and x + w <= X + W and y + h <= Y + H and inner["area"] < outer["area"]

    nested = [any(inside(a, b) for a in anns for b in anns if a is not b) for anns in by_image(coco)]
    assert np.mean(nested) >= 0.8


def test_colour_does_not_tell_the_class(crowded):
    paths, coco = crowded
    import cv2

    colours, classes = [], []
    for image in coco.dataset["images"]:
        pixels = cv2.imread(str(paths["train_images"] / image["file_name"]))
        for ann in coco.imgToAnns[image["id"]]:
            colours.append(pixels[coco.annToMask(ann).astype(bool)].mean(0))
            classes.append(ann["category_id"])
    colours, classes = np.array(colours), np.array(classes)
    # Nearest class-mean colour, fitted and scored on the same instances (an optimistic probe),
    # stays near chance (1/6) when the colour is drawn whatever the class.
    means = {c: colours[classes == c].mean(0) for c in set(classes)}
    guessed = [min(means, key=lambda c: np.linalg.norm(colour - means[c])) for colour in colours]
    majority = max(Counter(classes).values()) / len(classes)
    assert len(classes) >= 300
    assert np.mean(np.array(guessed) == classes) < majority + 0.12


def test_sizes_span_small_to_large(crowded):
    _, coco = crowded
    images = {image["id"]: image for image in coco.dataset["images"]}
    share = [a["area"] / (images[a["image_id"]]["width"] * images[a["image_id"]]["height"])
             for a in coco.dataset["annotations"]]
    assert min(share) < 0.003 and max(share) > 0.1
    assert sum(a["area"] < 32 ** 2 for a in coco.dataset["annotations"]) > 0.2 * len(share)  # COCO "small"


def test_distractor_strokes_are_drawn_but_never_annotated():
    plain = shape_scenes.textured_background(np.random.default_rng(5), 200, 240)
    cluttered = crowded_scenes.cluttered_background(np.random.default_rng(5), 200, 240)
    changed = np.abs(cluttered - plain).max(-1) > 20
    assert 0.005 < changed.mean() < 0.5  # thin strokes: visible, but not a new background
    # The strokes belong to the background: no annotation is made for them, so the visible
    # masks of a scene cover less than the whole picture and never a pixel twice.
    image, instances = crowded_scenes.render_crowded_scene(np.random.default_rng(7), 256, 300)
    painted = np.sum([m for _, m in instances], 0)
    assert painted.max() == 1 and painted.mean() < 1


def test_windowed_overlap_equals_full_masks():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = shape_scenes.random_shape(rng, int(rng.integers(1, 7)), rng.uniform(100, 8000), 120, 160)
        b = shape_scenes.random_shape(rng, int(rng.integers(1, 7)), rng.uniform(100, 8000), 120, 160)
        other = b.mask_at(rng.uniform((0, 0), (160, 120)), 120, 160)
        center = rng.uniform((-20, -20), (180, 140))  # also partly outside the image
        assert a.overlaps(center, other) == bool((a.mask_at(center, 120, 160) & other).any())


def test_same_seed_same_bytes_and_the_variant_is_recorded(tmp_path, crowded):
    again = make_shapes(tmp_path / "again", num_train=40, num_val=10, seed=0, variant="crowded")
    assert again["val_annotations"].read_bytes() == crowded[0]["val_annotations"].read_bytes()
    info = json.loads(again["train_annotations"].read_text())["info"]
    assert info["generator"]["variant"] == "crowded" and "crowded" in info["description"]


def test_another_variant_in_the_folder_is_refused_not_reused(tmp_path):
    root = tmp_path / "set"
    make_shapes(root, num_train=2, num_val=2, seed=0)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match=r"plain variant.*'crowded'.*--force"):
        make_shapes(root, num_train=2, num_val=2, seed=0, variant="crowded")
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    with pytest.raises(ValueError, match="variant must be one of plain, crowded, got 'busy'"):
        make_shapes(tmp_path / "bad", variant="busy")
    assert not (tmp_path / "bad").exists()


def test_cli_variant_crowded_writes_its_own_default_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "shapes", "--variant", "crowded", "--num-train", "2", "--num-val", "2"]) == 0
    assert "crowded shapes set in data/shapes_crowded" in capsys.readouterr().out
    assert shapes_exist(tmp_path / "data" / "shapes_crowded") and not (tmp_path / "data" / "shapes").exists()
