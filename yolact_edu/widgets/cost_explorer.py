"""The cost explorer (notebook 01): a slider for the number of instances N over measured
latency curves of two or more models, showing what each pays at that N and how much of it
is the extra for instances beyond the first.

    >>> curves = latency_curve({"YOLACT tiny": yolact, "Mask R-CNN tiny": maskrcnn}, image)
    >>> CostExplorer(curves, machine_name(device))        # display this

The widget measures nothing itself: the curves come from
:func:`~yolact_edu.lessons.two_ways.comparison.latency_curve` (medians after warm-up), so moving
the slider is instant and shows the numbers that were measured.
"""
from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets

from ..viz.palette import model_color
from .render import StaticSnapshot, new_figure, show_in_output


class CostExplorer(StaticSnapshot, widgets.VBox):
    """A selection slider over the measured instance counts and a two-panel figure: the latency
    curves with the chosen N marked, and for each model a bar split into its time at the
    smallest N and the extra at the chosen one (grey, then the model's colour,
    :func:`~yolact_edu.viz.palette.model_color`).

    curves: {model name: {"counts": [N...], "median_ms": [ms...]}} (``latency_curve``'s result);
    machine: where they were measured (the figure's caption).

    State: ``count`` (the chosen N), ``at_count`` {name: ms at N}, ``extra`` {name: ms above the
    smallest N}, ``figure``, ``png``.
    """

    def __init__(self, curves: Mapping[str, Mapping], machine: str = ""):
        if len(curves) < 1:
            raise ValueError("CostExplorer needs at least one measured curve")
        counts = [list(curve["counts"]) for curve in curves.values()]
        if any(c != counts[0] for c in counts):
            raise ValueError(f"the curves were measured at different instance counts: {counts}")
        self.curves, self.machine, self.counts = dict(curves), machine, counts[0]
        self.count = self.counts[len(self.counts) // 2]
        self.at_count: dict[str, float] = {}
        self.extra: dict[str, float] = {}
        self.png = b""
        self.figure = new_figure(11, 3.6, dpi=80)
        self.slider = widgets.SelectionSlider(options=self.counts, value=self.count, description="instances N",
                                              continuous_update=False, style={"description_width": "initial"},
                                              layout=widgets.Layout(width="420px"))
        self.summary = widgets.Label()
        self.figure_out = widgets.Output()
        for widget, css in [(self.slider, "ye-cost-count"), (self.summary, "ye-cost-summary"),
                            (self.figure_out, "ye-cost-figure")]:
            widget.add_class(css)
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        super().__init__([widgets.HBox([self.slider, self.summary]), self.figure_out])
        self.show(self.count)

    def show(self, count: int) -> None:
        """Mark ``count`` (one of the measured counts) and redraw."""
        if count not in self.counts:
            raise ValueError(f"{count} instances were not measured; choose one of {self.counts}")
        self.count = count
        index = self.counts.index(count)
        self.at_count = {name: float(c["median_ms"][index]) for name, c in self.curves.items()}
        self.extra = {name: float(c["median_ms"][index] - c["median_ms"][0]) for name, c in self.curves.items()}
        fastest = min(self.at_count, key=self.at_count.get)
        others = [f"{name} {ms:.1f} ms ({fastest} takes {self.at_count[fastest] / ms:.2f}x its time)"
                  for name, ms in self.at_count.items() if name != fastest]
        self.summary.value = f"N = {count}: {fastest} {self.at_count[fastest]:.1f} ms; " + "; ".join(others)
        self._draw()
        self.png = show_in_output(self.figure_out, self.figure, self.summary.value)
        if self.slider.value != count:
            self.slider.value = count

    def _draw(self) -> None:
        fig = self.figure
        fig.clear()
        curve_ax, bar_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
        for name, curve in self.curves.items():
            curve_ax.plot(curve["counts"], curve["median_ms"], marker="o", label=name, color=model_color(name))
            curve_ax.plot([self.count], [self.at_count[name]], "o", markersize=12, markerfacecolor="none",
                          markeredgecolor="black")
        curve_ax.axvline(self.count, color="0.5", linestyle=":")
        curve_ax.set_xlabel("instances N (forced)")
        curve_ax.set_ylabel("ms per image (median)")
        curve_ax.set_title(self.machine, fontsize=9)
        curve_ax.grid(True, alpha=0.3)
        curve_ax.legend(fontsize=8)
        names = list(self.curves)
        first = [self.at_count[name] - self.extra[name] for name in names]     # the time at the smallest N
        base = [min(self.at_count[name], start) for name, start in zip(names, first)]
        extra = [max(self.extra[name], 0.0) for name in names]
        below = [max(-self.extra[name], 0.0) for name in names]      # a measured time can be lower at a larger N
        shared = f"at N = {self.counts[0]}" + (f" (or at N = {self.count} if lower)" if any(below) else "")
        bar_ax.barh(names, base, color="0.75", label=shared)
        # the extra in each model's own colour, so a bar reads as the curve of the same colour
        bar_ax.barh(names, extra, left=base, color=[model_color(name) for name in names], alpha=0.8,
                    label=f"extra for N = {self.count} (model colour)")
        if any(below):
            bar_ax.barh(names, below, left=base, color="none", edgecolor="0.3", linestyle="--",
                        label=f"less than at N = {self.counts[0]}")
        for row, name in enumerate(names):
            bar_ax.text(self.at_count[name], row, f" {self.at_count[name]:.1f} ms", va="center", fontsize=8)
        bar_ax.set_xlim(0, max(max(self.at_count.values()), *first) * 1.35)
        bar_ax.set_xlabel("ms per image")
        bar_ax.set_title(f"what N = {self.count} instances cost", fontsize=10)
        bar_ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
        bar_ax.invert_yaxis()
        fig.tight_layout()


__all__ = ["CostExplorer"]
