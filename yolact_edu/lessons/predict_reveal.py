""""Predict, then reveal": the learner commits to a guess (a number or a choice) in one cell, the
next cell draws the figure that answers it and :func:`reveal` says how close the guess was.

One mechanism for every notebook, so a guess is always written the same way::

    guess = ...          # your guess before running the next cell: a number of ms, or "YOLACT"
    ...                  # the figure that answers it
    reveal(guess, truth, unit="ms", tolerance=0.25)

The truth always comes from what the notebook just measured or computed, never typed in.
"""
from __future__ import annotations

from collections.abc import Sequence

from .exercises import Check


def _normal(choice) -> str:
    return str(choice).strip().lower()


def reveal(guess, truth, *, unit: str = "", tolerance: float | None = None,
           choices: Sequence | None = None, why: str = "") -> Check:
    """Compare a committed ``guess`` with the measured ``truth``.

    A number is right within relative ``tolerance`` (default 0.25, i.e. ±25 %); with ``choices``
    the guess must be one of them and equal ``truth`` (case and surrounding spaces ignored).
    ``guess is ...`` (nothing committed) is never right: the answer is shown, with ``why``.
    The returned :class:`Check` prints as one line: ✓/✗, the guess, the truth, and ``why``.
    """
    shown = f"{truth:.3g}{(' ' + unit) if unit else ''}" if isinstance(truth, (int, float)) and \
        not isinstance(truth, bool) else f"{truth}"
    tail = f" {why}" if why else ""
    if guess is ...:
        return Check(False, f"no guess committed (set `guess` before running the figure); the answer: {shown}.{tail}")
    if choices is not None:
        options = {_normal(c): c for c in choices}
        if _normal(guess) not in options:
            return Check(False, f"{guess!r} is not one of {list(choices)}; the answer: {shown}.{tail}")
        right = _normal(guess) == _normal(truth)
        return Check(right, f"you said {options[_normal(guess)]}, the measurement says {shown}.{tail}")
    try:
        value = float(guess)
    except (TypeError, ValueError):
        return Check(False, f"{guess!r} is not a number; the answer: {shown}.{tail}")
    tolerance = 0.25 if tolerance is None else tolerance
    right = abs(value - float(truth)) <= tolerance * abs(float(truth))
    return Check(right, f"you guessed {value:.3g}{(' ' + unit) if unit else ''}, the measurement says {shown} "
                        f"({'within' if right else 'outside'} ±{tolerance:.0%}).{tail}")


__all__ = ["reveal"]
