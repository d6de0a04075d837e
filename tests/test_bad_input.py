"""Bad input gets one clear line and loses nothing (issue 11, parts 2-5 and 7).

Wrong results are errors, not numbers; arguments that make no sense are refused before any work;
the dataset catches at build time what would crash training later; one unreadable image does not
sink a folder; every error on the command line is one line naming the file and the cause.
Everything here runs on real files the tests make.
"""
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import yolact_edu as ye
from yolact_edu.cli.main import main
from yolact_edu.data import CocoDataset, DatasetError, make_shapes
from yolact_edu.lessons.pretrained import TINY_SHAPES_WEIGHTS
from yolact_edu.training.evaluation import evaluate
from yolact_edu.training.trainer import Trainer

WEIGHTS = str(TINY_SHAPES_WEIGHTS)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=4, num_val=4, seed=17,
                       min_size=128, max_size=160)


def one_error_line(err: str) -> str:
    """The one "error: ..." line of stderr (progress bars aside), checked to be alone."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not re.search(r"\d+%\|", line)]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def edited_copy(shapes, folder: Path, edit) -> Path:
    """The val split's annotation file with ``edit(dict)`` applied, beside the same images."""
    data = json.loads(Path(shapes["val_annotations"]).read_text())
    edit(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "instances.json"
    path.write_text(json.dumps(data))
    return path


def eval_argv(annotations, images, *extra):
    return ["eval", "--weights", WEIGHTS, "--annotations", str(annotations), "--images", str(images),
            "--device", "cpu", *extra]


# -- 2. wrong results are errors, not numbers -----------------------------------------------------
def swap_circle_and_square_ids(data):
    swap = {1: 2, 2: 1}
    for category in data["categories"]:
        category["id"] = swap.get(category["id"], category["id"])
    for annotation in data["annotations"]:
        annotation["category_id"] = swap.get(annotation["category_id"], annotation["category_id"])


def test_eval_maps_swapped_category_ids_by_name_and_says_so(shapes, tmp_path, capsys):
    assert main(eval_argv(shapes["val_annotations"], shapes["val_images"], "--output",
                          str(tmp_path / "plain.json"))) == 0
    assert "matched" not in capsys.readouterr().out
    swapped = edited_copy(shapes, tmp_path / "swapped", swap_circle_and_square_ids)
    assert main(eval_argv(swapped, shapes["val_images"], "--output", str(tmp_path / "swapped.json"))) == 0
    out = capsys.readouterr().out
    assert "matched to" in out and "by name" in out and "circle 1 -> 2" in out and "square 2 -> 1" in out
    plain, mapped = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("plain", "swapped"))
    for iou_type in ("segm", "bbox"):                # the same up to the order COCOeval averages in
        assert mapped[iou_type] == pytest.approx(plain[iou_type], rel=1e-9)
    assert plain["segm"]["AP"] > 0.05            # a real score, so equality above means something


def test_eval_refuses_a_file_whose_classes_are_not_the_models(shapes, tmp_path, capsys):
    def rename(data):
        data["categories"][0]["name"] = "disk"
    renamed = edited_copy(shapes, tmp_path / "renamed", rename)
    assert main(eval_argv(renamed, shapes["val_images"])) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "do not match the categories" in line and "'circle' vs 1 'disk'" in line

    def three_classes(data):
        data["categories"] = data["categories"][:3]
        data["annotations"] = [a for a in data["annotations"] if a["category_id"] <= 3]
    fewer = edited_copy(shapes, tmp_path / "fewer", three_classes)
    assert main(eval_argv(fewer, shapes["val_images"])) == 1
    assert "predicts 6 classes but the dataset has 3 categories" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("kind", ["no annotations", "crowd only"])
def test_eval_without_scorable_ground_truth_is_an_error_not_minus_one(shapes, tmp_path, capsys, kind):
    def strip(data):
        if kind == "no annotations":
            data["annotations"] = []
        else:
            for annotation in data["annotations"]:
                annotation["iscrowd"] = 1
    path = edited_copy(shapes, tmp_path, strip)
    assert main(eval_argv(path, shapes["val_images"], "--output", str(tmp_path / "m.json"))) == 1
    assert "hold no ground-truth object" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "m.json").exists()


