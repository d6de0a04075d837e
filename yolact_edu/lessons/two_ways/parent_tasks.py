"""Why instance segmentation is not detection + semantic segmentation glued together
(notebook 01, "the naive baseline").

The obvious instance segmenter built from the two parent tasks: a detector gives boxes and
classes, a semantic segmenter gives a class per pixel, and each box's mask is "the pixels of its
class inside the box". It is exact for an object alone in its box. When another object of the
same class reaches into the box, both boxes claim both objects: the semantic map has no notion
of "which one", so no improvement of either parent task can fix it.

Two semantic maps, with YOLACT's own detections (same boxes, classes and scores for all):

* **learned**: the shipped ``yolact_tiny``'s semantic segmentation head (``semantic_seg_conv``
  on P3, a 1x1 conv trained with per-class sigmoid BCE as an auxiliary loss, run at inference
  only here), upsampled to the image and thresholded at 0.5 per class;
* **perfect**: the ground truth's per-class union of masks: the best any semantic segmenter
  could do, an upper bound for the naive design.

    >>> study = parent_task_study(tiny_shapes_model(), shapes_dataset("val"), count=20)
    >>> study["scores"]["naive, perfect semantic map"]["mask AP crowded"]
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...detections import Detections
from ...ops.boxes import jaccard
from ...ops.mask_iou import mask_pair_iou
from ...training.evaluation import category_mapping
from .scoring import score_variants, with_masks
from .tasks import instance_color

CROWDED_FRACTION = 0.1      # another same-class object covers >= 10 % of an object's area inside its box
YOLACT = "YOLACT"
NAIVE_LEARNED = "naive, learned semantic map"
NAIVE_PERFECT = "naive, perfect semantic map"
VARIANTS = (YOLACT, NAIVE_LEARNED, NAIVE_PERFECT)


@torch.no_grad()
def detect_with_semantics(model, image: np.ndarray, **detect_kwargs) -> tuple[Detections, torch.Tensor]:
    """One image through YOLACT, with its semantic head's output as well.

    image HxWx3 uint8. Returns (detections at image size, as :meth:`Yolact.predict` with
    ``detect_kwargs``; semantic logits [C,Hs,Ws] on P3). The head runs on the P3 features the
    forward pass already computed (caught by a hook), so the network runs once.
    """
    caught = {}
    hook = model.fpn.register_forward_hook(lambda _module, _inputs, output: caught.update(p3=output[0]))
    was_training = model.training
    try:
        model.eval()
        raw = model.network(model.preprocess(image))
    finally:
        hook.remove()
        model.train(was_training)
    logits = model.semantic_seg_conv(caught["p3"].float())[0]
    detections = model.detect(raw, [image.shape[:2]], **detect_kwargs)[0]
    return detections.cpu(), logits.cpu()


def learned_class_masks(logits: torch.Tensor, height: int, width: int, threshold: float = 0.5) -> torch.Tensor:
    """Semantic logits [C,Hs,Ws] -> per-class masks [C,H,W] bool: logits upsampled bilinearly to the
    image (the input stretched it to a square, so a plain resize undoes that) and sigmoid > threshold."""
    upsampled = F.interpolate(logits[None].float(), (height, width), mode="bilinear", align_corners=False)[0]
    return upsampled.sigmoid() > threshold


def truth_class_masks(target: dict, num_classes: int) -> torch.Tensor:
    """The perfect semantic segmentation of an image: per-class union of its ground-truth masks,
    [C,H,W] bool (target: masks [n,H,W], labels [n] 0-based)."""
    masks = torch.as_tensor(np.asarray(target["masks"])).bool()
    out = torch.zeros((num_classes, *masks.shape[1:]), dtype=torch.bool)
    for mask, label in zip(masks, torch.as_tensor(np.asarray(target["labels"])).tolist()):
        out[label] |= mask
    return out


def naive_masks(class_masks: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The naive instance masks: for each box, the pixels of its class inside it.

    class_masks [C,H,W] bool (a semantic segmentation); boxes [N,4] xyxy pixels; labels [N]
    0-based. Returns [N,H,W] bool. Pixel (x, y) is inside a box when its centre (x + 0.5, y + 0.5)
    is."""
    _, height, width = class_masks.shape
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    centres_x = torch.arange(width, dtype=torch.float32) + 0.5
    centres_y = torch.arange(height, dtype=torch.float32) + 0.5
    inside_x = (centres_x[None] >= boxes[:, :1]) & (centres_x[None] <= boxes[:, 2:3])       # [N,W]
    inside_y = (centres_y[None] >= boxes[:, 1:2]) & (centres_y[None] <= boxes[:, 3:4])      # [N,H]
    in_box = inside_y[:, :, None] & inside_x[:, None, :]
    return class_masks[torch.as_tensor(labels, dtype=torch.int64)] & in_box


