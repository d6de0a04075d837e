"""The COCO subset builder (yolact_edu.data.coco_subset) against a local HTTP server.

Nothing here touches the network. Each test writes a small COCO instances file
(categories with the non-contiguous ids 1, 3, 18, twelve tiny JPEGs, polygons, a
crowd region, an image without annotations), and a ThreadingHTTPServer on
127.0.0.1 serves the JPEGs and annotation archives made here, recording every
request and failing on demand, so retries, resumes and refusals are observed.
"""

from __future__ import annotations

import json
import os
import random
import re
import stat
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from file_server import FileServer
from pycocotools.coco import COCO

from yolact_edu.data.coco_annotations import UnsafeArchiveError, annotations_file, download_coco_annotations
from yolact_edu.data.coco_subset import CocoSubsetError, build_coco_subset, subset_summary
from yolact_edu.data.images import decode_image
from yolact_edu.files.download import DownloadError

CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
]
IMAGE_IDS = [7 * i + 5 for i in range(12)]  # 5, 12, ..., 82: sparse like COCO's
# Category ids of the non-crowd annotations of each image, in IMAGE_IDS order.
CONTENTS = [[18, 1], [18], [18, 18], [18, 3], [18], [18, 1], [3], [3, 3], [3], [1], [], []]
CROWD_DOG_ONLY = IMAGE_IDS[10]  # has a crowd dog and nothing else
EMPTY = IMAGE_IDS[11]  # has no annotations at all
ARCHIVE = "/annotations/annotations_trainval2017.zip"


@pytest.fixture
def server():
    with FileServer() as server:
        yield server


def jpeg(height: int, width: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", pixels)
    assert ok
    return buf.tobytes()


def make_coco(base_url: str) -> tuple[dict, dict[str, bytes]]:
    """A COCO instances dict and the JPEG bytes of its images, keyed by file name."""
    images, annotations, blobs = [], [], {}
    ann_id = 1000
    for index, (image_id, cats) in enumerate(zip(IMAGE_IDS, CONTENTS)):
        height, width = 24 + 4 * (index % 3), 32 + 8 * (index % 2)
        name = f"{image_id:012d}.jpg"
        blobs[name] = jpeg(height, width, seed=image_id)
        images.append(
            {
                "id": image_id,
                "file_name": name,
                "height": height,
                "width": width,
                "license": 1,
                "coco_url": f"{base_url}/val2017/{name}",
            }
        )
        for k, cat_id in enumerate(cats):
            x, y, w, h = 2 + 3 * k, 3 + 2 * k, 10, 8
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat_id,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    "area": float(w * h),
                    "bbox": [x, y, w, h],
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    # Crowd regions: one beside a real person, one alone on an image (which must not qualify it).
    for image_id, cat_id in ((IMAGE_IDS[0], 1), (CROWD_DOG_ONLY, 18)):
        image = images[IMAGE_IDS.index(image_id)]
        size = [image["height"], image["width"]]
        annotations.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": cat_id,
                "segmentation": {"counts": [40, 60, size[0] * size[1] - 100], "size": size},
                "area": 60.0,
                "bbox": [0, 1, image["width"], 3],
                "iscrowd": 1,
            }
        )
        ann_id += 1
    dataset = {
        "info": {"description": "yolact_edu test set", "year": 2024},
        "licenses": [{"id": 1, "name": "test", "url": "http://example.invalid"}],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    return dataset, blobs


@pytest.fixture
def coco(server, tmp_path):
    """(path of the instances JSON, its dict, local image folder); the server serves the images."""
    dataset, blobs = make_coco(server.base)
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(dataset))
    local = tmp_path / "val2017"
    local.mkdir()
    for name, data in blobs.items():
        (local / name).write_bytes(data)
        server.files[f"/val2017/{name}"] = data
    return path, dataset, local