def test_float_images_in_0_1_are_read_as_such_and_others_refused():
    torch.manual_seed(0)
    model = ye.Yolact("yolact_tiny").eval()
    image = (np.random.RandomState(3).rand(90, 120, 3) * 255).astype(np.uint8)
    reference = model.predict(image, conf_threshold=0.0, top_k=20)
    for as_float in (image.astype(np.float32) / 255, torch.from_numpy(image).permute(2, 0, 1).double() / 255):
        found = model.predict(as_float, conf_threshold=0.0, top_k=20)
        assert torch.equal(found.labels, reference.labels)
        assert torch.allclose(found.scores, reference.scores, atol=1e-4)
    for bad, message in ((image.astype(np.float32), r"values in \[0, 1\], got min 0, max 2\d\d"),
                         (np.full((8, 8, 3), np.nan, np.float32), "values in"),
                         (image.astype(np.uint16), "uint8 .* or float in"),
                         (image.astype(bool), "uint8 .* or float in")):
        with pytest.raises(ValueError, match=message):
            model.predict(bad)


NONSENSE_ARGUMENTS = [
    (["train", "--batch-size", "0"], "--batch-size: must be a whole number >= 1, got '0'"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every: must be a whole number >= 1"),
    (["train", "--max-size", "0"], "--max-size: must be a whole number >= 32"),
    (["train", "--lr", "nan"], "--lr: must be a number > 0"),
    (["train", "--keep", "-1"], "--keep: must be a whole number >= 1"),
    (["predict", "--top-k", "-1"], "--top-k: must be a whole number >= 1, got '-1'"),
    (["predict", "--score-threshold", "1.5"], "--score-threshold: must be a number in [0, 1]"),
    (["predict", "--nms", "bogus"], "--nms: invalid choice: 'bogus'"),
    (["eval", "--weights", "w.pth", "--batch-size", "0"], "--batch-size: must be a whole number >= 1"),
    (["video", "clip.mp4", "--max-frames", "0"], "--max-frames: must be a whole number >= 1"),
    (["data", "shapes", "--num-train", "0"], "--num-train: must be a whole number >= 1"),
    (["data", "show", "a.json", "imgs", "--count", "zero"], "--count: must be a whole number >= 1"),
]


@pytest.mark.parametrize(("argv", "message"), NONSENSE_ARGUMENTS, ids=[" ".join(a) for a, _ in NONSENSE_ARGUMENTS])
def test_nonsense_arguments_are_refused_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []                  # nothing made, nothing downloaded


def tiny_raw(model):
    return model(model.preprocess(np.zeros((40, 50, 3), np.uint8)))


@pytest.mark.parametrize(("changes", "message"), [
    ({"max_size": 0}, "max_size must be an integer >= 32, got 0"),
    ({"num_protos": 0}, "num_protos must be an integer >= 1"),
    ({"nms_iou_thresh": 1.5}, r"nms_iou_thresh must lie in \[0, 1\]"),
    ({"max_detections": 0}, "max_detections must be an integer >= 1"),
    ({"lr": 0.0}, "lr must be > 0"),
])
def test_configs_refuse_nonsense_values(changes, message):
    with pytest.raises(ValueError, match=message):
        ye.get_config("yolact_tiny").replace(**changes)


@pytest.mark.parametrize(("kwargs", "message"), [
    # no prior passes conf_threshold=1: an unknown NMS would go unnoticed if it were checked only when used
    ({"nms": "bogus", "conf_threshold": 1.0}, "nms must be one of fast, cross_class, standard"),
    ({"top_k": -1}, "top_k must be a whole number >= 1"),
    ({"top_k": 0}, "top_k must be a whole number >= 1"),
    ({"score_threshold": -0.1}, r"score_threshold must lie in \[0, 1\]"),
    ({"iou_threshold": 2.0}, r"iou_threshold must lie in \[0, 1\]"),
])
def test_detect_refuses_nonsense_even_without_candidates(kwargs, message):
    torch.manual_seed(0)
    model = ye.Yolact("yolact_tiny").eval()
    with torch.no_grad():
        raw = tiny_raw(model)
    with pytest.raises(ValueError, match=message):
        model.detect(raw, [(40, 50)], **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ({"checkpoint_every": 0}, "checkpoint_every must be a whole number >= 1"),
    ({"keep_checkpoints": 0}, "keep_checkpoints must be a whole number >= 1"),
    ({"max_iter": -5}, "max_iter must be a whole number >= 1"),
    ({"lr": -1.0}, "lr must be a finite number > 0"),
    ({"log_every": 0}, "log_every must be a whole number >= 1"),
    ({"val_every": 0}, "val_every must be a whole number >= 1"),
])
def test_trainer_refuses_nonsense_before_writing_anything(shapes, tmp_path, kwargs, message):
    train_set = CocoDataset(shapes["train_annotations"], shapes["train_images"], max_size=64, verbose=False)
    cfg = ye.get_config("yolact_tiny").replace(max_size=64, num_classes=train_set.num_classes,
                                               class_names=train_set.class_names)
    with pytest.raises(ValueError, match=message):
        Trainer(ye.Yolact(cfg), train_set, out_dir=tmp_path / "run", device="cpu", **kwargs)
    assert not (tmp_path / "run").exists()


