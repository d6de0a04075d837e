"""Instance segmentation = detection + semantic segmentation (notebook 01 §1).

Three views of the same ground truth: detection (a box and a class per object), semantic
segmentation (a class per pixel; touching objects of one class merge) and instance
segmentation (a mask per object, so each one can be told apart).

:func:`plot_task_maps` draws the last two as opaque maps (one colour per class, one colour per
instance id, each with its legend), so a blob of touching same-class objects is visibly one
region; :func:`region_counts` counts the regions and instances the learner is asked to guess.
"""
from __future__ import annotations

import cv2
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


BACKGROUND = (40, 40, 40)      # dark grey: no class / no instance, far from every class colour


def instance_map(masks, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Instance masks [n,H,W] -> id map [H,W] int64: 0 = background, ``i + 1`` on object i (the
    later instance wins where masks overlap). ``height``/``width`` only when n == 0."""
    masks = _numpy(masks).astype(bool)
    if masks.shape[0] == 0:
        if height is None or width is None:
            raise ValueError("give height and width when there are no masks")
        return np.zeros((height, width), np.int64)
    ids = np.zeros(masks.shape[1:], np.int64)
    for i, mask in enumerate(masks):
        ids[mask] = i + 1
    return ids


def instance_color(index: int) -> tuple[int, int, int]:
    """A colour per instance id (matplotlib's tab10, then tab20b), unrelated to the class colours."""
    import matplotlib

    colors = list(matplotlib.colormaps["tab10"].colors) + list(matplotlib.colormaps["tab20b"].colors)
    r, g, b = colors[index % len(colors)][:3]
    return round(r * 255), round(g * 255), round(b * 255)


def label_picture(label_map: np.ndarray, colors: dict[int, tuple[int, int, int]],
                  background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """An opaque picture of a label map [H,W] (0 = background): value v painted ``colors[v]``,
    nothing of the image shows through. Returns HxWx3 uint8 RGB."""
    picture = np.empty((*label_map.shape, 3), np.uint8)
    picture[:] = background
    for value, color in colors.items():
        picture[label_map == value] = color
    return picture


def semantic_regions(class_map: np.ndarray, connectivity: int = 8) -> int:
    """Connected areas of one class in a class map [H,W] (0 = background): what semantic
    segmentation can tell apart. Touching objects of one class count once.
    ``connectivity`` 8 joins pixels that touch at a corner, 4 only along an edge."""
    count = 0
    for value in np.unique(class_map):
        if value == 0:
            continue
        found, _ = cv2.connectedComponents((class_map == value).astype(np.uint8), connectivity=connectivity)
        count += found - 1          # label 0 is everything else
    return count


def region_counts(target: dict, image_shape: tuple[int, int]) -> dict[str, int]:
    """For one annotated image (``target`` as :meth:`CocoDataset.load_target`, ``image_shape``
    (H, W)): "instances" (objects), "classes" (distinct classes) and "semantic regions"
    (:func:`semantic_regions` of its class map)."""
    labels = _numpy(target["labels"])
    class_map = semantic_map(target["masks"], labels, *image_shape[:2])
    return {"instances": int(len(labels)), "classes": int(len(np.unique(labels))),
            "semantic regions": semantic_regions(class_map)}


def region_sentence(counts: dict[str, int]) -> str:
    """One sentence from :func:`region_counts`: how many objects semantic segmentation merges."""
    n, regions, classes = counts["instances"], counts["semantic regions"], counts["classes"]
    if regions == n:
        return (f"Here each of the {n} objects is its own semantic region: no two objects of one class touch, "
                "so the class map alone could still separate them.")
    return (f"{n} objects of {classes} class{'es' if classes != 1 else ''} form only {regions} semantic "
            f"region{'s' if regions != 1 else ''}: touching objects of one class merge into one, and only "
            f"the instance map keeps all {n} apart.")


def plot_task_maps(image: np.ndarray, target: dict, class_names, axes=None):
    """The image and its three tasks side by side: detection (boxes + class names), semantic
    segmentation as an opaque class-colour map, instance segmentation as an opaque instance-id
    map, each map with a legend (class names; ``#id class``).

    image HxWx3 uint8; target as :meth:`CocoDataset.load_target`. Returns the 4 axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    boxes, masks, labels = _numpy(target["boxes"]), _numpy(target["masks"]).astype(bool), _numpy(target["labels"])
    height, width = image.shape[:2]
    names = [class_names[int(label)] for label in labels]
    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(15, 4.4))
    class_map = semantic_map(masks, labels, height, width)
    ids = instance_map(masks, height, width)
    present = sorted({int(label) for label in labels})
    detection = draw_instances(image, np.zeros_like(masks), boxes, labels.tolist(), names)
    semantic = label_picture(class_map, {label + 1: class_color(label) for label in present})
    instance = label_picture(ids, {i + 1: instance_color(i) for i in range(len(labels))})
    panels = [("image", image), ("detection: box + class", detection),
              ("semantic: class per pixel", semantic), ("instance: object id per pixel", instance)]
    for ax, (title, picture) in zip(axes, panels):
        ax.imshow(picture)
        ax.set_title(title)
        ax.axis("off")

    def legend(ax, entries):
        handles = [Patch(facecolor=np.array(color) / 255, label=text) for text, color in entries]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
                  borderaxespad=0.2)

    legend(axes[2], [(class_names[label], class_color(label)) for label in present])
    legend(axes[3], [(f"#{i} {name}", instance_color(i)) for i, name in enumerate(names)])
    return axes


__all__ = ["semantic_map", "draw_semantic", "task_views", "instance_map", "instance_color", "label_picture",
           "semantic_regions", "region_counts", "region_sentence", "plot_task_maps", "BACKGROUND"]
