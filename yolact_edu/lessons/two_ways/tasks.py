"""Instance segmentation = detection + semantic segmentation (notebook 01 §1).

Three views of the same ground truth: detection (a box and a class per object), semantic
segmentation (a class per pixel; touching objects of one class merge) and instance
segmentation (a mask per object, so each one can be told apart).
"""
from __future__ import annotations

import numpy as np
import torch

from ...viz.draw import class_color, draw_instances


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def semantic_map(masks, labels, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Instance masks [n,H,W] ({0,1} or bool) with labels [n] (0-based) -> class map [H,W] int64:
    0 = background, ``label + 1`` elsewhere. Where masks overlap, the later instance wins.
    ``height``/``width`` are needed only when n == 0."""
    masks, labels = _numpy(masks).astype(bool), _numpy(labels).astype(np.int64)
    if masks.shape[0] == 0:
        if height is None or width is None:
            raise ValueError("give height and width when there are no masks")
        return np.zeros((height, width), np.int64)
    class_map = np.zeros(masks.shape[1:], np.int64)
    for mask, label in zip(masks, labels):
        class_map[mask] = label + 1
    return class_map


def draw_semantic(image: np.ndarray, class_map: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Colour each pixel of ``image`` (HxWx3 uint8) by its class in ``class_map`` [H,W] (0 =
    background, left as is); one colour per class, so same-class objects look like one."""
    canvas = image.astype(np.float32).copy()
    for value in np.unique(class_map):
        if value == 0:
            continue
        region = class_map == value
        canvas[region] = canvas[region] * (1 - alpha) + np.array(class_color(int(value) - 1)) * alpha
    return canvas.clip(0, 255).astype(np.uint8)


def task_views(image: np.ndarray, target: dict, class_names) -> dict[str, np.ndarray]:
    """The three views of one annotated image, each an HxWx3 uint8 RGB picture.

    target: as :meth:`CocoDataset.load_target` ("boxes" [n,4] xyxy pixels, "masks" [n,H,W],
    "labels" [n]). Returns {"detection": boxes + class names, "semantic": per-pixel class
    colours, "instance": one colour per object, numbered}.
    """
    boxes, masks, labels = _numpy(target["boxes"]), _numpy(target["masks"]).astype(bool), _numpy(target["labels"])
    names = [class_names[int(label)] for label in labels]
    empty = np.zeros_like(masks)
    # Colours by instance index rather than class: the point of the view is that objects separate.
    instance_colours = np.arange(len(labels)) * 7 + 3
    return {
        "detection": draw_instances(image, empty, boxes, labels.tolist(), names),
        "semantic": draw_semantic(image, semantic_map(masks, labels, *image.shape[:2])),
        "instance": draw_instances(image, masks, boxes, instance_colours.tolist(),
                                   [f"#{i} {name}" for i, name in enumerate(names)], alpha=0.6,
                                   show_boxes=False),
    }


__all__ = ["semantic_map", "draw_semantic", "task_views"]
