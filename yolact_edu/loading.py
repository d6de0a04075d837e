"""One way to get a ready model, whatever it is: ``ye.load(...)``, as torchvision's ``get_model``.

    >>> import yolact_edu as ye
    >>> model = ye.load("condinst_tiny")                             # a model shipped with the package
    >>> model = ye.load("outputs/train/checkpoints/yolact_tiny_0003000.pth")   # your own run
    >>> model = ye.load("yolact_base_54_800000.pth")                 # an official file (path, or a
    ...                                                              # name in the weights folder)

Every model comes back in eval mode, float32, on ``device``, with the same faces
(``predict``, ``detect``, ``optimize``; :class:`~yolact_edu.model.segmenter.InstanceSegmenter`).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .files.locations import assets_dir
from .training.checkpoint import load_model
from .weights import OFFICIAL_FILES, weights_dir

# The six families trained on the bundled shapes set, then the two trained on its crowded variant:
# shipped name -> file in the package's assets (docs/benchmarks.md records how each was trained).
SHIPPED_FILES: dict[str, str] = {
    "yolact_tiny": "yolact_tiny_shapes.pth", "maskrcnn_tiny": "maskrcnn_tiny_shapes.pth",
    **{name: f"{name}_shapes.pth" for name in ("condinst_tiny", "solov2_tiny", "blendmask_tiny", "centermask_tiny")},
    "yolact_tiny_crowded": "yolact_tiny_crowded.pth", "maskrcnn_tiny_crowded": "maskrcnn_tiny_crowded.pth",
}


def shipped_path(name: str) -> Path:
    """The file of the shipped model ``name`` (a key of :data:`SHIPPED_FILES`)."""
    if name not in SHIPPED_FILES:
        raise KeyError(f"no shipped model {name!r}; shipped: {', '.join(SHIPPED_FILES)}")
    return assets_dir() / SHIPPED_FILES[name]


def load(name_or_path: str | os.PathLike, *, device: str | torch.device = "cpu", config=None) -> torch.nn.Module:
    """A ready model from a shipped name, a checkpoint of a yolact_edu run (any family), or an
    official YOLACT file (a path, or its file name in :func:`~yolact_edu.weights.weights_dir`,
    where ``yolact-edu weights download`` puts it). ``config``: for an official file whose name does
    not tell its config (or to check a run's checkpoint holds that config).

    Anything else is refused in one line saying what was looked for."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if text in SHIPPED_FILES and not path.exists():
        path = shipped_path(text)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from the installed package; reinstall yolact_edu")
    elif not path.exists() and path.name == text and (weights_dir() / text).is_file():
        path = weights_dir() / text
    if not path.is_file():
        official = ", ".join(sorted(OFFICIAL_FILES.values())[:2])
        raise FileNotFoundError(
            f"{text}: no such file, and not a shipped model ({', '.join(SHIPPED_FILES)}) nor an official file in "
            f"{weights_dir()} (e.g. {official}; get one with `yolact-edu weights download NAME`)")
    model = load_model(path, config=config, device=device).float()
    if text in SHIPPED_FILES and model.cfg.family == "maskrcnn":
        model.is_trained = True         # the lessons tell a trained Mask R-CNN from an untrained one
    return model


__all__ = ["load", "shipped_path", "SHIPPED_FILES"]