# -- 3. validation catches what would crash later --------------------------------------------------
def real_rle_counts(shapes) -> str:
    data = json.loads(Path(shapes["val_annotations"]).read_text())
    return data["annotations"][0]["segmentation"]["counts"]


BROKEN_COUNTS = {
    "garbage": "garbage!!",
    "empty": "",
    "one run": "0",
    "cut short": None,                # the first half of a real string: it ends inside a number
    "negative run": [-5, 5],
    "runs do not cover": [3, 4],
}


def test_undecodable_rles_are_skipped_at_build_and_training_goes_on(shapes, tmp_path, capsys):
    broken_ids, areas = {}, {}

    def break_some(data):
        counts = real_rle_counts(shapes)
        for (name, value), annotation in zip(BROKEN_COUNTS.items(), data["annotations"]):
            if value is None:
                cut = len(counts) // 2
                while cut and ord(counts[cut - 1]) - 48 < 32:     # end on a continuation character
                    cut -= 1
                value = counts[:cut]
            annotation["segmentation"]["counts"] = value
            broken_ids[annotation["id"]] = name
        unmeasured = data["annotations"][len(BROKEN_COUNTS)]       # and one without an area
        areas[unmeasured["id"]] = unmeasured.pop("area")

    path = edited_copy(shapes, tmp_path, break_some)
    dataset = CocoDataset(path, shapes["val_images"], max_size=64, augment=True, verbose=True)
    printed = capsys.readouterr().out
    skipped = {i for reason, ids in dataset.report.skipped_annotations.items() if "invalid RLE" in reason
               for i in ids}
    assert skipped == set(broken_ids)
    assert str(path) in printed and "invalid RLE" in printed and "counts" in printed
    assert "no valid 'area': taken from the mask" in printed
    cfg = ye.get_config("yolact_tiny").replace(max_size=64, num_classes=dataset.num_classes,
                                               class_names=dataset.class_names)
    torch.manual_seed(0)
    trainer = Trainer(ye.Yolact(cfg), dataset, out_dir=tmp_path / "run", batch_size=2, max_iter=6,
                      device="cpu", progress=False)
    assert trainer.run()["iteration"] == 6                    # every image and annotation went through
    val = CocoDataset(path, shapes["val_images"], max_size=64, verbose=False)
    assert {i: val.coco.anns[i]["area"] for i in areas} == areas     # the mask's pixel count, as written
    metrics = evaluate(trainer.model, val, progress=False, verbose=False)   # COCOeval never sees them
    assert 0.0 <= metrics["segm"]["AP"] <= 1.0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("id", "first", "image id 'first' is not an integer"),
    ("width", "wide", "image id 1 has width 'wide'"),
    ("height", 0, "image id 1 has height 0"),
    ("file_name", "", "image id 1 has file_name ''"),
    ("file_name", 7, "image id 1 has file_name 7"),
])
def test_image_fields_that_would_crash_later_are_fatal_and_named(shapes, tmp_path, field, value, message):
    def spoil(data):
        data["images"][0][field] = value
    path = edited_copy(shapes, tmp_path, spoil)
    with pytest.raises(DatasetError, match=message) as info:
        CocoDataset(path, shapes["val_images"], verbose=False)
    assert str(path) in str(info.value)


