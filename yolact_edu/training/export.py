"""Shipping a trained model: a training checkpoint stripped to what inference needs, in float16,
carrying its own figures so that nothing quoted about it is ever typed by hand.

    >>> out = export_small("outputs/run/checkpoints/yolact_tiny_0020000.pth", "yolact_tiny_shapes.pth",
    ...                    val_dataset=val, run_dir="outputs/run", command="yolact-edu train ...")
    >>> read_checkpoint(out)["metadata"]["val"]["mask_AP"]

The metadata (plain values only, so the file still loads with ``weights_only=True``)::

    {"val": {"annotations", "images", "box_AP", "box_AP50", "box_AP75", "box_AP90", "mask_AP",
             "mask_AP50", "mask_AP75", "mask_AP90",
             "generator"},                        # the exported weights themselves, on val_dataset
     "check": {"images": n, "box_AP", "mask_AP"},  # on the first n images: the regression test's
     "training": {"command", "iterations", "batch_size", "train_seconds", "images_per_second",
                  "validations": [...]},          # from the run folder, when given
     "exported": {"dtype", "torch"}}
"""
from __future__ import annotations

import copy
import json
import os
import statistics
from pathlib import Path

import torch

from ..files.output_folder import same_file
from .checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
from .evaluation import evaluate
from .log import read_log

CHECK_IMAGES = 20      # the regression test scores the shipped models on this many val images


def metrics_record(metrics: dict) -> dict:
    """The figures worth quoting from :func:`~yolact_edu.training.evaluation.evaluate`'s result."""
    record = {"images": metrics["num_images"]}
    for prefix, kind in (("box", "bbox"), ("mask", "segm")):
        for name in ("AP", "AP50", "AP75", "AP90"):
            record[f"{prefix}_{name}"] = metrics[kind][name]
    return record


def run_record(run_dir: str | os.PathLike, batch: int | None = None) -> dict:
    """What a training run folder says about itself: iterations, images/s (median of the log's
    windows), its validations and, given the ``batch`` (images per iteration over all processes),
    the training time: the logged windows summed (their steps, and any validation or checkpoint
    inside them), so pauses between a stop and its resume do not count."""
    run_dir = Path(run_dir)
    log = read_log(run_dir / "log.csv")
    iterations = [int(i) for i in log["iteration"]]
    steps = [b - a for a, b in zip([0, *iterations], iterations)]
    validations = (json.loads((run_dir / "validation.json").read_text())
                   if (run_dir / "validation.json").is_file() else [])
    record = {"iterations": iterations[-1] if iterations else 0, "batch_size": batch,
              "images_per_second": statistics.median(log["images_per_second"]) if iterations else None,
              "validations": validations}
    if batch:
        record["train_seconds"] = sum(n * batch / rate for n, rate in zip(steps, log["images_per_second"]) if rate > 0)
    return record


def export_small(checkpoint: str | os.PathLike, out: str | os.PathLike, half: bool = True, *,
                 val_dataset=None, run_dir: str | os.PathLike | None = None, command: str | None = None,
                 device: str | torch.device = "cpu") -> Path:
    """Strip a training checkpoint to config, weights and category ids, in float16 by default,
    and write it to ``out`` (atomically). With ``val_dataset`` the exported weights are scored
    (as loaded: float16 cast back to float32) and the figures stored in its metadata, with those
    of the first :data:`CHECK_IMAGES` images for the regression test; ``run_dir`` and ``command``
    add how it was trained."""
    if same_file(checkpoint, out):
        raise ValueError(f"export_small would replace its input {checkpoint}; write to another file")
    meta = read_checkpoint(checkpoint)          # read once: weights, config and ids all come from it
    model = model_from_checkpoint(meta, str(checkpoint))
    if half:
        model = model.half()
    metadata: dict = {"exported": {"dtype": "float16" if half else "float32", "torch": str(torch.__version__),
                                   "iteration": int(meta.get("iteration", 0))}}
    if val_dataset is not None:
        scored = copy.deepcopy(model).float()       # the exported weights as load_model gives them
        scored.category_ids = meta.get("category_ids")
        scored.to(device).eval()
        full = evaluate(scored, val_dataset, progress=False, verbose=False)
        check = evaluate(scored, val_dataset, max_images=CHECK_IMAGES, progress=False, verbose=False)
        metadata["val"] = {"annotations": Path(val_dataset.annotation_file).name, **metrics_record(full)}
        generator = val_dataset.coco.dataset.get("info", {}).get("generator")
        if generator:            # a generated set: its seed says which one
            metadata["val"]["generator"] = generator
        metadata["check"] = {"annotations": Path(val_dataset.annotation_file).name,
                             **{k: v for k, v in metrics_record(check).items()
                                if k in ("images", "box_AP", "mask_AP")}}
    if run_dir is not None:
        trainer = meta.get("trainer", {})
        batch = trainer["batch_size"] * trainer["world_size"] if trainer else None
        metadata["training"] = run_record(run_dir, batch)
    if command is not None:
        metadata.setdefault("training", {})["command"] = command
    return save_checkpoint(out, model, category_ids=meta.get("category_ids"),
                           iteration=int(meta.get("iteration", 0)), metadata=metadata)


def shipped_metadata(path: str | os.PathLike) -> dict:
    """The metadata :func:`export_small` stored in a shipped file ({} for a file without)."""
    return dict(read_checkpoint(path).get("metadata") or {})


__all__ = ["export_small", "shipped_metadata", "run_record", "metrics_record", "CHECK_IMAGES"]
