"""What the number of prototypes k is worth, measured on trained models (notebook 04, §6).

One model per k is trained with ``yolact-edu train --num-protos k`` (same data, seed and schedule;
only k changes). :func:`summarize_sweep` scores every checkpoint on the same val images and keeps
what a notebook needs to show the result without the models:

- per k: box and mask AP (and mask AP50 / AP75), the iterations trained;
- one val image (:func:`pick_image`: few objects, where the k's disagree most), and for each k
  the prototypes of that image ``proto`` [Hp,Wp,k] (>= 0, float16), and of each detection above
  the score threshold its coefficients ``coefs`` [n,k] in [-1, 1], relative box ``boxes_rel``
  [n,4], ``labels`` [n] and ``scores`` [n]. The masks are not stored: :func:`sweep_masks`
  reassembles them, crop(sigma(P C^T)) then upsampling, exactly as ``predict`` did.

:func:`sweep_bytes` / :func:`load_sweep` write and read all of it as one small ``.npz``; the shipped
one is :data:`PROTOTYPE_SWEEP` (how it was made is in its ``meta["command"]``).

    >>> sweep = load_sweep()
    >>> sweep["num_protos"], sweep["mask_AP"]
    >>> masks = sweep_masks(sweep, k=4)           # [n,H,W] bool on sweep["image"]
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..ops.assemble import assemble_masks, masks_to_image
from ..ops.mask_iou import pairwise_mask_iou
from ..training.checkpoint import model_from_checkpoint, read_checkpoint
from ..training.evaluation import evaluate

PROTOTYPE_SWEEP = Path(__file__).resolve().parent.parent / "assets" / "prototype_sweep.npz"
PER_DETECTION = ("coefs", "boxes_rel", "labels", "scores")
SCORES = ("box_AP", "mask_AP", "mask_AP50", "mask_AP75")


def mean_best_iou(detections, gt_masks: torch.Tensor) -> float:
    """Mean over ground-truth masks [m,H,W] of the best mask IoU any detection reaches (0 when
    nothing overlaps it): how well the objects are outlined, whatever the scores."""
    if gt_masks.shape[0] == 0:
        return 1.0
    if len(detections) == 0:
        return 0.0
    return float(pairwise_mask_iou(gt_masks, detections.masks).amax(1).mean())


@torch.no_grad()
def pick_image(low, high, dataset, *, candidates: int = 40, min_objects: int = 3, max_objects: int = 6,
               score_threshold: float = 0.3) -> int:
    """Index of the val image, among the first ``candidates`` with ``min_objects`` to ``max_objects``
    objects (enough to touch, few enough that labels stay readable), where model ``high`` (the
    most prototypes) outlines the objects best compared with ``low`` (the fewest):
    the largest gap in :func:`mean_best_iou`."""
    best, best_gap = None, -np.inf
    for index in range(min(candidates, len(dataset))):
        target = dataset.load_target(index)
        if not min_objects <= len(target["labels"]) <= max_objects:
            continue
        image = dataset.load_image(index)
        if image is None:
            continue
        gap = (mean_best_iou(high.predict(image, score_threshold=score_threshold), target["masks"])
               - mean_best_iou(low.predict(image, score_threshold=score_threshold), target["masks"]))
        if gap > best_gap:
            best, best_gap = index, gap
    if best is None:
        raise ValueError(f"none of the first {candidates} val images has {min_objects}-{max_objects} objects")
    return best


@torch.no_grad()
def summarize_sweep(checkpoints: Sequence[str | os.PathLike], dataset, *, image_index: int | None = None,
                    max_images: int | None = None, score_threshold: float = 0.3, meta: dict | None = None) -> dict:
    """Score each checkpoint (one per k; YOLACT configs that differ only in ``num_protos``) on
    ``dataset`` and record one image's prototypes and detections per k (see the module doc).

    Returns {"num_protos" [K] int, "box_AP"/"mask_AP"/"mask_AP50"/"mask_AP75" [K] float,
    "iterations" [K] int, "image" HxWx3 uint8, "image_index", "per_k": {k: {"proto", "coefs",
    "boxes_rel", "labels", "scores"}}, "class_names", "meta"}."""
    models = {}
    iterations = {}
    for path in checkpoints:
        checkpoint = read_checkpoint(path)                  # read once: the weights and the iteration
        model = model_from_checkpoint(checkpoint, str(path)).float().eval()
        k = int(model.cfg.num_protos)
        if k in models:
            raise ValueError(f"{path}: a second checkpoint with k = {k} prototypes")
        models[k], iterations[k] = model, int(checkpoint["iteration"])
    if len(models) < 2:
        raise ValueError(f"a sweep needs checkpoints with at least two values of k, got {sorted(models)}")
    reference = models[min(models)].cfg
    for k, model in models.items():
        if model.cfg.replace(num_protos=reference.num_protos) != reference:
            raise ValueError(f"the k = {k} checkpoint differs from the k = {min(models)} one in more than "
                             "num_protos: not a sweep over k alone")
    counts = sorted(models)
    if image_index is None:
        image_index = pick_image(models[counts[0]], models[counts[-1]], dataset, score_threshold=score_threshold)
    image = dataset.load_image(image_index)
    result = {"num_protos": np.array(counts), "iterations": np.array([iterations[k] for k in counts]),
              "image": image, "image_index": int(image_index), "class_names": list(reference.class_names),
              "per_k": {}, "meta": dict(meta or {})}
    scores = {name: [] for name in SCORES}
    for k in counts:
        metrics = evaluate(models[k], dataset, max_images=max_images, progress=False, verbose=False)
        for name, value in zip(SCORES, (metrics["bbox"]["AP"], metrics["segm"]["AP"], metrics["segm"]["AP50"],
                                        metrics["segm"]["AP75"])):
            scores[name].append(float(value))
        detections = models[k].predict(image, score_threshold=score_threshold)
        result["per_k"][k] = {"proto": detections.proto.numpy().astype(np.float16),
                              **{name: getattr(detections, name).numpy() for name in PER_DETECTION}}
    result.update({name: np.array(values) for name, values in scores.items()})
    result["meta"].setdefault("val_images", metrics["num_images"])
    result["meta"].setdefault("score_threshold", score_threshold)
    return result


def sweep_bytes(sweep: dict) -> bytes:
    """:func:`summarize_sweep`'s dict as the bytes of one compressed ``.npz`` (write them with an
    :class:`~yolact_edu.files.output_folder.OutputFolder`, which never replaces a user's file)."""
    arrays = {name: sweep[name] for name in ("num_protos", "iterations", "image", *SCORES)}
    for k, parts in sweep["per_k"].items():
        arrays.update({f"k{k}_{name}": value for name, value in parts.items()})
    header = {"image_index": sweep["image_index"], "class_names": sweep["class_names"], "meta": sweep["meta"]}
    arrays["header"] = np.array(json.dumps(header))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_sweep(path: str | os.PathLike = PROTOTYPE_SWEEP) -> dict:
    """The dict :func:`summarize_sweep` made, read back from a file of :func:`sweep_bytes`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prototype sweep not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a prototype sweep file ({exc})") from exc
    sweep = {name: arrays[name] for name in ("num_protos", "iterations", "image", *SCORES)}
    sweep["per_k"] = {int(k): {name: arrays[f"k{k}_{name}"] for name in ("proto", *PER_DETECTION)}
                      for k in sweep["num_protos"]}
    return sweep | header


def sweep_masks(sweep: dict, k: int, threshold: float = 0.5) -> torch.Tensor:
    """The k model's masks [n,H,W] bool on ``sweep["image"]``, reassembled from its stored
    prototypes and coefficients: crop(sigma(P C^T)) to the box, upsampled, ``> threshold``."""
    parts = sweep["per_k"][int(k)]
    soft = assemble_masks(torch.from_numpy(parts["proto"].astype(np.float32)),
                          torch.from_numpy(parts["coefs"]), torch.from_numpy(parts["boxes_rel"]))
    height, width = sweep["image"].shape[:2]
    return masks_to_image(soft, height, width, threshold)


def plot_sweep_scores(sweep: dict, ax=None):
    """Box AP, mask AP and mask AP75 against k (log2 axis). Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    counts = [int(k) for k in sweep["num_protos"]]
    for name, style in (("mask_AP", "o-"), ("mask_AP75", "^:"), ("box_AP", "s--")):
        ax.plot(counts, sweep[name], style, label=name.replace("_", " "))
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, counts)
    ax.set_xlabel("prototypes k")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"one model per k, {int(sweep['iterations'][0])} iterations each, "
                 f"{sweep['meta'].get('val_images', '?')} val images", fontsize=10)
    return ax


