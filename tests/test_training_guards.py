"""A training run guards itself (issue 24, part 5): one run per output folder, a run that diverges
stops with an error instead of "finishing", and log.csv's clock is the run's elapsed seconds."""
import csv
import threading

import pytest
import torch

import yolact_edu as ye
from yolact_edu.cli.main import main
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.files.run_lock import LOCK_NAME, RunLock, RunLocked
from yolact_edu.training.log import read_log
from yolact_edu.training.trainer import DIVERGED_AFTER, Trainer, TrainingDiverged


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=2, seed=4, min_size=96, max_size=128)


@pytest.fixture(scope="module")
def train_set(shapes):
    return CocoDataset(shapes["train_annotations"], shapes["train_images"], max_size=96, verbose=False)


def new_model():
    torch.manual_seed(0)
    return ye.Yolact(ye.get_config("yolact_tiny").replace(num_classes=len(SHAPE_CLASSES), class_names=SHAPE_CLASSES,
                                                          max_size=96))


def test_a_second_run_into_the_same_folder_is_refused_at_once(train_set, shapes, tmp_path, capsys):
    inside, leave = threading.Event(), threading.Event()

    def hold(event, info):                   # the first run waits inside its loop, holding the folder
        if event == "log" and info["iteration"] == 1:
            inside.set()
            leave.wait(60)
    first = Trainer(new_model(), train_set, out_dir=tmp_path / "run", batch_size=2, max_iter=2, log_every=1,
                    progress=False, callbacks=[hold])
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        assert inside.wait(120)
        second = Trainer(new_model(), train_set, out_dir=tmp_path / "run", batch_size=2, max_iter=2,
                         progress=False)
        with pytest.raises(RunLocked, match=r"another run \(process \d+\) is writing to .*run"):
            second.run()
        assert second.iteration == 0                         # refused before its first step
        argv = ["train", "--train-annotations", str(shapes["train_annotations"]), "--train-images",
                str(shapes["train_images"]), "--output", str(tmp_path / "run"), "--max-size", "96",
                "--max-iter", "2", "--batch-size", "2"]
        capsys.readouterr()
        assert main(argv) == 1
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        assert len(lines) == 1 and "another run" in lines[0] and str(tmp_path / "run") in lines[0]
    finally:
        leave.set()
        thread.join(120)
    assert first.iteration == 2
    # the lock goes with its run: the folder is free again, and the lock file is the run's own
    RunLock(tmp_path / "run").acquire().release()
    assert LOCK_NAME in first.outputs.owned()


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    import subprocess
    import sys
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from yolact_edu.files.run_lock import "
                               f"RunLock; lock = RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"process {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()                          # kill -9: no clean-up code runs
        holder.wait()
    RunLock(tmp_path).acquire().release()      # not stale


def test_a_diverging_run_stops_with_an_error(train_set, shapes, tmp_path, capsys):
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path / "run", batch_size=2, max_iter=30, lr=1e8,
                      log_every=1, progress=False)
    with pytest.raises(TrainingDiverged, match=rf"diverged at iteration \d+: the last {DIVERGED_AFTER} steps had a "
                                               r"non-finite loss \(learning rate [\d.e+]+\); lower the learning rate"):
        trainer.run()
    assert trainer.iteration < 30
    argv = ["train", "--train-annotations", str(shapes["train_annotations"]), "--train-images",
            str(shapes["train_images"]), "--output", str(tmp_path / "cli"), "--max-size", "96", "--max-iter", "30",
            "--batch-size", "2", "--lr", "1e8"]
    capsys.readouterr()
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "diverged" in lines[0] and "--lr" in lines[0], captured.err
    assert "finished" not in captured.out


def test_the_log_records_elapsed_seconds_across_a_resume(train_set, tmp_path):
    def stop_at(n):
        def callback(event, info):
            if event == "log" and info["iteration"] == n:
                trainer.request_stop()
        return callback
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path / "run", batch_size=2, max_iter=4, log_every=1,
                      progress=False, callbacks=[stop_at(2)])
    trainer.run()
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path / "run", batch_size=2, max_iter=4, log_every=1,
                      progress=False, resume="auto")
    trainer.run()
    seconds = read_log(tmp_path / "run" / "log.csv")["seconds"]
    assert len(seconds) == 4 and seconds == sorted(seconds)          # one clock across the resume
    assert 0 < seconds[0] < 600 and seconds[-1] < 3600                # elapsed, not the epoch time (1.8e9)
    with open(tmp_path / "run" / "log.csv", newline="") as handle:
        raw = [row["seconds"] for row in csv.DictReader(handle)]
    assert all("e" not in value for value in raw)                     # written out, not as 1.79665e+09
    assert all(float(value) == round(float(value), 3) for value in raw)
