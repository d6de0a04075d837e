"""A matplotlib figure as PNG bytes: what a command writes to its output folder and what a widget
shows in an ``Image``, rendered the same way everywhere (Agg, no pyplot, so any thread may draw)."""
from __future__ import annotations

import io


def figure_png(figure, dpi: float | None = None) -> bytes:
    """The figure rendered to PNG bytes, at ``dpi`` (None: the figure's own)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi if dpi is None else dpi)
    return buffer.getvalue()


__all__ = ["figure_png"]