def crowded_objects(masks, boxes, labels, min_fraction: float = CROWDED_FRACTION) -> np.ndarray:
    """Which objects have company of their own class in their box: the pixels of other objects of the
    same class inside the object's box amount to at least ``min_fraction`` of its own area. Those are
    the objects whose naive mask is wrong even with a perfect semantic map and a perfect box.

    masks [n,H,W]; boxes [n,4] xyxy pixels; labels [n]. Returns [n] bool."""
    masks = np.asarray(masks, bool)
    labels = np.asarray(labels)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    crowded = np.zeros(len(labels), bool)
    for i in range(len(labels)):
        others = np.delete(np.arange(len(labels)), i)
        others = others[labels[others] == labels[i]]
        if not len(others) or not masks[i].any():
            continue
        x1, y1, x2, y2 = np.floor(boxes[i, :2]).astype(int).tolist() + np.ceil(boxes[i, 2:]).astype(int).tolist()
        intruding = masks[others][:, y1:y2, x1:x2].any(0).sum()
        crowded[i] = intruding >= min_fraction * masks[i].sum()
    return crowded


def crowded_annotation_ids(dataset, indices, min_fraction: float = CROWDED_FRACTION) -> tuple[set[int], set[int]]:
    """(crowded, isolated) annotation ids of the non-crowd objects on images ``indices`` of a
    :class:`~yolact_edu.data.CocoDataset` (:func:`crowded_objects`, read from the file's own
    annotations so that the ids are those COCOeval scores)."""
    coco = dataset.coco
    crowded, isolated = set(), set()
    for index in indices:
        image_id = int(dataset.image_info(index)["id"])
        annotations = [a for a in coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        if not annotations:
            continue
        masks = np.stack([coco.annToMask(a) for a in annotations])
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in annotations])
        flags = crowded_objects(masks, boxes, [a["category_id"] for a in annotations], min_fraction)
        for annotation, flag in zip(annotations, flags):
            (crowded if flag else isolated).add(int(annotation["id"]))
    return crowded, isolated


def naive_variants(model, image: np.ndarray, target: dict) -> dict[str, Detections]:
    """YOLACT and the two naive segmenters on one image, all with YOLACT's detections (boxes,
    classes, scores as :func:`~yolact_edu.training.evaluation.evaluate` keeps them: score
    threshold 0, the config's NMS and top-k)."""
    detections, logits = detect_with_semantics(model, image, score_threshold=0.0)
    height, width = image.shape[:2]
    learned = learned_class_masks(logits, height, width)
    perfect = truth_class_masks(target, model.cfg.num_classes)
    return {YOLACT: detections,
            NAIVE_LEARNED: with_masks(detections, naive_masks(learned, detections.boxes, detections.labels)),
            NAIVE_PERFECT: with_masks(detections, naive_masks(perfect, detections.boxes, detections.labels))}


def parent_task_study(model, dataset, count: int) -> dict:
    """Mask AP of YOLACT and both naive segmenters on the first ``count`` images of ``dataset``,
    on all objects and separately on crowded and isolated ones (:func:`crowded_objects`).

    Returns {"scores": :func:`~yolact_edu.lessons.two_ways.scoring.score_variants`' table (with
    "mask AP crowded" and "mask AP isolated"), "images", "crowded", "isolated" (object counts)}."""
    indices = list(range(min(count, len(dataset))))
    category_ids, _ = category_mapping(model, dataset)
    crowded, isolated = crowded_annotation_ids(dataset, indices)

    def run(index):
        return naive_variants(model, dataset.load_image(index), dataset.load_target(index))

    scores = score_variants(dataset, indices, run, category_ids, {"crowded": crowded, "isolated": isolated})
    return {"scores": scores, "images": len(indices), "crowded": len(crowded), "isolated": len(isolated)}


