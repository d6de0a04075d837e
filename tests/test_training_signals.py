"""Training survives the ways jobs are really stopped (issue 11, part 6).

SIGTERM (``timeout``, Slurm, ``docker stop``) ends a real ``yolact-edu train`` process with a
checkpoint, like Ctrl+C, and ``--resume auto`` then gives bit-identical weights. A signal that
lands between the optimiser step and the iteration counter is honoured at the step boundary, so
the checkpoint still pairs the weights with the right iteration; a second Ctrl+C quits at once
without writing a checkpoint that could be inconsistent.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import yolact_edu as ye
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.training.checkpoint import list_checkpoints, read_checkpoint
from yolact_edu.training.trainer import Trainer


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=2, seed=23,
                       min_size=96, max_size=128)


@pytest.fixture(scope="module")
def train_set(shapes):
    return CocoDataset(shapes["train_annotations"], shapes["train_images"], max_size=64, augment=True,
                       verbose=False)


def new_model(seed=0):
    torch.manual_seed(seed)
    cfg = ye.get_config("yolact_tiny").replace(num_classes=len(SHAPE_CLASSES), class_names=SHAPE_CLASSES,
                                               max_size=64)
    return ye.Yolact(cfg)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def final_weights(folder) -> dict:
    return read_checkpoint(list_checkpoints(folder / "checkpoints")[-1])["model"]


# -- a real process stopped by SIGTERM -----------------------------------------------------------------
def train_argv(shapes, out, max_iter):
    return [sys.executable, "-m", "yolact_edu.cli", "train", "--train-annotations", str(shapes["train_annotations"]),
            "--train-images", str(shapes["train_images"]), "--max-size", "64", "--batch-size", "2",
            "--max-iter", str(max_iter), "--checkpoint-every", "1000", "--log-every", "1", "--output", str(out),
            "--device", "cpu", "--seed", "3"]


def test_sigterm_ends_training_with_a_checkpoint_and_resume_is_exact(shapes, tmp_path):
    max_iter = 60
    broken = tmp_path / "broken"
    process = subprocess.Popen(train_argv(shapes, broken, max_iter), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    log = broken / "log.csv"
    deadline = time.monotonic() + 240
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):     # header + 2 iterations
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output                      # 128 + SIGTERM, as the shell reports it
    assert "SIGTERM" in output and "Traceback" not in output
    stopped_at = read_checkpoint(list_checkpoints(broken / "checkpoints")[-1])["iteration"]
    assert 2 <= stopped_at < max_iter, output

    resumed = subprocess.run(train_argv(shapes, broken, max_iter) + ["--resume", "auto"], capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stdout
    straight = tmp_path / "straight"
    unbroken = subprocess.run(train_argv(shapes, straight, max_iter), capture_output=True, text=True, timeout=300)
    assert unbroken.returncode == 0, unbroken.stderr
    assert same_weights(final_weights(broken), final_weights(straight))


# -- a signal in the worst place: after the optimiser step, before the iteration counter -------------
def signal_after_step(trainer: Trainer, at_iteration: int, count: int = 1):
    """Make the optimiser send this process ``count`` SIGINTs right after its step at ``at_iteration``
    (Python runs the handler there, before ``Trainer.step`` returns and the counter moves)."""
    step = trainer.optimizer.step

    def step_then_signal(*args, **kwargs):
        result = step(*args, **kwargs)
        if trainer.iteration == at_iteration:
            for _ in range(count):
                os.kill(os.getpid(), signal.SIGINT)
        return result
    trainer.optimizer.step = step_then_signal


def test_an_interrupt_between_step_and_counter_still_resumes_exactly(train_set, tmp_path):
    kwargs = dict(batch_size=2, max_iter=8, seed=5, progress=False, log_every=1, checkpoint_every=100)
    straight = Trainer(new_model(), train_set, out_dir=tmp_path / "straight", **kwargs)
    straight.run()

    first = Trainer(new_model(), train_set, out_dir=tmp_path / "broken", **kwargs)
    signal_after_step(first, at_iteration=3)
    summary = first.run()
    assert summary["interrupted"] and summary["signal"] == "SIGINT"
    assert summary["iteration"] == 4                              # the step that was hit counts
    assert read_checkpoint(summary["checkpoint"])["iteration"] == 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler     # handlers restored

    second = Trainer(new_model(seed=1), train_set, out_dir=tmp_path / "broken", resume="auto", **kwargs)
    assert second.iteration == 4
    second.run()
    assert same_weights(straight.model.state_dict(), second.model.state_dict())


def test_a_second_ctrl_c_quits_at_once_without_a_checkpoint(train_set, tmp_path, capsys):
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path, batch_size=2, max_iter=8, progress=False,
                      checkpoint_every=2)
    signal_after_step(trainer, at_iteration=3, count=2)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert "without a checkpoint" in capsys.readouterr().out
    assert [read_checkpoint(p)["iteration"] for p in list_checkpoints(tmp_path / "checkpoints")] == [2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
