"""What a training run reports: ``log.csv``, one row per logging window (iteration, losses,
learning rate, images/s), kept in step with the checkpoints when a run resumes; the progress bar;
TensorBoard; and the run folder's pictures (``loss_curve.png``, ``ap_history.png``)."""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from ..files.output_folder import OutputFolder

# Log columns besides the loss parts (which are whatever the model's criterion returns).
BOOKKEEPING = ("iteration", "epoch", "lr", "images_per_second", "skipped_steps", "seconds")
FULL_PRECISION = ("seconds",)
LOSS_CURVE, AP_HISTORY = "loss_curve.png", "ap_history.png"
TENSORBOARD_INSTALL = 'pip install "yolact_edu[tensorboard]"'


class TrainingLog:
    """``log.csv`` in an :class:`~yolact_edu.files.output_folder.OutputFolder`: one row per logging window.
    On resume, rows after the resumed iteration (written by the interrupted run after its last
    checkpoint) are dropped so the log matches the weights."""

    def __init__(self, folder: OutputFolder, name: str, start_iteration: int):
        self.path = folder.root / name
        self.fields: list[str] | None = None
        kept: list[dict] = []
        if self.path.is_file() and start_iteration > 0 and folder.owns(name):
            with open(self.path, newline="") as fh:
                kept = [r for r in csv.DictReader(fh) if int(r["iteration"]) <= start_iteration]
            self.fields = list(kept[0]) if kept else None
        self._folder, self._name = folder, name
        self._rewrite(kept)

    def _rewrite(self, rows: list[dict]) -> None:
        text = io.StringIO()
        if self.fields:
            writer = csv.DictWriter(text, self.fields)
            writer.writeheader()
            writer.writerows(rows)
        self._folder.write_text(self._name, text.getvalue())

    def write(self, row: dict) -> None:
        # six significant digits are plenty for losses and rates; elapsed seconds keep every digit
        row = {k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) and k not in FULL_PRECISION else v)
               for k, v in row.items()}
        if self.fields is None:              # the first row of a new log names the columns
            self.fields = list(row)
            self._rewrite([])
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields, extrasaction="ignore").writerow(row)


def read_log(path: str | os.PathLike) -> dict[str, list[float]]:
    """``log.csv`` -> {column: values} (floats), e.g. to plot loss curves."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: [float(r[key]) for r in rows] for key in (rows[0] if rows else {})}


def loss_columns(log: dict) -> list[str]:
    """The loss parts among a log's columns (``read_log``'s dict), in the log's order, "total" aside."""
    return [key for key in log if key not in BOOKKEEPING and key != "total"]


def write_run_figures(folder: OutputFolder, title: str, validations: Sequence[dict] = (),
                      log: str | os.PathLike | None = None) -> list[Path]:
    """Draw ``loss_curve.png`` from ``log`` (default: the folder's ``log.csv``) and, when there are
    ``validations`` (``Trainer.validations``), ``ap_history.png``, into ``folder``; returns the
    files written (none for a log without rows)."""
    from ..viz.training_curves import ap_history_png, loss_curve_png

    log_path = Path(log) if log is not None else folder.root / "log.csv"
    rows = read_log(log_path) if log_path.is_file() else {}
    written = []
    if rows:
        written.append(folder.write_bytes(LOSS_CURVE, loss_curve_png(rows, loss_columns(rows), title)))
    if validations:
        written.append(folder.write_bytes(AP_HISTORY, ap_history_png(validations, title)))
    return written


class TrainingBar(tqdm):
    """tqdm's bar with images/s beside its s/it (or it/s): both come from tqdm's one smoothed rate
    (an exponential moving average of the iteration times), so they always agree:
    img/s = it/s x ``images_per_iteration`` (the batch over all processes)."""

    def __init__(self, *args, images_per_iteration: int, **kwargs):
        self.images_per_iteration = images_per_iteration        # before tqdm's __init__ first draws
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self):
        values = super().format_dict
        rate = values.get("rate")
        if rate is None and values.get("elapsed"):         # tqdm's own fallback: the plain average
            rate = (values["n"] - (values.get("initial") or 0)) / values["elapsed"]
        if rate:
            shown = f"{rate * self.images_per_iteration:.1f} img/s"
            values["postfix"] = f"{shown}, {values['postfix']}" if values.get("postfix") else shown
        return values


def tensorboard_writer(folder: str | os.PathLike):
    """A TensorBoard ``SummaryWriter`` logging to ``folder``; an ImportError that says what to
    install when the optional package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(f"TensorBoard logging (tensorboard=True) needs the tensorboard package: "
                          f"{TENSORBOARD_INSTALL}") from exc
    return SummaryWriter(str(folder))


__all__ = ["TrainingLog", "read_log", "loss_columns", "write_run_figures", "TrainingBar", "tensorboard_writer",
           "BOOKKEEPING", "LOSS_CURVE", "AP_HISTORY", "TENSORBOARD_INSTALL"]
