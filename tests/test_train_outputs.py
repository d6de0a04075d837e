"""What `yolact-edu train` leaves in its run folder besides checkpoints: the loss curves and the AP
history as PNG, its resolved options and config as JSON; what --help says of its defaults; the
progress bar's img/s; the --tensorboard install line."""
import io
import json
import re
import sys

import pytest

from yolact_edu.build import config_from_dict, get_model_config
from yolact_edu.cli.main import build_parser, main
from yolact_edu.data import make_shapes
from yolact_edu.files.output_folder import OutputFolder
from yolact_edu.training import log as training_log
from yolact_edu.training.log import TrainingBar, loss_columns, read_log, write_run_figures

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=4, num_val=2, seed=5,
                       min_size=128, max_size=160)


def train_command(shapes, out, *extra):
    return ["train", "--train-annotations", str(shapes["train_annotations"]),
            "--train-images", str(shapes["train_images"]), "--val-annotations", str(shapes["val_annotations"]),
            "--val-images", str(shapes["val_images"]), "--max-size", "128", "--batch-size", "2",
            "--max-iter", "2", "--log-every", "1", "--output", str(out), "--device", "cpu", *extra]


def test_train_writes_figures_arguments_and_config(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_command(shapes, out, "--val-every", "1")) == 0
    capsys.readouterr()
    for picture in ("loss_curve.png", "ap_history.png"):
        assert (out / picture).read_bytes()[:8] == PNG and (out / picture).stat().st_size > 5000, picture
    args = json.loads((out / "args.json").read_text())
    # the defaults as resolved: the recipe's numbers, the data paths, the config's augmentation
    assert args["batch_size"] == 2 and args["max_iter"] == 2 and args["val_every"] == 1
    assert args["config"] == "yolact_tiny" and args["augment"] == "light" and args["device"] == "cpu"
    assert args["lr"] > 0 and args["freeze_bn"] is True                         # batch 2 < 6 images
    assert args["train_annotations"] == str(shapes["train_annotations"])
    cfg = config_from_dict(json.loads((out / "config.json").read_text()))
    assert cfg.name == "yolact_tiny" and cfg.max_size == 128 and cfg.num_classes == 6
    assert len(cfg.class_names) == 6


def test_a_users_file_named_like_an_output_stops_the_run_before_it_trains(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "args.json").write_text("mine")
    assert main(train_command(shapes, out)) == 1
    assert "args.json exists and was not written by yolact_edu" in capsys.readouterr().err
    assert (out / "args.json").read_text() == "mine" and not (out / "checkpoints").exists()


def test_run_figures_plot_every_loss_column_of_any_family(tmp_path):
    """The loss curve draws the log's own loss columns (Mask R-CNN's are not YOLACT's); no
    validation, no AP history; an empty log, no picture."""
    folder = OutputFolder(tmp_path)
    (tmp_path / "log.csv").write_text("iteration,epoch,lr,rpn_objectness,roi_mask,total,images_per_second,"
                                      "skipped_steps,seconds\n1,0,0.001,0.7,0.5,1.2,3.0,0,1.0\n"
                                      "2,0,0.001,0.6,0.4,1.0,3.0,0,2.0\n")
    assert loss_columns(read_log(tmp_path / "log.csv")) == ["rpn_objectness", "roi_mask"]
    written = write_run_figures(folder, "maskrcnn_tiny")
    assert [p.name for p in written] == ["loss_curve.png"]
    history = [{"iteration": 1, "box_AP": 0.1, "mask_AP": 0.2, "box_AP50": 0.3, "mask_AP50": 0.4}]
    assert [p.name for p in write_run_figures(folder, "one validation", history)] == ["loss_curve.png",
                                                                                      "ap_history.png"]
    (tmp_path / "log.csv").write_text("")
    assert write_run_figures(OutputFolder(tmp_path / "empty"), "x", log=tmp_path / "log.csv") == []


def test_help_states_the_defaults():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = " ".join(sub.choices["train"].format_help().split())
    tiny = get_model_config("yolact_tiny")
    assert "--val-every VAL_EVERY validation mAP every N iterations and at the end (default: only at the end)" in text
    assert f"(default: the config's, {tiny.batch_size} for every model)" in text
    assert f"{tiny.max_iter} for yolact_tiny at batch {tiny.batch_size}" in text
    # every option that takes a value says its default (data options: their group's title does)
    for action in sub.choices["train"]._actions:
        if action.option_strings and action.nargs != 0 and "annotations" not in action.dest \
                and "images" not in action.dest[-6:]:
            assert "(default: " in (action.help or ""), action.option_strings


def rates(shown: str) -> tuple[float, float]:
    """(seconds per iteration, images per second) read off a bar's text."""
    images = float(re.search(r"([\d.]+) img/s", shown).group(1))
    per_it = re.search(r"([\d.]+)s/it", shown)
    seconds = float(per_it.group(1)) if per_it else 1.0 / float(re.search(r"([\d.]+)it/s", shown).group(1))
    return seconds, images


def test_the_bars_images_per_second_agree_with_its_seconds_per_iteration():
    """img/s comes from the bar's own smoothed rate: after the steps slow down, both move together."""
    bar = TrainingBar(total=50, file=io.StringIO(), images_per_iteration=4, mininterval=0, smoothing=0.3)
    now = [0.0]
    bar._time = lambda: now[0]          # tqdm's clock, stepped by hand: 0.5 s, then 2 s per iteration
    bar.start_t = bar.last_print_t = 0.0
    seen = []
    for step in range(12):
        now[0] += 0.5 if step < 6 else 2.0
        bar.update(1)
        bar.set_postfix({"box": "0.100"})
        seconds, images = rates(str(bar))
        assert images == pytest.approx(4 / seconds, rel=0.02), str(bar)     # 2 decimals shown
        seen.append(seconds)
    assert seen[5] == pytest.approx(0.5, rel=0.02)
    assert 0.5 < seen[6] < 2.0 and seen[6] < seen[-1]          # smoothed: it moves towards 2 s, not at once
    bar.close()


def test_missing_tensorboard_is_one_line_with_the_install_command(shapes, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)      # as if not installed
    with pytest.raises(ImportError, match=re.escape('pip install "yolact_edu[tensorboard]"')):
        training_log.tensorboard_writer(tmp_path / "tb")
    assert main(train_command(shapes, tmp_path / "run", "--tensorboard")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "yolact_edu[tensorboard]"' in err
    assert "--tensorboard" in err and "tensorboard=True" not in err


def test_tensorboard_logs_when_installed(shapes, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    assert main(train_command(shapes, out, "--tensorboard")) == 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
