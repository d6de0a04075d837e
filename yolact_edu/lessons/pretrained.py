"""Ready-made things for the notebooks: the shapes set on disk and small trained models.

Nothing is downloaded. The shapes set is generated locally (seconds) the first time it is
asked for, and one model of each family trained on it ships inside the package, in float16:
``yolact_tiny`` (``assets/yolact_tiny_shapes.pth``), ``maskrcnn_tiny``
(``assets/maskrcnn_tiny_shapes.pth``) and YOLACT's relatives ``condinst_tiny``, ``solov2_tiny``,
``blendmask_tiny`` and ``centermask_tiny`` (``assets/<name>_shapes.pth``). Two more were trained
on the crowded variant of the set (crowds of one class, objects inside other objects' boxes,
clutter): ``yolact_tiny_crowded`` and ``maskrcnn_tiny_crowded`` (``assets/<name>.pth``).
Each file carries its own figures and the command that trained it
(:func:`~yolact_edu.training.export.shipped_metadata`); the notebooks quote those, and
``docs/benchmarks.md`` records the runs. So a notebook that explores a trained model never has
to wait for one to be trained.

    >>> from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model
    >>> model = tiny_shapes_model()                 # eval mode, on the CPU
    >>> val = shapes_dataset("val")                 # CocoDataset over data/shapes/val
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..config import get_config
from ..data import CocoDataset, make_shapes
from ..data.shapes import DEFAULT_ROOTS
from ..files.locations import assets_dir, checkout_dir
from ..loading import load, shipped_path
from ..training.checkpoint import read_checkpoint
from .tables import markdown_table

ASSETS = assets_dir()
TINY_SHAPES_WEIGHTS = shipped_path("yolact_tiny")
MASKRCNN_SHAPES_WEIGHTS = shipped_path("maskrcnn_tiny")
RELATIVES = ("condinst_tiny", "solov2_tiny", "blendmask_tiny", "centermask_tiny")
# config name -> file: one model per family, in the order the comparisons list them
SHIPPED_WEIGHTS = {name: shipped_path(name) for name in ("yolact_tiny", "maskrcnn_tiny", *RELATIVES)}
# shipped name -> file: the YOLACT and Mask R-CNN trained on the crowded variant (configs yolact_tiny, maskrcnn_tiny)
CROWDED_WEIGHTS = {name: shipped_path(name) for name in ("yolact_tiny_crowded", "maskrcnn_tiny_crowded")}
_EVERY_FILE = {**SHIPPED_WEIGHTS, **CROWDED_WEIGHTS}
EVERY_SHIPPED = tuple(_EVERY_FILE)   # the README's table: the six families, then the crowded two
# ``yolact-edu bench compare`` on the shipped models (docs/benchmarks.md has the command)
FAMILY_COMPARISON = ASSETS / "family_comparison.json"
QUICK_ENV = "YOLACT_EDU_QUICK"


def quick_mode() -> bool:
    """True when ``YOLACT_EDU_QUICK`` is set to something other than ``""``/``0``/``false``.

    The tests set it so that each notebook runs in minutes on a CPU; unset it (or set it to 0)
    for the full runs the notebooks were written for."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def data_root() -> Path:
    """Where generated datasets go: ``<checkout>/data`` when the package runs from a source
    checkout (the notebooks' case), else ``~/.cache/yolact_edu/data``. ``YOLACT_EDU_DATA``
    overrides both."""
    if os.environ.get("YOLACT_EDU_DATA"):
        return Path(os.environ["YOLACT_EDU_DATA"])
    checkout = checkout_dir()
    if checkout is not None:
        return checkout / "data"
    return Path.home() / ".cache" / "yolact_edu" / "data"


def shapes_paths(variant: str = "plain") -> dict[str, Path]:
    """The bundled synthetic set's folders and annotation files, generated on first use (~15 s;
    ``variant="crowded"``: the crowded variant in ``data/shapes_crowded``, about 45 s)."""
    if variant not in DEFAULT_ROOTS:
        raise ValueError(f"variant must be one of {', '.join(DEFAULT_ROOTS)}, not {variant!r}")
    return make_shapes(data_root() / Path(DEFAULT_ROOTS[variant]).name, variant=variant)