def eligible(dataset: dict, cat_ids: set[int]) -> list[int]:
    return sorted({a["image_id"] for a in dataset["annotations"] if a["category_id"] in cat_ids and not a["iscrowd"]})


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --------------------------------------------------------------------------- selection


def test_selection_is_seeded_and_keeps_only_chosen_categories(coco, server, tmp_path):
    path, dataset, local = coco
    out = build_coco_subset(
        path, tmp_path / "a", categories=["dog", "person"], max_images=4, seed=0, images_from=local, progress=False
    )
    subset = json.loads(out.read_text())
    ids = [image["id"] for image in subset["images"]]

    expected = sorted(random.Random(0).sample(eligible(dataset, {1, 18}), 4))
    assert ids == expected
    assert out == tmp_path / "a" / "instances_subset.json"
    assert [c["id"] for c in subset["categories"]] == [1, 18]  # original ids, file order
    assert subset["info"] == dataset["info"] and subset["licenses"] == dataset["licenses"]
    assert {a["category_id"] for a in subset["annotations"]} <= {1, 18}
    # Every annotation of the kept categories on the kept images, crowd ones included.
    assert sorted(a["id"] for a in subset["annotations"]) == sorted(
        a["id"] for a in dataset["annotations"] if a["image_id"] in ids and a["category_id"] in (1, 18)
    )

    same = build_coco_subset(
        path, tmp_path / "b", categories=["person", "dog"], max_images=4, seed=0, images_from=local, progress=False
    )
    assert [image["id"] for image in json.loads(same.read_text())["images"]] == ids
    other = build_coco_subset(
        path, tmp_path / "c", categories=["dog", "person"], max_images=4, seed=1, images_from=local, progress=False
    )
    other_ids = [image["id"] for image in json.loads(other.read_text())["images"]]
    assert other_ids == sorted(random.Random(1).sample(eligible(dataset, {1, 18}), 4))
    assert other_ids != ids
    assert server.requests == []  # a local image folder needs no HTTP at all


def test_images_without_selected_annotations_are_excluded(coco, tmp_path):
    path, dataset, local = coco
    out = build_coco_subset(
        path, tmp_path / "dogs", categories=["dog"], max_images=None, images_from=local, progress=False
    )
    subset = json.loads(out.read_text())
    ids = {image["id"] for image in subset["images"]}
    assert ids == set(IMAGE_IDS[:6])  # the six images with a non-crowd dog
    assert CROWD_DOG_ONLY not in ids and EMPTY not in ids
    assert subset["categories"] == [CATEGORIES[2]]
    assert sorted(os.listdir(tmp_path / "dogs" / "images")) == sorted(f"{i:012d}.jpg" for i in IMAGE_IDS[:6])
    # max_images above the number available takes them all; category ids work like names.
    by_id = build_coco_subset(
        path, tmp_path / "dogs18", categories=[18], max_images=100, images_from=local, progress=False
    )
    assert json.loads(by_id.read_text())["images"] == subset["images"]
    assert "dog (id 18): 7 annotations in 6 images" in subset_summary(subset)


def test_unknown_category_is_named(coco, tmp_path):
    path, _, local = coco
    with pytest.raises(ValueError, match="unicorn") as info:
        build_coco_subset(path, tmp_path / "out", categories=["dog", "unicorn"], images_from=local, progress=False)
    assert "dog" in str(info.value)  # valid names are suggested
    assert not (tmp_path / "out").exists()


def test_file_without_coco_keys_is_named(tmp_path):
    bad = tmp_path / "not_coco.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"not_coco\.json.*annotations, categories"):
        build_coco_subset(bad, tmp_path / "out", progress=False)


# --------------------------------------------------------------------------- fetching


