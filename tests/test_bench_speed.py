"""`yolact-edu bench speed`: the table, the JSON, the stages and the ratios of one run."""
import json

import cv2
import numpy as np
import pytest
import torch

import yolact_edu as ye
from yolact_edu.bench.speed import STAGE_NAMES, speed_ratios, speed_row, speed_table, staged_predict
from yolact_edu.cli import main


def test_speed_row_forces_the_detections_and_times_every_stage():
    torch.manual_seed(0)
    model = ye.build_model("yolact_tiny").eval()
    images = [np.full((120, 160, 3), 100, np.uint8)] * 2
    row = speed_row(model, images, detections=30, repeats=2, warmup=1)
    assert row["batch"] == 2 and row["detections"] == 30
    assert row["fps"] == pytest.approx(2 / (row["e2e_ms"] / 1e3))
    assert set(row["stages_ms"]) == set(STAGE_NAMES) and all(v > 0 for v in row["stages_ms"].values())
    # the network's parts happen inside the network's time
    parts = sum(row["stages_ms"][name] for name in ("backbone", "FPN", "protonet", "head"))
    assert parts <= row["network_ms"] * 1.05


def test_head_time_sums_over_the_fpn_levels():
    torch.manual_seed(0)
    model = ye.build_model("yolact_tiny").eval()
    calls = []
    handle = model.prediction_layers[0].register_forward_hook(lambda *_: calls.append(1))
    try:
        timings = staged_predict(model, [np.zeros((64, 64, 3), np.uint8)])
    finally:
        handle.remove()
    assert len(calls) == len(model.cfg.pred_scales) and timings["head"] > 0


def test_cli_writes_table_json_and_ratios(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["bench", "speed", "--configs", "yolact_tiny", "--batch", "1,2", "--image-size", "160x120",
                 "--detections", "20", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                 "--autocast", "fp32", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [(r["batch"], r["fast"]) for r in result["rows"]] == [(1, False), (2, False), (1, True), (2, True)]
    assert result["environment"]["torch"] == torch.__version__ and "CPU" in result["environment"]["machine"]
    assert {r["what"] for r in result["ratios"]} == {"fast / eager"}
    assert speed_table(result["rows"]) in printed
    assert "| yolact_tiny | cpu | 2 | fp32 | on |" in printed
    mine = tmp_path / "mine.json"
    mine.write_text("the user's own file")
    assert main(["bench", "speed", "--configs", "yolact_tiny", "--output", str(mine)]) == 1
    assert "--force" in capsys.readouterr().err and mine.read_text() == "the user's own file"


def test_ratios_pair_fast_with_eager_and_yolact_with_maskrcnn():
    rows = [{"config": "yolact_resnet50", "batch": 1, "fast": False, "e2e_ms": 400.0},
            {"config": "yolact_resnet50", "batch": 1, "fast": True, "e2e_ms": 100.0},
            {"config": "maskrcnn_resnet50_fpn", "batch": 1, "fast": False, "e2e_ms": 1000.0}]
    ratios = {r["what"]: r["ratio"] for r in speed_ratios(rows)}
    assert ratios == {"fast / eager": 0.25, "eager / maskrcnn_resnet50_fpn": 0.4,
                      "fast / maskrcnn_resnet50_fpn": 0.1}


def test_bad_options_are_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--configs", "yolact_huge"])
    assert "yolact_huge is not a YOLACT config" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--batch", "1,x"])
    assert "expected a comma-separated list of batch sizes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "compare", "--counts", ","])
    assert "expected a comma-separated list of instance counts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--image-size", "640by480"])
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err


def test_cli_times_a_trained_model_on_a_given_image(tmp_path, capsys):
    from yolact_edu.data.images import sample_image
    from yolact_edu.lessons.pretrained import SHIPPED_WEIGHTS

    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), sample_image()[:200, :300, ::-1])
    out = tmp_path / "speed.json"
    assert main(["bench", "speed", "--weights", str(SHIPPED_WEIGHTS["yolact_tiny"]), "--image", str(image),
                 "--detections", "10", "--repeats", "1", "--warmup", "0", "--fast", "on", "--no-stages",
                 "--device", "cpu", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["image_size"] == [200, 300] and result["settings"]["weights"].endswith(".pth")
    assert [(r["config"], r["fast"], r["stages_ms"]) for r in result["rows"]] == [("yolact_tiny", True, None)]
    assert main(["bench", "speed", "--weights", str(image), "--configs", "yolact_tiny", "--output", str(out)]) == 1
    assert "not both" in capsys.readouterr().err
