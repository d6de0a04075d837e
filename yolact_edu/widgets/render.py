"""Putting matplotlib figures into widgets without pyplot.

The widgets draw on a ``matplotlib.figure.Figure`` of their own (not pyplot), so nothing is
shown twice by the inline backend and a figure can be redrawn from a training thread. The PNG
goes into an ``Output`` widget's ``outputs`` directly (a browser renders it as an ``<img>``)
or into an ``Image`` widget's ``value``.
"""
from __future__ import annotations

import base64

import ipywidgets as widgets
from matplotlib.figure import Figure

from ..viz.figures import figure_png


def new_figure(width: float, height: float, dpi: int = 72) -> Figure:
    """A figure with the Agg canvas attached, independent of pyplot's state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def show_in_output(output, figure: Figure, text: str = "") -> bytes:
    """Replace what ``output`` (an ipywidgets ``Output``) shows with the figure; returns the PNG."""
    png = figure_png(figure)
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"image/png": base64.b64encode(png).decode("ascii"),
                                "text/plain": text or "<figure>"}},)
    return png


class StaticSnapshot:
    """Mixin for a widget with a picture: its display bundle also carries the picture it shows
    now as ``image/png`` (from :meth:`snapshot_png`; by default ``self.png``), and its plain-text
    form says what it is instead of ipywidgets' repr of its children.

    Why: a notebook opened as cloned is untrusted and has no kernel, so JupyterLab will not
    render the widget mimetype and would show the widget's Python repr. It does render a PNG
    (a safe mimetype), so the committed output shows the picture; once the cell runs in a
    live, trusted notebook the widget view (ranked above PNG) replaces it.
    """

    def snapshot_png(self) -> bytes:
        return getattr(self, "png", b"")

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        name = getattr(self, "snapshot_name", "") or type(self).__name__
        bundle["text/plain"] = f"{name}: a live widget; run this cell (in a trusted notebook) to use it"
        png = self.snapshot_png()
        if png:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle


class SnapshotBox(StaticSnapshot, widgets.VBox):
    """A VBox whose owner sets ``png`` to the picture it shows and ``snapshot_name`` to its own
    name (see :class:`StaticSnapshot`)."""

    png = b""
    snapshot_name = ""


__all__ = ["new_figure", "show_in_output", "StaticSnapshot", "SnapshotBox"]
