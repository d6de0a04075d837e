"""Ready-made things for the notebooks: the shapes set on disk and a small trained model.

Nothing is downloaded. The shapes set is generated locally (seconds) the first time it is
asked for, and the trained ``yolact_tiny`` weights ship inside the package
(``assets/yolact_tiny_shapes.pth``, 6.6 MB in float16): a 3000-iteration ``yolact-edu demo``
run on the 600 training images (seed 0) with AdamW at lr 1e-3, scoring box AP 0.28 and mask AP
0.19 on the val split. (The demo now uses lr 2e-3, which reached 0.34 / 0.26; a model you train
can replace the file via :func:`export_small`.) So a notebook that explores a trained model never
has to wait for one to be trained.

    >>> from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model
    >>> model = tiny_shapes_model()                 # eval mode, on the CPU
    >>> val = shapes_dataset("val")                 # CocoDataset over data/shapes/val
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..data import CocoDataset, make_shapes
from ..files.locations import assets_dir, checkout_dir
from ..training.checkpoint import load_model

ASSETS = assets_dir()
TINY_SHAPES_WEIGHTS = ASSETS / "yolact_tiny_shapes.pth"
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


def shapes_paths() -> dict[str, Path]:
    """The bundled synthetic set's folders and annotation files, generated on first use (~15 s)."""
    return make_shapes(data_root() / "shapes")


def shapes_dataset(split: str = "val", max_size: int = 192, **dataset_kwargs) -> CocoDataset:
    """A :class:`CocoDataset` over the shapes set's ``"train"`` or ``"val"`` split."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    paths = shapes_paths()
    dataset_kwargs.setdefault("verbose", False)
    return CocoDataset(paths[f"{split}_annotations"], paths[f"{split}_images"], max_size=max_size,
                       **dataset_kwargs)


def tiny_shapes_model(device: str | torch.device = "cpu"):
    """The shipped ``yolact_tiny`` trained on the shapes set (6 classes), in eval mode, float32."""
    if not TINY_SHAPES_WEIGHTS.is_file():
        raise FileNotFoundError(f"{TINY_SHAPES_WEIGHTS} is missing from the installed package; "
                                "reinstall yolact_edu or train one with `yolact-edu demo`")
    return load_model(TINY_SHAPES_WEIGHTS, device=device).float()


def export_small(checkpoint: str | os.PathLike, out: str | os.PathLike, half: bool = True) -> Path:
    """Strip a training checkpoint to what inference needs (config, weights, category ids),
    optionally in float16 — how ``assets/yolact_tiny_shapes.pth`` was made from the demo's."""
    from ..files.output_folder import same_file
    from ..training.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint

    if same_file(checkpoint, out):
        raise ValueError(f"export_small would replace its input {checkpoint}; write to another file")
    meta = read_checkpoint(checkpoint)          # read once: weights, config and ids all come from it
    model = model_from_checkpoint(meta, str(checkpoint))
    if half:
        model = model.half()
    return save_checkpoint(out, model, category_ids=meta.get("category_ids"),
                           iteration=int(meta.get("iteration", 0)))


__all__ = ["quick_mode", "data_root", "shapes_paths", "shapes_dataset", "tiny_shapes_model", "export_small",
           "TINY_SHAPES_WEIGHTS", "QUICK_ENV"]
