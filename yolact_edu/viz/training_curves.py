"""A training run's pictures: the loss curves and the validation AP history, as PNG bytes.

Drawn on figures of their own (no pyplot state), so a training thread can draw them while a
notebook draws something else. ``yolact-edu train`` and ``yolact-edu demo`` write them to the run
folder through :func:`yolact_edu.training.log.write_run_figures`.
"""
from __future__ import annotations

from collections.abc import Sequence

from .draw import plot_loss_curves
from .figures import figure_png

# (metric in validation.json, legend label, line style, colour): AP solid, AP50 dashed; box and mask apart
AP_CURVES = (("box_AP", "box AP", "-", "tab:blue"), ("box_AP50", "box AP50", "--", "tab:blue"),
             ("mask_AP", "mask AP", "-", "tab:orange"), ("mask_AP50", "mask AP50", "--", "tab:orange"))


def new_axes(width: float = 7.0, height: float = 4.0):
    """Axes on a new figure with the Agg canvas attached, independent of pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def plot_ap_history(validations: Sequence[dict], ax=None):
    """Box and mask AP (solid) and AP50 (dashed) against iteration, one point per validation.

    validations: dicts with "iteration" and any of "box_AP", "box_AP50", "mask_AP", "mask_AP50"
    in [0, 1] (``validation.json``, ``Trainer.validations``). Returns the Axes."""
    from matplotlib.ticker import MaxNLocator

    ax = ax if ax is not None else new_axes()
    iterations = [v["iteration"] for v in validations]
    for key, label, style, color in AP_CURVES:
        if validations and all(key in v for v in validations):
            ax.plot(iterations, [v[key] for v in validations], style, color=color, label=label,
                    marker="o", markersize=4)       # markers: one validation is one point
    if len(set(iterations)) == 1:           # a range around the one point, with whole-iteration ticks
        ax.set_xlim(iterations[0] - 1, iterations[0] + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("AP on the validation images")
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def _legend_outside(ax) -> None:
    """The legend right of the axes: inside, it would hide curves wherever they happen to run."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def loss_curve_png(log: dict, parts: Sequence[str], title: str) -> bytes:
    """:func:`~yolact_edu.viz.draw.plot_loss_curves` of a run's log (``read_log``'s dict, with
    the loss columns ``parts`` and "total") as a PNG."""
    ax = new_axes(8.0, 4.0)
    plot_loss_curves(log, ax=ax, parts=parts)
    _legend_outside(ax)
    ax.set_title(title)
    ax.figure.tight_layout()
    return figure_png(ax.figure, dpi=100)


def ap_history_png(validations: Sequence[dict], title: str) -> bytes:
    """:func:`plot_ap_history` as a PNG."""
    ax = plot_ap_history(validations, ax=new_axes(8.0, 4.0))
    _legend_outside(ax)
    ax.set_title(title)
    ax.figure.tight_layout()
    return figure_png(ax.figure, dpi=100)


__all__ = ["plot_ap_history", "loss_curve_png", "ap_history_png", "new_axes", "AP_CURVES"]
