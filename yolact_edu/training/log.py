"""The training log: ``log.csv``, one row per logging window (iteration, losses, learning rate,
images/s), kept in step with the checkpoints when a run resumes."""
from __future__ import annotations

import csv
import io
import math
import os

from ..files.output_folder import OutputFolder

FULL_PRECISION = ("seconds",)


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


__all__ = ["TrainingLog", "read_log"]