def test_download_writes_a_subset_pycocotools_reads(coco, server, tmp_path, capsys):
    path, dataset, _ = coco
    out_dir = tmp_path / "subset"
    out = build_coco_subset(path, out_dir, max_images=8, seed=3, workers=4, split_name="train", progress=True)
    assert out == out_dir / "instances_train.json"
    assert "8 images" in capsys.readouterr().out

    loaded = COCO(str(out))
    assert sorted(loaded.getCatIds()) == [1, 3, 18]
    assert len(loaded.getImgIds()) == 8
    for image in loaded.loadImgs(loaded.getImgIds()):
        pixels = cv2.imread(str(out_dir / "images" / image["file_name"]))
        assert pixels is not None and pixels.shape == (image["height"], image["width"], 3)
        assert loaded.annToMask(loaded.loadAnns(loaded.getAnnIds(imgIds=image["id"]))[0]).any()
    fetched = sorted(f"/val2017/{image['file_name']}" for image in loaded.dataset["images"])
    assert sorted(p for p in server.paths if p.startswith("/val2017/")) == fetched
    assert not list(out_dir.rglob("*.part")) and not list(out_dir.rglob("*.tmp"))

    # Resume: everything is on disk, so a second run asks the server for nothing.
    server.requests.clear()
    again = build_coco_subset(path, out_dir, max_images=8, seed=3, workers=4, split_name="train", progress=False)
    assert server.requests == []
    assert json.loads(again.read_text()) == loaded.dataset


def test_transient_server_errors_are_retried(coco, server, tmp_path):
    path, dataset, _ = coco
    flaky = [f"/val2017/{name}" for name in (f"{IMAGE_IDS[0]:012d}.jpg", f"{IMAGE_IDS[3]:012d}.jpg")]
    server.statuses_by_path = {flaky[0]: [503], flaky[1]: [429]}  # one retry each, in parallel: ~1 s
    out = build_coco_subset(path, tmp_path / "out", max_images=None, workers=4, progress=False)
    assert len(json.loads(out.read_text())["images"]) == len(eligible(dataset, {1, 3, 18}))
    assert server.paths.count(flaky[0]) == 2 and server.paths.count(flaky[1]) == 2


def test_missing_image_is_reported_and_resumed_after_the_fix(coco, server, tmp_path):
    path, dataset, _ = coco
    gone = f"{IMAGE_IDS[2]:012d}.jpg"
    kept = server.files.pop(f"/val2017/{gone}")
    out_dir = tmp_path / "out"
    with pytest.raises(CocoSubsetError, match=rf"(?s)1 of 10 images.*image {IMAGE_IDS[2]}: {gone}.*404"):
        build_coco_subset(path, out_dir, max_images=None, workers=3, progress=False)
    on_disk = set(os.listdir(out_dir / "images"))
    assert on_disk == {f"{i:012d}.jpg" for i in eligible(dataset, {1, 3, 18})} - {gone}
    assert not (out_dir / "instances_subset.json").exists()  # the JSON would list a missing image

    server.files[f"/val2017/{gone}"] = kept
    server.requests.clear()
    out = build_coco_subset(path, out_dir, max_images=None, workers=3, progress=False)
    assert server.paths == [f"/val2017/{gone}"]
    assert (out_dir / "images" / gone).read_bytes() == kept
    assert len(json.loads(out.read_text())["images"]) == 10


def test_non_image_body_is_rejected(coco, server, tmp_path):
    path, _, _ = coco
    name = f"{IMAGE_IDS[9]:012d}.jpg"
    server.files[f"/val2017/{name}"] = b"<html>rate limited</html>"
    with pytest.raises(CocoSubsetError, match="not an image"):
        build_coco_subset(path, tmp_path / "out", categories=["person"], max_images=None, progress=False)
    assert not (tmp_path / "out" / "images" / name).exists()
    assert not (tmp_path / "out" / "images" / f"{name}.part").exists()  # bad bytes are not resumed


