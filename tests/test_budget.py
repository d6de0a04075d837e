"""Training to a wall-clock budget (``yolact-edu demo --minutes``): the plan's arithmetic, a probe
that leaves the model, the random state and the disk alone, the deadline guard, and a budgeted
demo that ``--max-iter`` repeats exactly."""
import json
import os

import pytest
import torch

from yolact_edu.cli.main import main
from yolact_edu.config import get_config
from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.model import Yolact
from yolact_edu.training.budget import Deadline, plan_iterations, seconds_per_iteration
from yolact_edu.training.checkpoint import read_checkpoint
from yolact_edu.training.trainer import Trainer


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=3, seed=23,
                       min_size=128, max_size=160)


@pytest.fixture(scope="module")
def train_set(shapes):
    return CocoDataset(shapes["train_annotations"], shapes["train_images"], max_size=96, augment="light",
                       verbose=False)


def small_model(train_set):
    cfg = get_config("yolact_tiny").replace(max_size=96, batch_size=4).with_classes(train_set.class_names)
    torch.manual_seed(0)
    return Yolact(cfg)


def test_the_plan_fits_the_iterations_in_what_is_left():
    plan = plan_iterations(budget=100.0, spent=10.0, reserved=20.0, seconds_per_iteration=0.5)
    assert plan.iterations == 140 and plan.training_seconds == 70.0 and plan.expected_total == 100.0
    assert plan_iterations(100.0, 10.0, 20.0, 0.3).iterations == 233          # floor, never over
    assert plan_iterations(30.0, 25.0, 20.0, 0.5, least=3).iterations == 3    # nothing left: the least
    with pytest.raises(ValueError, match="budget"):
        plan_iterations(0.0, 0.0, 0.0, 0.5)


def test_the_probe_leaves_the_model_the_random_state_and_the_disk_alone(train_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = small_model(train_set)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    seconds = seconds_per_iteration(model, train_set, device="cpu", steps=2, warmup=1)
    assert seconds > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and os.listdir(tmp_path) == []


def test_the_deadline_stops_the_run_at_a_step_boundary_with_a_checkpoint(train_set, tmp_path):
    trainer = Trainer(small_model(train_set), train_set, out_dir=tmp_path, max_iter=50, device="cpu",
                      log_every=1, progress=False)
    deadline = Deadline(trainer, seconds=0.0)
    trainer.callbacks.append(deadline)
    summary = trainer.run()
    assert deadline.reached and summary["stopped"] and summary["iteration"] == 1
    assert read_checkpoint(summary["checkpoint"])["iteration"] == 1


def test_a_budgeted_demo_says_its_plan_and_max_iter_repeats_it_exactly(shapes, tmp_path, capsys):
    common = ["--data", str(shapes["root"]), "--device", "cpu"]
    with pytest.warns(UserWarning, match="already holds a shapes set"):
        assert main(["demo", "--minutes", "0.1", "--output", str(tmp_path / "a"), *common]) == 0
    text = capsys.readouterr().out
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    plan = metrics["budget"]
    assert plan["budget"] == 6.0 and plan["iterations"] == metrics["iterations"] >= 1
    assert plan["seconds_per_iteration"] > 0 and plan["reserved"] > 0
    assert f"plan: {plan['iterations']} iterations of batch 8 at 256 px" in text and "CPU" in text
    assert f"yolact-edu demo --max-iter {metrics['iterations']}" in text

    with pytest.warns(UserWarning, match="already holds a shapes set"):
        assert main(["demo", "--max-iter", str(metrics["iterations"]), "--output", str(tmp_path / "b"),
                     *common]) == 0
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert again["budget"] is None and again["iterations"] == metrics["iterations"]
    first = read_checkpoint(tmp_path / "a" / "yolact_tiny_shapes.pth")["model"]
    second = read_checkpoint(tmp_path / "b" / "yolact_tiny_shapes.pth")["model"]
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_minutes_and_max_iter_are_one_choice(capsys):
    assert main(["demo", "--minutes", "2", "--max-iter", "5", "--output", "unused"]) == 1
    err = capsys.readouterr().err
    assert "a time budget (--minutes) and an iteration count (--max-iter, --quick) are one choice" in err


def test_the_readme_quotes_the_recorded_demo_runs():
    import re
    from pathlib import Path

    from yolact_edu.cli.demo import RECORDED_KEYS, demo_runs_table
    root = Path(__file__).resolve().parents[1]
    runs = sorted((root / "docs" / "demo_runs").glob("*.json"))
    assert runs, "no recorded demo run in docs/demo_runs"
    for path in runs:
        record = json.loads(path.read_text())
        assert set(record) <= set(RECORDED_KEYS) and "/" not in json.dumps(record["machine"]), path
    quoted = re.search(r"<!-- demo-runs -->\n(.*?)\n<!-- /demo-runs -->", (root / "README.md").read_text(), re.S)
    assert quoted.group(1) == demo_runs_table(root / "docs" / "demo_runs"), "run tools/update_readme.py"
