"""The train / eval / demo commands, run in-process as a user would type them."""
import json
import warnings

import pytest

from yolact_edu.cli.main import build_parser, main
from yolact_edu.data import make_shapes
from yolact_edu.training.checkpoint import list_checkpoints, read_checkpoint


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=3, seed=11,
                       min_size=128, max_size=160)


def test_every_new_command_has_help_with_examples():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("train", "eval", "demo", "video"):
        text = sub.choices[name].format_help()
        assert "examples:" in text and f"yolact-edu {name}" in text.replace("-m yolact_edu.cli ", "yolact-edu ")


def test_train_resume_and_eval_from_the_command_line(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--train-annotations", str(shapes["train_annotations"]),
              "--train-images", str(shapes["train_images"]), "--val-annotations", str(shapes["val_annotations"]),
              "--val-images", str(shapes["val_images"]), "--max-size", "128", "--batch-size", "2",
              "--max-iter", "4", "--log-every", "1", "--output", str(out), "--device", "cpu", "--no-freeze-bn"]
    assert main(common + ["--val-every", "2"]) == 0
    text = capsys.readouterr().out
    assert "6 classes from" in text and "finished at iteration 4/4" in text
    assert "yolact_tiny: light augmentation" in text            # the config's own, without --augment
    assert read_checkpoint(list_checkpoints(out / "checkpoints")[-1])["config"]["augmentation"] == "light"
    validations = json.loads((out / "validation.json").read_text())
    assert [v["iteration"] for v in validations] == [2, 4]
    assert all(0.0 <= v["mask_AP"] <= 1.0 for v in validations)

    longer = [a if a != "4" else "6" for a in common]               # --max-iter 6, same everything else
    assert main(longer + ["--resume", "auto"]) == 0
    assert "resumed from" in capsys.readouterr().out

    original = tmp_path / "original"                                 # --augment overrides and is recorded
    assert main([a if a != str(out) else str(original) for a in common] + ["--augment", "original"]) == 0
    assert "yolact_tiny: original augmentation" in capsys.readouterr().out
    assert read_checkpoint(list_checkpoints(original / "checkpoints")[-1])["config"]["augmentation"] == "original"
    newest = list_checkpoints(out / "checkpoints")[-1]
    assert read_checkpoint(newest)["iteration"] == 6

    metrics_file = tmp_path / "metrics.json"
    assert main(["eval", "--weights", str(newest), "--annotations", str(shapes["val_annotations"]),
                 "--images", str(shapes["val_images"]), "--device", "cpu", "--output", str(metrics_file)]) == 0
    text = capsys.readouterr().out
    assert "box AP" in text and "Average Precision" in text                # the 12-number tables
    metrics = json.loads(metrics_file.read_text())
    assert set(metrics) >= {"bbox", "segm"} and metrics["num_images"] == 3


def test_weights_start_a_run_begun_with_resume_auto_and_a_resumed_run_keeps_its_own(shapes, tmp_path, capsys):
    """The long-run pattern: the same command, with --weights and --resume auto, starts the run (from
    the weights: nothing to resume yet) and later resumes it (from its checkpoint, not the weights)."""
    import torch

    from yolact_edu.lessons.pretrained import TINY_SHAPES_WEIGHTS

    out = tmp_path / "from_weights"
    command = ["train", "--train-annotations", str(shapes["train_annotations"]),
               "--train-images", str(shapes["train_images"]), "--max-size", "128", "--batch-size", "2",
               "--max-iter", "1", "--lr", "1e-12", "--output", str(out), "--device", "cpu", "--freeze-bn",
               "--weights", str(TINY_SHAPES_WEIGHTS), "--resume", "auto"]
    assert main(command) == 0
    assert f"loaded 156 tensors from {TINY_SHAPES_WEIGHTS}" in capsys.readouterr().out
    started = read_checkpoint(list_checkpoints(out / "checkpoints")[-1])["model"]
    shipped = read_checkpoint(TINY_SHAPES_WEIGHTS)["model"]
    for name, value in shipped.items():          # lr 1e-12 and frozen BatchNorm: one step changes nothing
        assert torch.allclose(started[name].float(), value.float(), atol=1e-6), name
    assert main([a if a != "1" else "2" for a in command]) == 0                       # resumed, to iteration 2
    printed = capsys.readouterr().out
    assert "resumed from" in printed and "loaded 156 tensors" not in printed


def test_train_refuses_half_given_data(tmp_path, capsys):
    assert main(["train", "--train-annotations", "x.json", "--output", str(tmp_path)]) == 1
    assert "--train-images" in capsys.readouterr().err


def test_eval_names_a_missing_checkpoint(shapes, tmp_path, capsys):
    assert main(["eval", "--weights", str(tmp_path / "nope.pth"), "--annotations",
                 str(shapes["val_annotations"]), "--images", str(shapes["val_images"])]) == 1
    assert "nope.pth" in capsys.readouterr().err


def test_quick_demo_writes_every_output(tmp_path, capsys):
    """What CI runs: `yolact-edu demo --quick`, shapes set made from scratch."""
    out = tmp_path / "demo"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*already holds a shapes set")   # a fresh set is made
        assert main(["demo", "--quick", "--output", str(out), "--data", str(tmp_path / "shapes"),
                     "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "box AP" in text and "mask AP" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] and metrics["iterations"] > 0 and metrics["val_images"] == 20
    for key in ("box_AP", "mask_AP", "box_AP50", "mask_AP50"):
        assert 0.0 <= metrics[key] <= 1.0
    assert read_checkpoint(out / "yolact_tiny_shapes.pth")["config"]["num_classes"] == 6
    assert len(list((out / "detections").glob("*.png"))) == 8
    for picture in ("prototypes.png", "loss_curve.png"):
        assert (out / picture).stat().st_size > 1000


def test_auto_device_follows_the_one_rule_of_the_library(monkeypatch):
    import torch

    from yolact_edu.cli.common import device
    from yolact_edu.training.distributed import default_device

    assert device("auto") == default_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)    # a torchrun process on GPU 1
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device("auto") == default_device() == torch.device("cuda", 1)