@pytest.mark.parametrize("bad_name", ["../evil.jpg", "/abs.jpg", "a/b.jpg", "..\\evil.jpg", "C:evil.jpg", ".."])
@pytest.mark.parametrize("local", [False, True])
def test_file_names_that_escape_are_refused_before_fetching(coco, server, tmp_path, bad_name, local):
    path, dataset, local_dir = coco
    dataset["images"][1]["file_name"] = bad_name
    dataset["images"][1]["coco_url"] = f"{server.base}/val2017/evil.jpg"
    server.files["/val2017/evil.jpg"] = jpeg(8, 8, seed=1)
    path.write_text(json.dumps(dataset))
    before = tree(tmp_path)
    out_dir = tmp_path / "deep" / "out"
    with pytest.raises(ValueError, match=re.escape(f"image id {IMAGE_IDS[1]} with file_name {bad_name!r}")):
        build_coco_subset(path, out_dir, max_images=None, images_from=local_dir if local else None, progress=False)
    assert server.requests == []
    assert tree(tmp_path) == before
    assert not Path("/abs.jpg").exists()


# --------------------------------------------------------------------------- annotation archive


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path.read_bytes()


GOOD_MEMBERS = [
    ("annotations/", b""),
    ("annotations/instances_val2017.json", b'{"images": [], "annotations": [], "categories": []}'),
    ("annotations/captions_val2017.json", b"{}"),
]


def test_annotation_archive_is_extracted_once(server, tmp_path):
    server.files[ARCHIVE] = make_zip(tmp_path / "made.zip", GOOD_MEMBERS)
    dest = tmp_path / "coco"
    url = server.base + ARCHIVE
    ann_dir = download_coco_annotations(dest, url, progress=False)
    assert ann_dir == dest / "annotations"
    assert annotations_file(ann_dir).read_bytes() == GOOD_MEMBERS[1][1]
    assert (ann_dir / "captions_val2017.json").read_bytes() == b"{}"
    assert server.paths == [ARCHIVE]

    assert download_coco_annotations(dest, url, progress=False) == ann_dir
    assert server.paths == [ARCHIVE]  # neither downloaded nor extracted again

    # An extraction cut short (the marker is written before the first file moves into place):
    # a file missing, a stale staging folder. The next call extracts again from the archive it has.
    (ann_dir / "captions_val2017.json").unlink()
    (dest / ".annotations_trainval2017.zip.extract-stale").mkdir()
    assert download_coco_annotations(dest, url, progress=False) == ann_dir
    assert (ann_dir / "captions_val2017.json").read_bytes() == b"{}"
    assert server.paths == [ARCHIVE]
    assert not list(dest.glob("*.extract-*"))

    with pytest.raises(FileNotFoundError, match=r"instances_train2017\.json.*instances_val2017\.json"):
        annotations_file(ann_dir, "train2017")


def test_extraction_never_replaces_the_users_own_annotation_files(server, tmp_path):
    server.files[ARCHIVE] = make_zip(tmp_path / "made.zip", GOOD_MEMBERS)
    dest = tmp_path / "coco"
    (dest / "annotations").mkdir(parents=True)
    mine = dest / "annotations" / "instances_val2017.json"
    mine.write_text("my own edited annotations")
    with pytest.raises(FileExistsError, match=r"instances_val2017\.json exists and was not extracted"):
        download_coco_annotations(dest, server.base + ARCHIVE, progress=False)
    assert mine.read_text() == "my own edited annotations"
    assert sorted(p.name for p in (dest / "annotations").iterdir()) == ["instances_val2017.json"]


