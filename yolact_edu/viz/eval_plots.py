"""Figures of an evaluation report: precision-recall curves and confusion matrices.

The numbers come from :mod:`yolact_edu.training.eval_report`; these functions only draw them, on a
matplotlib ``Figure`` made without pyplot (no global state, no GUI backend: safe in a script, a
thread or a notebook), and :func:`~yolact_edu.viz.figures.figure_png` turns one into PNG bytes for an output folder.

    >>> figure = plot_precision_recall({"bbox": curves_bbox, "segm": curves_segm})
    >>> outputs.write_bytes("precision_recall.png", figure_png(figure))
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["TASK_TITLES", "plot_precision_recall", "plot_confusion_matrix"]

TASK_TITLES = {"bbox": "boxes", "segm": "masks"}
_CURVE_STYLES = {"IoU 0.50": "-", "IoU 0.75": "--", "IoU 0.50:0.95": ":"}


def plot_precision_recall(curves_per_task: Mapping[str, Mapping[str, np.ndarray]], title: str | None = None) -> Figure:
    """One panel per task ("bbox", "segm") with precision against recall at each IoU of the curves.

    curves_per_task: ``{task: precision_recall_curves(evaluator)}``: "recall" [R] and one precision
        array [R] in [0, 1] per IoU label ("IoU 0.50", ...). The legend gives each curve's mean
        over recall, which is its AP (AP50, AP75, AP).
    """
    if not curves_per_task:
        raise ValueError("no curves to draw")
    figure = Figure(figsize=(5 * len(curves_per_task), 4.2))
    axes = figure.subplots(1, len(curves_per_task), squeeze=False)[0]
    for ax, (task, curves) in zip(axes, curves_per_task.items()):
        recall = np.asarray(curves["recall"])
        for label, precision in curves.items():
            if label == "recall":
                continue
            precision = np.asarray(precision)
            ax.plot(recall, precision, _CURVE_STYLES.get(label, "-"), linewidth=2,
                    label=f"{label} (AP {precision.mean():.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{TASK_TITLES.get(task, task)}: mean over classes")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_confusion_matrix(confusions: Mapping[str, Mapping], title: str | None = None) -> Figure:
    """One panel per task with :func:`~yolact_edu.training.eval_report.confusion_matrix`'s counts.

    confusions: ``{task: confusion_matrix(...)}`` ("classes" K+1 names, the last "background";
        "matrix" (K+1)x(K+1) counts, rows true, columns predicted). Cells are coloured by their share
        of the row (what became of each class's objects; the background row by its share of the false
        positives) and labelled with the count while the matrix is small enough to read.
    """
    if not confusions:
        raise ValueError("no confusion matrix to draw")
    size = len(next(iter(confusions.values()))["classes"])
    side = min(max(4.5, 0.45 * size + 2), 24)
    figure = Figure(figsize=(side * len(confusions), side * 0.9))
    axes = figure.subplots(1, len(confusions), squeeze=False)[0]
    for ax, (task, confusion) in zip(axes, confusions.items()):
        counts = np.asarray(confusion["matrix"], dtype=float)
        classes = list(confusion["classes"])
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        if len(classes) <= 20:
            for (row, col), count in np.ndenumerate(counts):
                if count:
                    ax.text(col, row, f"{int(count)}", ha="center", va="center", fontsize=8,
                            color="white" if shares[row, col] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{TASK_TITLES.get(task, task)}: IoU >= {confusion['iou_threshold']:g}, "
                     f"score >= {confusion['score_threshold']:g}")
        figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