def shapes_dataset(split: str = "val", max_size: int | None = None, variant: str = "plain",
                   **dataset_kwargs) -> CocoDataset:
    """A :class:`CocoDataset` over the shapes set's ``"train"`` or ``"val"`` split (of ``variant``:
    ``"plain"`` or ``"crowded"``), prepared at ``max_size`` (default: the teaching config's,
    ``yolact_tiny``, which the shipped models share)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    paths = shapes_paths(variant)
    dataset_kwargs.setdefault("verbose", False)
    max_size = get_config("yolact_tiny").max_size if max_size is None else max_size
    return CocoDataset(paths[f"{split}_annotations"], paths[f"{split}_images"], max_size=max_size,
                       **dataset_kwargs)


def tiny_shapes_model(device: str | torch.device = "cpu"):
    """The shipped ``yolact_tiny`` trained on the shapes set (6 classes), in eval mode, float32."""
    return shipped_model("yolact_tiny", device)


def shipped_rows(names=None) -> list[dict]:
    """One row per shipped model (those of ``names``, default the six families' shapes models; the crowded
    ones when named, e.g. ``names=EVERY_SHIPPED``), every figure read from the file's own metadata
    (:func:`~yolact_edu.training.export.shipped_metadata`): model, input, validation images
    (the generator's seed), box AP, mask AP, mask AP75, mask AP90, iterations x batch, train
    images/s, file size. Values are strings formatted as quoted everywhere (3 decimals)."""
    rows = []
    for name, path in (SHIPPED_WEIGHTS if names is None else _EVERY_FILE).items():
        if (names is not None and name not in names) or not path.is_file():
            continue
        checkpoint = read_checkpoint(path)
        meta = checkpoint.get("metadata") or {}
        val, training = meta.get("val", {}), meta.get("training", {})
        seed = val.get("generator", {}).get("seed")
        variant = val.get("generator", {}).get("variant")
        rows.append({"model": name, "input": f"{checkpoint['config']['max_size']} px",
                     "val images": f"{val.get('images', '?')}" + (f" {variant}" if variant else "")
                                   + (f" (seed {seed})" if seed is not None else ""),
                     **{label: f"{val[key]:.3f}" if key in val else "?" for label, key in (
                         ("box AP", "box_AP"), ("mask AP", "mask_AP"), ("mask AP75", "mask_AP75"),
                         ("mask AP90", "mask_AP90"))},
                     "training": f"{training.get('iterations', '?')} x {training.get('batch_size', '?')}",
                     "train img/s": f"{training['images_per_second']:.1f}" if "images_per_second" in training else "?",
                     "file": f"{path.stat().st_size / 1e6:.1f} MB"})
    return rows


def shipped_table(names=None) -> str:
    """:func:`shipped_rows` as a Markdown table: what the README and the notebooks quote."""
    return markdown_table(shipped_rows(names))


def tiny_maskrcnn_model(device: str | torch.device = "cpu"):
    """The shipped ``maskrcnn_tiny`` trained on the same shapes data, in eval mode, float32."""
    return shipped_model("maskrcnn_tiny", device)


def shipped_comparison() -> dict:
    """The comparison of the six shipped models that ships with them (``assets/family_comparison.json``,
    written by ``yolact-edu bench compare``): accuracy, latency curves, machine and weights."""
    if not FAMILY_COMPARISON.is_file():
        raise FileNotFoundError(f"{FAMILY_COMPARISON} is missing from the installed package; reinstall "
                                "yolact_edu, or run `yolact-edu bench compare` and read its JSON")
    return json.loads(FAMILY_COMPARISON.read_text())


def shipped_model(name: str, device: str | torch.device = "cpu"):
    """The shipped model ``name``, eval mode, float32: any of :data:`SHIPPED_WEIGHTS` (``yolact_tiny``,
    ``maskrcnn_tiny``, ``condinst_tiny``, ...; trained on the shapes set) or of :data:`CROWDED_WEIGHTS`
    (``yolact_tiny_crowded``, ``maskrcnn_tiny_crowded``; trained on its crowded variant)."""
    if name not in _EVERY_FILE:
        raise KeyError(f"no shipped model {name!r}; shipped: {', '.join(_EVERY_FILE)}")
    return load(name, device=device)


__all__ = ["quick_mode", "data_root", "shapes_paths", "shapes_dataset", "tiny_shapes_model", "tiny_maskrcnn_model",
           "shipped_model", "shipped_comparison", "RELATIVES", "FAMILY_COMPARISON",
           "shipped_rows", "shipped_table",
           "TINY_SHAPES_WEIGHTS", "MASKRCNN_SHAPES_WEIGHTS", "SHIPPED_WEIGHTS", "CROWDED_WEIGHTS", "EVERY_SHIPPED",
           "QUICK_ENV"]