def symlink_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits below mean what they say
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "bad, why",
    [
        ("../evil.txt", "'..'"),
        ("annotations/../../evil.txt", "'..'"),
        ("ABSOLUTE_IN_TMP_PATH", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("\\evil.txt", "absolute"),
        (symlink_member("annotations/link.json"), "symbolic link"),
    ],
)
def test_unsafe_archive_members_are_refused(server, tmp_path, bad, why):
    outside = tmp_path / "outside" / "evil.txt"       # an absolute member aimed inside this test's folder
    bad = str(outside) if bad == "ABSOLUTE_IN_TMP_PATH" else bad
    # The unsafe member comes last: the safe ones before it must not be extracted either.
    server.files[ARCHIVE] = make_zip(tmp_path / "made.zip", [*GOOD_MEMBERS, (bad, b"/etc/passwd")])
    dest = tmp_path / "root" / "coco"
    before = tree(tmp_path)
    name = bad.filename if isinstance(bad, zipfile.ZipInfo) else bad
    with pytest.raises(UnsafeArchiveError, match=why) as info:
        download_coco_annotations(dest, server.base + ARCHIVE, progress=False)
    assert repr(name) in str(info.value)
    assert tree(tmp_path) - before == {"root", "root/coco", "root/coco/annotations_trainval2017.zip"}
    assert not outside.exists()


def test_corrupt_archive_is_not_kept(server, tmp_path):
    server.files[ARCHIVE] = b"PK\x03\x04 this is not really a zip"
    with pytest.raises(DownloadError, match="verification failed"):
        download_coco_annotations(tmp_path, server.base + ARCHIVE, progress=False, retries=0)
    assert sorted(os.listdir(tmp_path)) == []


def test_image_missing_from_local_folder_is_reported(coco, server, tmp_path):
    path, _, local = coco
    gone = f"{IMAGE_IDS[6]:012d}.jpg"
    (local / gone).unlink()
    with pytest.raises(CocoSubsetError, match=rf"(?s)1 of 4 images.*image {IMAGE_IDS[6]}: {gone}: FileNotFoundError"):
        build_coco_subset(path, tmp_path / "cars", categories=["car"], images_from=local, progress=False)
    assert len(os.listdir(tmp_path / "cars" / "images")) == 3
    assert server.requests == []  # a local folder never falls back to downloading


# -- issue 24: an image already there, or one cut short, is checked, not trusted ------------------
def test_an_image_already_there_counts_only_when_it_is_complete(coco, server, tmp_path):
    path, dataset, _ = coco
    out_dir = tmp_path / "out"
    name = f"{IMAGE_IDS[9]:012d}.jpg"                   # the one person-only image
    (out_dir / "images").mkdir(parents=True)
    (out_dir / "images" / name).write_bytes(b"junk!")
    with pytest.raises(CocoSubsetError, match=rf"{name} is already there but is not an image.*it is kept.*--force"):
        build_coco_subset(path, out_dir, categories=["person"], max_images=None, progress=False)
    assert (out_dir / "images" / name).read_bytes() == b"junk!"
    assert not (out_dir / "instances_subset.json").exists()
    out = build_coco_subset(path, out_dir, categories=["person"], max_images=None, progress=False, force=True)
    assert (out_dir / "images" / name).read_bytes() == server.files[f"/val2017/{name}"]
    assert len(json.loads(out.read_text())["images"]) == 3


@pytest.mark.parametrize("local", [False, True])
def test_a_jpeg_cut_short_is_rejected(coco, server, tmp_path, local):
    path, dataset, local_dir = coco
    name = f"{IMAGE_IDS[9]:012d}.jpg"
    whole = jpeg(120, 160, seed=1)              # big enough that its first part holds whole rows
    half = whole[: len(whole) * 2 // 3]       # what a server that sends no Content-Length can end with
    (tmp_path / "half.jpg").write_bytes(half)
    assert decode_image(tmp_path / "half.jpg") is not None         # it still decodes, the rest grey
    server.files[f"/val2017/{name}"] = half
    (local_dir / name).write_bytes(half)
    with pytest.raises(CocoSubsetError, match=rf"{name}.*a JPEG without its end-of-image marker"):
        build_coco_subset(path, tmp_path / "out", categories=["person"], max_images=None, progress=False,
                          images_from=local_dir if local else None)
    assert not (tmp_path / "out" / "images" / name).exists()
