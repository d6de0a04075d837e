"""`yolact-edu data ...` and the "look before you train" drawing, on a small shapes set."""
import json

import cv2
import matplotlib
import numpy as np
import pytest

from yolact_edu.cli.main import main
from yolact_edu.data import CocoDataset
from yolact_edu.viz.draw import draw_annotations, show_annotations

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    assert main(["data", "shapes", "--root", str(root), "--num-train", "6", "--num-val", "3", "--seed", "5"]) == 0
    return root


def test_data_shapes_writes_a_loadable_set_and_keeps_it(shapes_root, capsys):
    train = json.loads((shapes_root / "instances_train.json").read_text())
    val = json.loads((shapes_root / "instances_val.json").read_text())
    assert len(train["images"]) == 6 and len(val["images"]) == 3
    before = (shapes_root / "instances_train.json").stat().st_mtime_ns
    assert main(["data", "shapes", "--root", str(shapes_root), "--num-train", "6", "--num-val", "3",
                 "--seed", "5"]) == 0
    assert "kept the existing" in capsys.readouterr().out
    assert (shapes_root / "instances_train.json").stat().st_mtime_ns == before


def test_data_show_draws_the_ground_truth(shapes_root, tmp_path, capsys):
    out = tmp_path / "drawn"
    assert main(["data", "show", str(shapes_root / "instances_val.json"), str(shapes_root / "val"),
                 "--count", "2", "--output", str(out)]) == 0
    drawn = sorted(out.glob("*.png"))
    assert [p.name for p in drawn] == ["val_000000.png", "val_000001.png"]
    original = cv2.imread(str(shapes_root / "val" / "val_000000.jpg"))
    picture = cv2.imread(str(drawn[0]))
    assert picture.shape == original.shape and not np.array_equal(picture, original)
    assert "instances per class" in capsys.readouterr().out


def test_draw_and_show_annotations_mark_every_instance(shapes_root):
    dataset = CocoDataset(shapes_root / "instances_val.json", shapes_root / "val", verbose=False)
    image = dataset.load_image(0)
    target = dataset.load_target(0)
    picture = draw_annotations(dataset, 0)
    assert picture.shape == image.shape and picture.dtype == np.uint8
    changed = np.any(picture != image, axis=2)
    for mask in target["masks"].numpy().astype(bool):
        assert changed[mask].mean() > 0.9, "every mask is painted"
    ax = show_annotations(dataset, 0)
    assert np.array_equal(ax.images[0].get_array(), picture)
    assert ax.get_title() == f"val_000000.jpg: {len(target['labels'])} instances"


def test_data_coco_subset_from_a_local_folder(shapes_root, tmp_path, capsys):
    out = tmp_path / "subset"
    assert main(["data", "coco-subset", "--annotations", str(shapes_root / "instances_train.json"),
                 "--images-from", str(shapes_root / "train"), "--categories", "ring", "--max-images", "3",
                 "--output", str(out)]) == 0
    subset = json.loads((out / "instances_subset.json").read_text())
    assert len(subset["images"]) <= 3 and subset["images"]
    assert {a["category_id"] for a in subset["annotations"]} == {4}        # ring
    assert [c["name"] for c in subset["categories"]] == ["ring"]
    for image in subset["images"]:
        assert cv2.imread(str(out / "images" / image["file_name"])) is not None


def test_data_coco_subset_reports_unknown_categories(shapes_root, tmp_path, capsys):
    assert main(["data", "coco-subset", "--annotations", str(shapes_root / "instances_train.json"),
                 "--images-from", str(shapes_root / "train"), "--categories", "hexagon",
                 "--output", str(tmp_path / "x")]) == 1
    assert "hexagon" in capsys.readouterr().err