def claim(masks, boxes, i: int, j: int) -> float:
    """The share of object ``i``'s area that object ``j``'s pixels add inside ``i``'s box
    (masks [n,H,W], boxes [n,4] xyxy pixels): what box i wrongly claims when cut from a class map."""
    masks = np.asarray(masks, bool)
    x1, y1 = np.floor(np.asarray(boxes[i][:2], np.float64)).astype(int)
    x2, y2 = np.ceil(np.asarray(boxes[i][2:], np.float64)).astype(int)
    return float(masks[j, y1:y2, x1:x2].sum() / max(masks[i].sum(), 1))


def crowded_pairs(dataset, candidates: int | None = None) -> list[tuple[int, int, int, float]]:
    """Pairs of objects of one class whose boxes claim each other, on the first ``candidates``
    images: (image index, object i, object j, min of both :func:`claim` shares), strongest first."""
    pairs = []
    for index in range(len(dataset) if candidates is None else min(candidates, len(dataset))):
        target = dataset.load_target(index)
        labels, masks, boxes = target["labels"].tolist(), target["masks"].numpy(), target["boxes"].numpy()
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                if labels[i] == labels[j]:
                    mutual = min(claim(masks, boxes, i, j), claim(masks, boxes, j, i))
                    if mutual > 0:
                        pairs.append((index, i, j, mutual))
    return sorted(pairs, key=lambda pair: -pair[3])


def matching_detection(detections: Detections, box, label: int, min_score: float = 0.3,
                       min_iou: float = 0.0) -> int:
    """Index of the detection of class ``label`` (score >= ``min_score``) whose box overlaps ``box``
    (xyxy pixels) most, if its box IoU exceeds ``min_iou``; -1 otherwise."""
    candidates = torch.nonzero((detections.labels == label) & (detections.scores >= min_score)).flatten()
    if not len(candidates):
        return -1
    overlap = jaccard(detections.boxes[candidates].float(), torch.as_tensor(box, dtype=torch.float32)[None])[:, 0]
    return int(candidates[overlap.argmax()]) if overlap.max() > min_iou else -1


def clear_crowded_pairs(model, dataset, count: int, candidates: int | None = None, min_iou: float = 0.7,
                        min_score: float = 0.3) -> list[tuple[int, int, int, float]]:
    """The ``count`` strongest :func:`crowded_pairs` whose two objects ``model`` found as two
    separate detections with well-placed boxes (box IoU > ``min_iou``): there the naive segmenter
    gets the very same good boxes, so what goes wrong is the class map alone."""
    chosen, found = [], {}
    for index, i, j, share in crowded_pairs(dataset, candidates):
        if index not in found:
            found[index] = model.predict(dataset.load_image(index), score_threshold=min_score).cpu()
        target = dataset.load_target(index)
        label = int(target["labels"][i])
        matched = [matching_detection(found[index], target["boxes"][k], label, min_score, min_iou) for k in (i, j)]
        if -1 not in matched and matched[0] != matched[1]:
            chosen.append((index, i, j, share))
        if len(chosen) == count:
            break
    return chosen


