"""Notebook 02, section 7 "A real photo, and your own": the official COCO YOLACT when its file is
on disk, otherwise the shipped shapes model, with a picture that suits whichever it is.

Nothing is downloaded here: ``yolact-edu weights download yolact_base`` (needs internet) puts the
file where :func:`~yolact_edu.weights.weights_dir` looks, and the lesson picks it up from there.

    >>> from yolact_edu.lessons.real_photos import lesson_photo, official_model_if_present
    >>> official, message = official_model_if_present()   # (None, "official yolact_base weights not found ...")
    >>> print(message)
    >>> photo, caption = lesson_photo(official is not None)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib import cbook

from ..data.images import read_image, sample_image
from ..files.locations import shown_path
from ..model import Yolact
from ..weights import OFFICIAL_FILES, CheckpointError, load_official, weights_dir
from .pretrained import shapes_dataset

FALLBACK = "carrying on with the shapes model"
SHAPES_PHOTO_INDEX = 61       # a val image with a few clear, separate shapes (section 1 uses image 3)


def official_weights_path(name: str = "yolact_base") -> Path:
    """Where the official checkpoint of config ``name`` is expected: ``weights_dir() / OFFICIAL_FILES[name]``."""
    if name not in OFFICIAL_FILES:
        raise KeyError(f"no released checkpoint for {name!r}; released: {', '.join(OFFICIAL_FILES)}")
    return weights_dir() / OFFICIAL_FILES[name]


def official_model_if_present(name: str = "yolact_base",
                              device: str | torch.device = "cpu") -> tuple[Yolact | None, str]:
    """(model, one-line message): the official COCO model of config ``name`` in eval mode on
    ``device`` when its file is in :func:`~yolact_edu.weights.weights_dir`, else ``None``.

    The message names the file that was loaded, or says how to get it (file absent), or why it
    cannot be used (a :class:`~yolact_edu.weights.CheckpointError`: truncated or foreign file).
    An unusable file falls back to ``None`` like an absent one, so a notebook carries on with the
    shapes model; the message is the learner's only clue, so print it.
    """
    path = official_weights_path(name)
    if not path.is_file():
        return None, (f"official {name} weights not found at {shown_path(path)}; get them with "
                      f"`yolact-edu weights download {name}` (needs internet); {FALLBACK}")
    try:
        model = load_official(path, config=name)
    except CheckpointError as error:
        return None, (f"cannot use the official {name} weights: {one_line(str(error))}; fetch them again with "
                      f"`yolact-edu weights download {name} --force`; {FALLBACK}")
    return model.to(device).eval(), (f"official {name} weights loaded from {shown_path(path)} "
                                     f"(COCO, {model.cfg.num_classes} classes, {model.cfg.max_size} px input)")


def one_line(text: str) -> str:
    """A multi-line error message (heading, then indented details) joined into one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:1] + ["; ".join(lines[1:])]).strip()


def real_photo() -> tuple[np.ndarray, str]:
    """(HxWx3 uint8 RGB, caption): a real photograph for a COCO model.

    The package's own ``sample.jpg`` is painted shapes, not a photo, so this is matplotlib's
    public-domain portrait of Grace Hopper (600x512, a person and a tie: two COCO classes), which
    every matplotlib wheel ships; a trimmed install without matplotlib's sample data gets the
    bundled sample instead, and the caption says which.
    """
    path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if path.is_file():
        return read_image(path), "photo: Grace Hopper (matplotlib sample data)"
    return sample_image(), "the bundled sample picture (matplotlib's sample photo is not installed)"


def lesson_photo(official: bool) -> tuple[np.ndarray, str]:
    """(HxWx3 uint8 RGB, caption): :func:`real_photo` for the official COCO model, a shapes val
    image for the shapes model, which has never seen a photo."""
    if official:
        return real_photo()
    return shapes_dataset("val").load_image(SHAPES_PHOTO_INDEX), f"shapes val image {SHAPES_PHOTO_INDEX}"


__all__ = ["official_weights_path", "official_model_if_present", "one_line", "real_photo", "lesson_photo",
           "FALLBACK", "SHAPES_PHOTO_INDEX"]
