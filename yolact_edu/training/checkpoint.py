"""Training checkpoints: written atomically, the last few kept, everything needed to resume.

A yolact_edu checkpoint is a dict saved with ``torch.save``::

    {"format": "yolact_edu/1", "config": {...}, "model": state_dict,
     "category_ids": [...] | None, "iteration": int, "epoch": int,
     "optimizer": ..., "scaler": ..., "rng": {"torch": ByteTensor, "cuda": [ByteTensor]},
     "trainer": {...}}

Only tensors and plain Python values go in, so it loads with ``weights_only=True`` (no code
runs from the file). :func:`load_model` accepts these files and the original's official
``.pth`` files alike.
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..build import build_model, config_from_dict
from ..config import ModelConfig, YolactConfig, config_to_dict
from ..files.atomic_write import write_atomically
from ..weights import (
    CheckpointError,
    as_state_dict,
    check_state_dict,
    config_from_filename,
    official_model,
    read_checkpoint_file,
)

FORMAT = "yolact_edu/1"
_NAME = re.compile(r"^(?P<prefix>.+)_(?P<iteration>\d+)\.pth$")


def checkpoint_name(cfg: ModelConfig, iteration: int) -> str:
    """``<config>_<iteration>.pth``, e.g. ``yolact_tiny_1200.pth`` (zero-padded so names sort)."""
    return f"{cfg.name}_{iteration:07d}.pth"


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, category_ids=None,
                    **state) -> Path:
    """Write ``model`` (its config and weights) plus any extra ``state`` to ``path`` atomically:
    an interrupted save leaves the previous file intact and no half-written one."""
    model = getattr(model, "module", model)            # unwrap DistributedDataParallel
    payload = {"format": FORMAT, "config": config_to_dict(model.cfg),
               "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "category_ids": None if category_ids is None else [int(c) for c in category_ids],
               **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, buffer.getvalue())


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a yolact_edu checkpoint dict onto the CPU; :class:`CheckpointError` if the file is
    unreadable or not one of ours (an official file, say: use :func:`load_model` for those)."""
    obj = read_checkpoint_file(path)
    if not is_training_checkpoint(obj):
        raise CheckpointError(f"{path} is not a yolact_edu training checkpoint (no 'format': "
                              f"{FORMAT!r} entry); official weights load with load_model or load_official")
    return obj


def is_training_checkpoint(obj) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def model_from_checkpoint(checkpoint: Mapping, source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the model a checkpoint dict describes (of any family) and load its weights (strict)."""
    try:
        cfg = config_from_dict(dict(checkpoint["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: its config cannot be rebuilt: {exc}") from exc
    model = build_model(cfg)
    check_state_dict(model, checkpoint["model"], source)
    model.load_state_dict(checkpoint["model"], strict=False)
    return model


def load_model(path: str | os.PathLike, config: YolactConfig | str | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """A ready model (eval mode, on ``device``) from a yolact_edu checkpoint (any family) or an
    official YOLACT file.

    yolact_edu checkpoints carry their config (``config`` must then be None or agree by name);
    official files take ``config`` or infer it from the file name, as :func:`load_official`.
    """
    obj = read_checkpoint_file(path)     # read once, whichever kind of file it is
    if is_training_checkpoint(obj):
        model = model_from_checkpoint(obj, str(path))
        name = config if isinstance(config, str) or config is None else config.name
        if name is not None and name != model.cfg.name:
            raise CheckpointError(f"{path} holds a {model.cfg.name} model, not {name}")
        model.category_ids = obj.get("category_ids")
    else:
        source = str(path)
        model = official_model(as_state_dict(obj, source),
                               config if config is not None else config_from_filename(path), source)
    return model.to(device).eval()


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """``<name>_<iteration>.pth`` files in ``directory``, oldest iteration first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m["iteration"]), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


CHECKPOINT_FOLDER = "checkpoints"      # a run's checkpoints: OUTPUT/checkpoints


def resume_checkpoint(out_dir: str | os.PathLike, resume: str | os.PathLike | None) -> Path | None:
    """The checkpoint a run writing to ``out_dir`` continues from: for ``resume="auto"`` the newest in
    ``out_dir/checkpoints`` (None when there is none yet: the run's first start), else ``resume`` as a
    path; None without ``resume``."""
    if not resume:
        return None
    return latest_checkpoint(Path(out_dir) / CHECKPOINT_FOLDER) if str(resume) == "auto" else Path(resume)


__all__ = ["save_checkpoint", "read_checkpoint", "load_model", "model_from_checkpoint",
           "list_checkpoints", "latest_checkpoint", "resume_checkpoint", "CHECKPOINT_FOLDER", "checkpoint_name",
           "is_training_checkpoint"]
