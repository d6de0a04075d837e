"""The yolact-edu command line (the main job of the README runs `predict`)."""
import json

import cv2
import numpy as np

from yolact_edu.cli.main import main


def test_predict_on_the_bundled_sample_writes_png_and_json(tmp_path, capsys):
    assert main(["predict", "--output", str(tmp_path)]) == 0
    png = cv2.imread(str(tmp_path / "sample.png"))
    assert png is not None and png.shape == (480, 640, 3)
    records = json.loads((tmp_path / "detections.json").read_text())
    assert 0 < len(records) <= 15
    assert {"file_name", "label", "category", "score", "bbox", "segmentation"} <= set(records[0])
    assert records[0]["segmentation"]["size"] == [480, 640]
    assert "randomly initialised" in capsys.readouterr().out


def test_predict_on_a_folder_and_bad_files(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((60, 90, 3), 128, np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--output", str(out), "--top-k", "3"]) == 0
    assert cv2.imread(str(out / "a.png")).shape == (60, 90, 3)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert main(["predict", str(broken), "--output", str(out)]) == 1
    assert f"cannot decode image {broken}" in capsys.readouterr().err


def test_configs_lists_every_config(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert "yolact_plus_base" in out and "YOLACT++" in out and "yolact_tiny" in out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "light augmentation" in lines["yolact_tiny"] and "original augmentation" in lines["yolact_base"]


def test_predict_fast_draws_what_eager_draws(tmp_path, capsys):
    from yolact_edu.lessons.pretrained import SHIPPED_WEIGHTS

    weights = str(SHIPPED_WEIGHTS["yolact_tiny"])
    assert main(["predict", "--weights", weights, "--output", str(tmp_path / "eager")]) == 0
    # the fast path's own precision: bf16 where the CPU has it, else fp32 (tests/test_precision.py)
    assert main(["predict", "--weights", weights, "--fast", "--output", str(tmp_path / "fast")]) == 0
    assert "fast path: " in capsys.readouterr().out
    eager = json.loads((tmp_path / "eager" / "detections.json").read_text())
    fast = json.loads((tmp_path / "fast" / "detections.json").read_text())
    confident = [r["category"] for r in eager if r["score"] > 0.5]
    assert confident and confident == [r["category"] for r in fast if r["score"] > 0.5]


def test_nms_choices_are_every_familys_kinds():
    from yolact_edu.build import FAMILIES
    from yolact_edu.cli.common import NMS_CHOICES
    kinds = {kind for _, model_class in FAMILIES.values() for kind in model_class.nms_kinds}
    assert set(NMS_CHOICES) == kinds and len(NMS_CHOICES) == len(kinds)
