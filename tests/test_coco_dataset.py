"""CocoDataset: every mask encoding, every image layout, validation that names the problem."""
import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from yolact_edu.data import CocoDataset, DatasetError, collate
from yolact_edu.data.images import read_image
from yolact_edu.ops.preprocess import preprocess_images

H, W = 60, 80


def rect_mask(x1, y1, x2, y2):
    mask = np.zeros((H, W), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def rle_of(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def uncompressed_rle_of(mask):
    counts, flat, value, run = [], mask.flatten(order="F"), 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def write_set(root, images=None, annotations=None, categories=None):
    """A small COCO set: category ids 3 and 7 (gaps), a polygon, an RLE, an uncompressed-RLE
    crowd region, and images in four layouts (colour JPEG, grayscale, RGBA, 16-bit PNG)."""
    rng = np.random.RandomState(0)
    colour = (rng.rand(H, W, 3) * 255).astype(np.uint8)
    cv2.imwrite(str(root / "colour.png"), colour)
    cv2.imwrite(str(root / "gray.png"), colour[:, :, 0])
    cv2.imwrite(str(root / "rgba.png"), np.dstack([colour, np.full((H, W), 255, np.uint8)]))
    cv2.imwrite(str(root / "deep.png"), colour.astype(np.uint16) * 257)
    default_images = [{"id": i, "file_name": name, "width": W, "height": H}
                      for i, name in enumerate(["colour.png", "gray.png", "rgba.png", "deep.png"], 1)]
    default_annotations = [
        {"id": 10, "image_id": 1, "category_id": 3, "iscrowd": 0, "bbox": [10, 10, 20, 20], "area": 400,
         "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]},
        {"id": 11, "image_id": 1, "category_id": 7, "iscrowd": 0, "bbox": [40, 20, 30, 30], "area": 900,
         "segmentation": rle_of(rect_mask(40, 20, 70, 50))},
        {"id": 12, "image_id": 1, "category_id": 7, "iscrowd": 1, "bbox": [0, 40, 20, 20], "area": 400,
         "segmentation": uncompressed_rle_of(rect_mask(0, 40, 20, 60))},
        {"id": 13, "image_id": 2, "category_id": 3, "iscrowd": 0, "bbox": [5, 5, 10, 10], "area": 100,
         "segmentation": rle_of(rect_mask(5, 5, 15, 15))},
        {"id": 14, "image_id": 3, "category_id": 7, "iscrowd": 0, "bbox": [50, 5, 20, 10], "area": 200,
         "segmentation": rle_of(rect_mask(50, 5, 70, 15))},
    ]
    data = {"images": default_images if images is None else images,
            "annotations": default_annotations if annotations is None else annotations,
            "categories": categories or [{"id": 7, "name": "ring"}, {"id": 3, "name": "star"}]}
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path, data


def test_labels_masks_and_boxes(tmp_path, capsys):
    path, _ = write_set(tmp_path)
    ds = CocoDataset(path, tmp_path, max_size=64)
    assert ds.class_names == ("star", "ring") and ds.category_ids == (3, 7)
    assert ds.label(7) == 1 and ds.category_id(0) == 3
    assert len(ds) == 4                       # eval mode keeps the image without annotations
    printed = capsys.readouterr().out
    assert "4 images" in printed and "star 2" in printed and "ring 3" in printed and "1 crowd" in printed

    image, target = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert torch.allclose(image, preprocess_images([read_image(tmp_path / "colour.png")], 64)[0])
    assert target["labels"].tolist() == [0, 1, 1]
    assert target["iscrowd"].tolist() == [False, False, True]
    assert torch.allclose(target["boxes"][0], torch.tensor([10 / W, 10 / H, 30 / W, 30 / H]))
    assert target["masks"].shape == (3, 64, 64) and set(target["masks"].unique().tolist()) <= {0.0, 1.0}
    raw = ds.load_target(0)
    # polygon, RLE and uncompressed RLE all decode to the rectangles they describe
    assert raw["masks"][0].sum() > 0.9 * 400 and raw["masks"][1].sum() == 900 and raw["masks"][2].sum() == 400
    for mask, box in zip(raw["masks"], raw["boxes"]):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert xs.min() >= box[0] - 1 and xs.max() < box[2] + 1
        assert ys.min() >= box[1] - 1 and ys.max() < box[3] + 1
    assert target["image_id"] == 1 and target["orig_size"] == (H, W)


def test_image_layouts_decode_to_the_same_rgb(tmp_path):
    write_set(tmp_path)
    colour = read_image(tmp_path / "colour.png")
    assert colour.shape == (H, W, 3) and colour.dtype == np.uint8
    assert np.array_equal(read_image(tmp_path / "rgba.png"), colour)
    assert np.array_equal(read_image(tmp_path / "deep.png"), colour)
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (H, W, 3) and np.array_equal(gray[:, :, 0], gray[:, :, 2])
    # cv2 wrote colour[:, :, 0] as the gray image; colour is RGB here, cv2 took it as BGR
    assert np.array_equal(gray[:, :, 0], cv2.imread(str(tmp_path / "gray.png"), cv2.IMREAD_GRAYSCALE))


def test_training_mode_keeps_annotated_images_only_and_augments(tmp_path):
    path, _ = write_set(tmp_path)
    torch.manual_seed(0)
    ds = CocoDataset(path, tmp_path, max_size=64, augment=True, verbose=False)
    assert len(ds) == 3                     # deep.png has no annotation
    for i in range(12):
        image, target = ds[i % 3]
        assert image.shape == (3, 64, 64)
        n = len(target["labels"])
        assert n >= 1 and (~target["iscrowd"]).any()
        assert target["masks"].shape == (n, 64, 64)
        assert ((target["boxes"] >= 0) & (target["boxes"] <= 1)).all()
    images, targets = collate([ds[0], ds[1]])
    assert images.shape == (2, 3, 64, 64) and len(targets) == 2


def test_recoverable_problems_are_skipped_counted_and_reported(tmp_path, capsys):
    path, data = write_set(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    data["images"] += [{"id": 5, "file_name": "broken.jpg", "width": W, "height": H},
                       {"id": 6, "file_name": "gone.jpg", "width": W, "height": H}]
    good = {"iscrowd": 0, "area": 1, "category_id": 3}
    data["annotations"] += [
        dict(good, id=20, image_id=2, bbox=[5, 5, 0, 10], segmentation=rle_of(rect_mask(5, 5, 6, 15))),
        dict(good, id=21, image_id=2, bbox=[500, 5, 10, 10], segmentation=rle_of(rect_mask(5, 5, 6, 15))),
        dict(good, id=22, image_id=2, bbox=[5, 5, 10, 10], segmentation=[[1, 2, 3, 4]]),
        dict(good, id=23, image_id=5, bbox=[5, 5, 10, 10], segmentation=rle_of(rect_mask(5, 5, 15, 15))),
        dict(good, id=24, image_id=6, bbox=[5, 5, 10, 10], segmentation=rle_of(rect_mask(5, 5, 15, 15))),
    ]
    path.write_text(json.dumps(data))
    ds = CocoDataset(path, tmp_path, max_size=64)
    out = capsys.readouterr().out
    report = ds.report
    assert report.skipped_annotations == {"zero-area box": [20], "box outside the image": [21],
                                          "invalid polygon": [22]}
    assert report.missing_images == ["gone.jpg"] and "gone.jpg" in out
    assert "zero-area box: ids 20" in out and "invalid polygon: ids 22" in out
    assert len(ds) == 5                       # the missing file is left out, nothing else
    broken_index = ds.ids.index(5)
    with pytest.warns(UserWarning, match="broken.jpg cannot be decoded"):
        image, target = ds[broken_index]
    assert target["image_id"] != 5 and image.shape == (3, 64, 64)   # the next image instead
    assert str(tmp_path / "broken.jpg") in report.unreadable_images
    assert "unreadable images" in str(report)


def test_image_of_the_wrong_size_is_reported(tmp_path):
    path, data = write_set(tmp_path)
    data["images"][0]["width"] = W + 1
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]
    path.write_text(json.dumps(data))
    ds = CocoDataset(path, tmp_path, max_size=64, verbose=False)
    with pytest.warns(UserWarning, match=f"is {W}x{H} but instances.json says {W + 1}x{H}"):
        assert ds.load_image(0) is None


@pytest.mark.parametrize("change, message", [
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate id 1 in field 'images'"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "duplicate id 10 in field 'annotations'"),
    (lambda d: d["annotations"][1].update(category_id=99), "annotation id 11 has unknown category_id 99"),
    (lambda d: d["annotations"][0].update(image_id=42), "annotation id 10 has unknown image_id 42"),
    (lambda d: d["images"][1].pop("height"), "image id 2 has no field 'height'"),
    (lambda d: d.pop("categories"), "field 'categories' is missing"),
])
def test_fatal_problems_name_file_id_and_field(tmp_path, change, message):
    path, data = write_set(tmp_path)
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as info:
        CocoDataset(path, tmp_path, verbose=False)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoDataset(tmp_path / "nope.json", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(DatasetError, match="bad.json: not valid JSON"):
        CocoDataset(bad, tmp_path)


def test_a_set_without_usable_images_is_an_error(tmp_path):
    path, data = write_set(tmp_path, annotations=[])
    with pytest.raises(DatasetError, match="no usable images"):
        CocoDataset(path, tmp_path, augment=True, verbose=False)