def test_a_category_id_that_is_not_an_integer_is_fatal_and_named(shapes, tmp_path):
    def spoil(data):
        data["categories"][0]["id"] = "circle"
        for annotation in data["annotations"]:
            if annotation["category_id"] == 1:
                annotation["category_id"] = "circle"
    path = edited_copy(shapes, tmp_path, spoil)
    with pytest.raises(DatasetError, match=r"category id 'circle' is not an integer"):
        CocoDataset(path, shapes["val_images"], verbose=False)


# -- 4. one bad item does not sink the batch --------------------------------------------------------
def test_predict_skips_an_unreadable_image_and_finishes_the_others(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "c.png"):
        cv2.imwrite(str(folder / name), np.full((40, 60, 3), 99, np.uint8))
    (folder / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["predict", str(folder), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"skipped {folder / 'b.jpg'}: cannot decode image" in err
    summary = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(summary) == 1 and "1 of 3 images could not be read (the other 2 are done)" in summary[0]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a.png", "c.png"]
    records = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert {r["output"] for r in records} <= {"a.png", "c.png"}



@pytest.mark.parametrize("suffix", [".jpg"])      # a PNG cut short does not decode at all (the test above)
def test_predict_counts_an_image_cut_short_as_unreadable(tmp_path, capsys, suffix):
    from yolact_edu.data.images import sample_image

    folder = tmp_path / "photos"
    folder.mkdir()
    ok, encoded = cv2.imencode(suffix, sample_image()[:, :, ::-1])
    (folder / f"cut{suffix}").write_bytes(encoded.tobytes()[: len(encoded) // 2])     # a download cut short
    cv2.imwrite(str(folder / "whole.jpg"), np.full((40, 60, 3), 99, np.uint8))
    assert main(["predict", str(folder), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"skipped {folder / f'cut{suffix}'}: image {folder / f'cut{suffix}'} is incomplete" in err
    assert "cut short" in err and "1 of 2 images could not be read" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["whole.png"]

# -- 5. every error is one clear line ----------------------------------------------------------------
def test_missing_files_are_named_as_missing(shapes, tmp_path, monkeypatch, capsys):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: missing.pth"):
        ye.load_official("missing.pth")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--weights", "missing.pth"]) == 1          # the default data would be made here
    assert one_error_line(capsys.readouterr().err) == "error: checkpoint not found: missing.pth"
    assert list(tmp_path.iterdir()) == []                         # no 700-image dataset first
    for argv, message in ((["predict", "nope.jpg"], "no such file or folder: nope.jpg"),
                          (["data", "show", "nope.json", "imgs"], "annotation file not found: nope.json"),
                          (["video", "nope.mp4"], "video not found: nope.mp4")):
        assert main(argv) == 1
        assert message in one_error_line(capsys.readouterr().err)


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    broken = tmp_path / "yolact_base_54_800000.pth"
    broken.write_bytes(Path(WEIGHTS).read_bytes()[:5000])        # an interrupted download
    assert main(["predict", "--weights", str(broken), "--output", str(tmp_path / "out")]) == 1
    assert "is not a readable PyTorch checkpoint" in one_error_line(capsys.readouterr().err)


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    from yolact_edu.cli import predict as cli_predict

    def broken(args):
        raise TypeError("something nobody foresaw")
    monkeypatch.setattr(cli_predict, "run", broken)
    assert main(["predict"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "something nobody foresaw" in line and "--debug" in line
    with pytest.raises(TypeError, match="nobody foresaw"):
        main(["predict", "--debug"])


def run_cli(args, *, cwd, preexec_fn=None, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "yolact_edu.cli", *args], cwd=cwd,
                          capture_output=True, text=True, preexec_fn=preexec_fn, timeout=300)


def without_root_powers() -> list[str]:
    """A command prefix that makes root obey file permissions (root ignores a read-only folder)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "tests run as root need util-linux's setpriv to drop CAP_DAC_OVERRIDE"
    caps = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_a_read_only_output_folder_is_one_line(tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((40, 60, 3), 99, np.uint8))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_cli(["predict", str(image), "--output", str(locked / "out")], cwd=tmp_path,
                         prefix=without_root_powers())
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert str(locked / "out") in line and "Permission denied" in line
    assert list(locked.iterdir()) == []


@contextlib.contextmanager
def small_disk(folder: Path):
    """A folder on a 256 KiB tmpfs when this process may mount one (ENOSPC, a real full disk);
    else a file-size limit of 8 KiB for the child (EFBIG: every image is larger), the same failure
    seen by write(). YOLACT_EDU_TEST_NO_MOUNT=1 takes the second way where the first would work."""
    folder.mkdir()
    mounted = os.geteuid() == 0 and not os.environ.get("YOLACT_EDU_TEST_NO_MOUNT") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True).returncode == 0
    if mounted:
        try:
            yield None
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 1024, 8 * 1024))
    yield limit


def test_a_full_disk_is_one_line_and_leaves_no_half_files(tmp_path):
    disk = tmp_path / "disk"
    with small_disk(disk) as limit:
        result = run_cli(["data", "shapes", "--root", str(disk / "shapes"), "--num-train", "40", "--num-val", "5"],
                         cwd=tmp_path, preexec_fn=limit)
        left = [p.name for p in (disk / "shapes").rglob("*.part*")]
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert ("No space left on device" in line or "File too large" in line) and "full" in line
    assert str(disk / "shapes") in line                         # names the file it could not write
    assert left == []


# -- 7. memory stays bounded on real photos (figures: benchmarks/memory.py); the same results ----------
def test_the_memory_saving_paths_give_the_same_results(monkeypatch):
    from yolact_edu.ops import assemble
    from yolact_edu.ops.preprocess import LARGE_IMAGE_PIXELS, image_to_tensor, resize_image

    soft = torch.rand(7, 20, 20)
    whole = assemble.upsample_masks(soft, 300, 410) > 0.5
    monkeypatch.setattr(assemble, "UPSAMPLE_CHUNK_BYTES", 3 * 4 * 300 * 410)     # three masks per step
    assert torch.equal(assemble.masks_to_image(soft, 300, 410), whole)

    side = int(LARGE_IMAGE_PIXELS ** 0.5) + 1                  # resized a channel at a time
    photo = (np.random.RandomState(0).rand(side, side + 7, 3) * 255).astype(np.uint8)
    at_once = torch.nn.functional.interpolate(image_to_tensor(photo)[None], (96, 96), mode="bilinear",
                                              align_corners=False)
    # The same numbers to the last bits, not bit for bit: torch picks its bilinear kernel by channel
    # count and thread count (with one thread, 3 channels take a vectorised kernel whose results
    # differ from the 1-channel one by up to 2 ulp; with two threads they are equal).
    assert float((resize_image(photo, 96) - at_once).abs().max()) <= 1e-4     # 255's ulp is 1.5e-5

    torch.manual_seed(0)
    model = ye.Yolact("yolact_tiny").eval()
    found = model.predict(photo[:300, :400], score_threshold=0.0, conf_threshold=0.0, top_k=30)
    threshold = float(found.scores[9])
    kept = found.filter(threshold, 5)                          # a prefix of a sorted result: a view
    assert len(kept) == 5 and kept.masks.data_ptr() == found.masks.data_ptr()
    assert torch.equal(kept.scores, found.scores[:5])
    shuffled = found[torch.randperm(len(found))]               # unsorted: still the right ones
    picked = shuffled.filter(threshold)
    assert sorted(picked.scores.tolist()) == sorted(found.scores[found.scores >= threshold].tolist())