def draw_sweep_models(sweep: dict, fig=None):
    """One column per k: the image with that model's masks (top) and its k prototypes for the
    image (bottom, each tile scaled to its own range: a finer mosaic as k grows). Returns the Figure."""
    import matplotlib.pyplot as plt

    from ..viz.draw import draw_instances, prototype_grid

    counts = [int(k) for k in sweep["num_protos"]]
    if fig is None:
        fig = plt.figure(figsize=(2.6 * len(counts), 5.6))
    axes = fig.subplots(2, len(counts), squeeze=False)
    image = sweep["image"]
    height, width = image.shape[:2]
    for column, k in enumerate(counts):
        parts = sweep["per_k"][k]
        masks = sweep_masks(sweep, k).numpy()
        boxes = parts["boxes_rel"] * np.array([width, height, width, height], np.float32)
        labels = [int(label) for label in parts["labels"]]
        captions = [sweep["class_names"][label] for label in labels]
        axes[0, column].imshow(draw_instances(image, masks, boxes, labels, captions, show_labels=False))
        ap = float(sweep["mask_AP"][column])
        axes[0, column].set_title(f"k = {k}: mask AP {ap:.2f}", fontsize=10)
        grid_columns = int(np.ceil(np.sqrt(k)))
        axes[1, column].imshow(prototype_grid(parts["proto"].astype(np.float32), columns=grid_columns))
        dead = int((parts["proto"].reshape(-1, k).max(0) <= 0).sum())     # ReLU maps that never fire
        axes[1, column].set_title(f"its {k} prototype{'s' if k > 1 else ''}" + (f" ({dead} all zero)" if dead else ""),
                                  fontsize=9)
        for ax in axes[:, column]:
            ax.axis("off")
    fig.tight_layout()
    return fig


__all__ = ["PROTOTYPE_SWEEP", "mean_best_iou", "pick_image", "summarize_sweep", "sweep_bytes", "load_sweep",
           "sweep_masks", "plot_sweep_scores", "draw_sweep_models"]