def plot_crowded_pair(image: np.ndarray, target: dict, variants: dict[str, Detections], pair: tuple[int, int],
                      min_score: float = 0.3, axes=None):
    """Two touching objects of one class, one row each: the ground-truth mask, then the mask each
    variant gives the detection matched to that object (same detection in every variant, by box
    overlap), filled on a dimmed copy of the image with its box dashed, zoomed on the pair.
    With a class map cut by boxes, both rows show both objects: both boxes claim both.

    pair: the two object indices (e.g. from :func:`clear_crowded_pairs`). Returns axes [2, 1 + variants]."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    masks, boxes = np.asarray(target["masks"], bool), np.asarray(target["boxes"], np.float64)
    label = int(np.asarray(target["labels"])[pair[0]])
    reference = next(iter(variants.values()))
    found = [matching_detection(reference, boxes[k], label, min_score) for k in pair]
    corners = [boxes[k] for k in pair] + [reference.boxes[d].numpy() for d in found if d >= 0]
    x1, y1 = np.min([c[:2] for c in corners], 0)
    x2, y2 = np.max([c[2:] for c in corners], 0)
    margin = 0.1 * max(x2 - x1, y2 - y1)
    window = (max(x1 - margin, 0), max(y1 - margin, 0), min(x2 + margin, image.shape[1]),
              min(y2 + margin, image.shape[0]))
    if axes is None:
        _, axes = plt.subplots(2, len(variants) + 1, figsize=(3.2 * (len(variants) + 1), 6.4), squeeze=False)
    # grey and faint, so that only the masks are in colour
    dimmed = np.repeat(image.astype(np.float32).mean(2, keepdims=True) * 0.4 + 255 * 0.45, 3, 2).astype(np.uint8)
    for row, (k, d) in enumerate(zip(pair, found)):
        color = np.array(instance_color(row), np.float32)
        panels = [("ground truth", masks[k], boxes[k])]
        panels += [(name, dets.masks[d].numpy() if d >= 0 else None, dets.boxes[d].numpy() if d >= 0 else None)
                   for name, dets in variants.items()]
        for ax, (title, mask, box) in zip(axes[row], panels):
            picture = dimmed.copy()
            if mask is not None:
                picture[mask] = (picture[mask] * 0.25 + color * 0.75).astype(np.uint8)
            ax.imshow(picture)
            if box is not None:
                ax.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                       edgecolor=color / 255, linestyle="--", linewidth=1.5))
            ax.set_xlim(window[0], window[2])
            ax.set_ylim(window[3], window[1])
            ax.set_xticks([])
            ax.set_yticks([])
            if mask is None:
                title = f"{title}: no detection"
            elif title != "ground truth":
                title = f"{title}\nmask IoU {mask_pair_iou(masks[k], mask):.2f}"
            ax.set_title(title, fontsize=9)
        axes[row, 0].set_ylabel(f"object {row + 1}", fontsize=9)
    return axes


def crowded_verdict(study: dict) -> str:
    """"higher" when the naive segmenter with the perfect semantic map scores a higher mask AP on
    crowded objects than YOLACT in ``study`` (:func:`parent_task_study`), else "lower"."""
    scores = study["scores"]
    return "higher" if scores[NAIVE_PERFECT]["mask AP crowded"] > scores[YOLACT]["mask AP crowded"] else "lower"


def parent_task_sentence(study: dict) -> str:
    """What the measurement says, in words generated from ``study`` (:func:`parent_task_study`)."""
    scores = study["scores"]
    yolact, learned, perfect = (scores[name] for name in VARIANTS)

    def ap(row, key):
        return f"{row[key]:.3f}" if row[key] >= 0 else "undefined"

    parts = [f"On {study['images']} validation images ({study['crowded']} crowded objects, {study['isolated']} "
             f"isolated), mask AP: YOLACT {ap(yolact, 'mask AP')}, naive with the learned semantic map "
             f"{ap(learned, 'mask AP')}, naive with the perfect one {ap(perfect, 'mask AP')}."]
    if min(perfect["mask AP crowded"], perfect["mask AP isolated"], learned["mask AP crowded"]) < 0:
        return parts[0] + " (Too few objects of one kind here to split crowded from isolated.)"
    gain_isolated = perfect["mask AP isolated"] - learned["mask AP isolated"]
    gain_crowded = perfect["mask AP crowded"] - learned["mask AP crowded"]
    link = "but only by" if gain_crowded < gain_isolated else "and by"
    parts.append(f"A perfect semantic map changes the naive AP by {gain_isolated:+.3f} on isolated objects "
                 f"{link} {gain_crowded:+.3f} on crowded ones.")
    drop = perfect["mask AP isolated"] - perfect["mask AP crowded"]
    parts.append(f"Even perfect, the naive AP is {drop:.3f} {'lower' if drop > 0 else 'higher'} on crowded objects "
                 f"than on isolated ones ({ap(perfect, 'mask AP crowded')} against "
                 f"{ap(perfect, 'mask AP isolated')}).")
    if yolact["mask AP crowded"] > perfect["mask AP crowded"]:
        parts.append(f"On crowded objects YOLACT ({ap(yolact, 'mask AP crowded')}) beats even the perfect "
                     "semantic map: improving a parent task does not fix what the glued design cannot express.")
    else:
        parts.append(f"On crowded objects YOLACT ({ap(yolact, 'mask AP crowded')}) does not beat the perfect "
                     "semantic map here.")
    return " ".join(parts)


__all__ = ["CROWDED_FRACTION", "VARIANTS", "YOLACT", "NAIVE_LEARNED", "NAIVE_PERFECT", "detect_with_semantics",
           "learned_class_masks", "truth_class_masks", "naive_masks", "crowded_objects", "crowded_annotation_ids",
           "naive_variants", "parent_task_study", "crowded_verdict", "claim", "crowded_pairs", "matching_detection",
           "clear_crowded_pairs", "plot_crowded_pair",
           "parent_task_sentence"]
