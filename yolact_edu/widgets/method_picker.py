"""The method picker (notebook 05): buttons naming methods, and the picture of the chosen one's
assembly step, drawn by a function the lesson supplies.

    >>> MethodPicker(lambda name: plot_family_gallery(scene, {name: demos[name]}), list(demos))
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets
from matplotlib.figure import Figure

from .render import StaticSnapshot, show_in_output


class MethodPicker(StaticSnapshot, widgets.VBox):
    """Toggle buttons over ``options``; choosing one shows ``draw(option)`` (a matplotlib Figure,
    closed after it is rendered).

    State: ``value`` (the option shown), ``png`` (its picture), ``draws`` (how many were drawn).
    """

    def __init__(self, draw: Callable[[str], Figure], options: Sequence[str], value: str | None = None,
                 description: str = "method"):
        options = list(options)
        if not options:
            raise ValueError("MethodPicker needs at least one option")
        value = options[0] if value is None else value
        if value not in options:
            raise ValueError(f"{value!r} is not one of the options {options}")
        self.draw, self.value, self.png, self.draws = draw, value, b"", 0
        self.buttons = widgets.ToggleButtons(options=options, value=value, description=description,
                                             style={"description_width": "initial"})
        self.figure_out = widgets.Output()
        self.buttons.add_class("ye-method-picker")
        self.buttons.observe(lambda change: self.show(change["new"]), names="value")
        super().__init__([self.buttons, self.figure_out])
        self.show(value)

    def show(self, option: str) -> None:
        import matplotlib.pyplot as plt

        figure = self.draw(option)
        self.png = show_in_output(self.figure_out, figure, option)
        plt.close(figure)                 # a pyplot figure would otherwise stay open (and show twice)
        self.value, self.draws = option, self.draws + 1
        if self.buttons.value != option:
            self.buttons.value = option


__all__ = ["MethodPicker"]
