"""Scoring several variants of a model on the same validation images (notebook 01 §2, §4).

An ablation changes one thing (the semantic map a mask is cut from, RoIPool for RoIAlign) and
asks what it is worth. Every variant here is scored on the same images with the library's own
COCO evaluation (:func:`~yolact_edu.training.evaluation.detections_to_coco` and
:func:`~yolact_edu.training.evaluation.coco_evaluate`), so the numbers mean what the training
log's mask AP means. Each image's detections are turned into COCO entries (RLE) and scored
Boundary IoU at once, never kept: a hundred images of full-size masks would not fit in memory.

Mask AP can also be scored on a subset of the ground-truth objects (:func:`ground_truth_subset`):
the other objects are set aside as COCOeval sets aside crowd regions, so a detection on them
counts neither as a hit nor as a false positive.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from pycocotools.coco import COCO

from ...data.coco import coco_from_dict
from ...detections import Detections
from ...ops.mask_iou import mask_pair_iou
from ...training.evaluation import coco_evaluate, detections_to_coco
from .resolution import boundary_iou

BIOU_SCORE = 0.3        # detections at least this confident are matched to objects for Boundary IoU


def matched_boundary_iou(detections: Detections, target: dict, min_score: float = BIOU_SCORE,
                         width: int = 2) -> list[float]:
    """Boundary IoU per ground-truth object (crowd regions skipped): against the detection of
    its class with score >= ``min_score`` whose mask overlaps it most (mask IoU), 0 when there is
    none. target: masks [n,H,W], labels [n] (and "iscrowd" [n], optional). Values in [0,1]."""
    masks = np.asarray(target["masks"], bool)
    labels = np.asarray(target["labels"])
    crowd = np.asarray(target.get("iscrowd", np.zeros(len(labels), bool)), bool)
    keep = (detections.scores >= min_score).cpu().numpy()
    found = detections.masks.cpu().numpy()[keep]
    found_labels = detections.labels.cpu().numpy()[keep]
    values = []
    for truth, label, is_crowd in zip(masks, labels, crowd):
        if is_crowd:
            continue
        same = np.flatnonzero(found_labels == label)
        if not len(same):
            values.append(0.0)
            continue
        best = same[int(np.argmax([mask_pair_iou(truth, found[j]) for j in same]))]
        values.append(boundary_iou(truth, found[best], width))
    return values


def ground_truth_subset(coco: COCO, keep: set[int]) -> COCO:
    """A copy of ``coco`` in which only the annotations whose ids are in ``keep`` are scored:
    every other one becomes a crowd region (COCOeval ignores a detection that matches it)."""
    data = copy.deepcopy(coco.dataset)
    for annotation in data["annotations"]:
        if annotation["id"] not in keep:
            annotation["iscrowd"] = 1
    return coco_from_dict(data)


def score_variants(dataset, indices: Sequence[int], run: Callable[[int], Mapping[str, Detections]],
                   category_ids, subsets: Mapping[str, set[int]] | None = None) -> dict[str, dict]:
    """Score every variant that ``run`` produces on the images ``indices`` of ``dataset``.

    run(index) -> {variant name: Detections of that image} (same variants for every image).
    category_ids: label -> the file's category id (e.g. from
        :func:`~yolact_edu.training.evaluation.category_mapping`).
    subsets: {name: annotation ids} to score mask AP on those objects only (:func:`ground_truth_subset`).

    Returns {variant: {"mask AP", "mask AP50", "mask AP75", "box AP" (all objects), "boundary IoU"
    (mean of :func:`matched_boundary_iou` over the objects), "objects", and "mask AP <subset>" for
    each subset}}; AP values in [0,1] or COCOeval's -1 (no object to score).
    """
    results: dict[str, dict[str, list]] = {}
    biou: dict[str, list[float]] = {}
    image_ids = []
    for index in indices:
        variants = run(index)
        target = dataset.load_target(index)
        image_id = int(dataset.image_info(index)["id"])
        image_ids.append(image_id)
        for name, detections in variants.items():
            entries = detections_to_coco(detections, image_id, category_ids)
            bucket = results.setdefault(name, {"bbox": [], "segm": []})
            bucket["bbox"] += entries["bbox"]
            bucket["segm"] += entries["segm"]
            biou.setdefault(name, []).extend(matched_boundary_iou(detections, target))
    scored: dict[str, dict] = {}
    subset_cocos = {name: ground_truth_subset(dataset.coco, ids) for name, ids in (subsets or {}).items()}
    for name, entries in results.items():
        metrics = coco_evaluate(dataset.coco, entries, image_ids=image_ids, verbose=False)
        row = {"mask AP": metrics["segm"]["AP"], "mask AP50": metrics["segm"]["AP50"],
               "mask AP75": metrics["segm"]["AP75"], "box AP": metrics["bbox"]["AP"],
               "boundary IoU": float(np.mean(biou[name])) if biou[name] else float("nan"),
               "objects": len(biou[name])}
        for subset, coco in subset_cocos.items():
            row[f"mask AP {subset}"] = coco_evaluate(coco, entries["segm"], ("segm",), image_ids=image_ids,
                                                     verbose=False)["segm"]["AP"]
        scored[name] = row
    return scored


def study_rows(scores: Mapping[str, Mapping], columns: Sequence[str]) -> list[dict]:
    """:func:`score_variants`' table as rows for :func:`~yolact_edu.lessons.tables.markdown_table`:
    one per variant, the given ``columns`` formatted to 3 decimals ("-" for COCOeval's undefined -1)."""
    return [{"variant": name, **{column: f"{row[column]:.3f}" if row[column] >= 0 else "-" for column in columns}}
            for name, row in scores.items()]


def with_masks(detections: Detections, masks: torch.Tensor) -> Detections:
    """The same detections (boxes, scores, labels, class names) with other masks [N,H,W] bool."""
    if masks.shape[0] != len(detections):
        raise ValueError(f"{masks.shape[0]} masks for {len(detections)} detections")
    return Detections(boxes=detections.boxes, scores=detections.scores, labels=detections.labels,
                      masks=masks.bool(), class_names=detections.class_names)


__all__ = ["BIOU_SCORE", "matched_boundary_iou", "ground_truth_subset", "score_variants", "study_rows",
           "with_masks"]
