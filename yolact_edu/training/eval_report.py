"""The numbers behind an evaluation report: per-class AP, precision-recall curves, a confusion matrix.

    >>> from yolact_edu.training.evaluation import evaluate_with_details
    >>> run = evaluate_with_details(model, dataset, ground_truth="file")
    >>> per_class_ap(run.evaluators["segm"])["circle"]["AP"]
    >>> curves = precision_recall_curves(run.evaluators["bbox"])     # recall, and precision per IoU
    >>> confusion = confusion_matrix(run.ground_truth, run.results["bbox"], run.image_ids)

Per-class AP and the curves are read from an accumulated ``COCOeval``'s precision table,
``eval["precision"]`` [T IoU thresholds, R=101 recall points, K categories, A area ranges,
M detection caps], at area "all" and 100 detections, as ``summarize`` reads AP: so the mean of a
class's row is its AP, and the mean of the curves over recall is AP50, AP75 and AP (DESIGN §5: no
hand-written AP). A precision of -1 there means "no ground truth of this category".

The confusion matrix is not a COCO figure; it follows the detection libraries' convention
(Ultralytics): detections scoring at least ``score_threshold`` are matched one to one to ground-truth
objects of any class at IoU >= ``iou_threshold``, highest IoU first. Rows are the true class, columns
the predicted one; the last row and column are "background": a detection that matches nothing is a
background row entry (a false positive), an object no detection matches is a background column entry
(a miss). A detection that matches nothing but lies on a crowd region is ignored, as COCOeval does.
Drawing is :mod:`yolact_edu.viz.eval_plots`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["BACKGROUND", "CURVE_IOUS", "per_class_ap", "per_class_table", "precision_recall_curves",
           "confusion_matrix"]

BACKGROUND = "background"
CURVE_IOUS: tuple[str, ...] = ("IoU 0.50", "IoU 0.75", "IoU 0.50:0.95")
"""The curves :func:`precision_recall_curves` returns: at IoU 0.5 (area = AP50), 0.75 (AP75) and
the mean over COCO's ten thresholds (area = AP)."""


def _precision(evaluator: COCOeval) -> np.ndarray:
    """The precision table at area "all" and the largest detection cap: [T, R, K]."""
    if not getattr(evaluator, "eval", None):
        raise ValueError("the COCOeval has not been accumulated: call evaluate() and accumulate() first")
    area = evaluator.params.areaRngLbl.index("all")
    return evaluator.eval["precision"][:, :, :, area, -1]


def _iou_index(evaluator: COCOeval, iou: float) -> int:
    index = int(np.argmin(np.abs(evaluator.params.iouThrs - iou)))
    if abs(evaluator.params.iouThrs[index] - iou) > 1e-6:
        raise ValueError(f"IoU {iou} is not one of COCOeval's thresholds {list(evaluator.params.iouThrs)}")
    return index


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def per_class_ap(evaluator: COCOeval) -> dict[str, dict]:
    """AP per category of an accumulated ``COCOeval`` (area "all", 100 detections).

    Returns ``{category name: {"category_id", "AP", "AP50", "AP75", "objects"}}`` in category-id
    order: AP over IoU .50:.95, at .50 and at .75, each in [0, 1] or -1 where the scored images hold
    no object of the category; "objects" counts its non-crowd ground-truth objects there. The mean
    of "AP" over the categories that have objects is COCOeval's AP.
    """
    precision = _precision(evaluator)                                      # [T, R, K]
    coco_gt: COCO = evaluator.cocoGt
    images = set(evaluator.params.imgIds)
    at50, at75 = _iou_index(evaluator, 0.5), _iou_index(evaluator, 0.75)
    objects = Counter(ann["category_id"] for ann in coco_gt.anns.values()
                      if ann["image_id"] in images and not ann.get("iscrowd", 0))
    table = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        category = coco_gt.cats[category_id]
        table[str(category.get("name", category_id))] = {
            "category_id": int(category_id), "AP": _mean_valid(precision[:, :, k]),
            "AP50": _mean_valid(precision[at50, :, k]), "AP75": _mean_valid(precision[at75, :, k]),
            "objects": objects[category_id]}
    return table


def per_class_table(per_task: Mapping[str, Mapping[str, dict]]) -> str:
    """A compact text table of :func:`per_class_ap` for each task, one row per class, e.g.::

        class       objects   box AP  AP50   mask AP  AP50
        circle           35    0.612 0.901     0.540 0.880

    per_task: ``{"bbox": per_class_ap(...), "segm": per_class_ap(...)}`` (either may be absent).
    An undefined AP (no object of the class) is shown as "-".
    """
    titles = {"bbox": "box", "segm": "mask"}
    tasks = [task for task in ("bbox", "segm") if task in per_task]
    if not tasks:
        raise ValueError("per_task holds neither 'bbox' nor 'segm'")
    names = list(per_task[tasks[0]])
    width = max(len("class"), *(len(name) for name in names))

    def number(value: float) -> str:
        return "    -" if value < 0 else f"{value:.3f}"

    header = f"{'class':<{width}}  objects" + "".join(f"  {titles[t] + ' AP':>8} {'AP50':>5}" for t in tasks)
    rows = [header]
    for name in names:
        row = f"{name:<{width}}  {per_task[tasks[0]][name]['objects']:>7}"
        for task in tasks:
            entry = per_task[task][name]
            row += f"  {number(entry['AP']):>8} {number(entry['AP50']):>5}"
        rows.append(row)
    return "\n".join(rows)


def precision_recall_curves(evaluator: COCOeval) -> dict[str, np.ndarray]:
    """Precision against recall, averaged over the categories that have ground truth.

    Returns ``{"recall": [R] in [0, 1] (COCO's 101 points), "IoU 0.50": [R], "IoU 0.75": [R],
    "IoU 0.50:0.95": [R]}``, precision in [0, 1] (COCO's interpolated precision: the best precision
    at this recall or beyond, 0 past the highest recall reached). The mean of each curve is AP50,
    AP75 and AP of ``evaluator.stats``. Raises ValueError when no category has ground truth.
    """
    precision = _precision(evaluator)                                      # [T, R, K]
    has_objects = (precision > -1).all(axis=(0, 1))                         # [K]: -1 = no ground truth
    if not has_objects.any():
        raise ValueError("no category has ground truth among the scored images: there is no curve")
    per_iou = precision[:, :, has_objects].mean(axis=2)                      # [T, R]
    return {"recall": np.asarray(evaluator.params.recThrs, dtype=float),
            "IoU 0.50": per_iou[_iou_index(evaluator, 0.5)], "IoU 0.75": per_iou[_iou_index(evaluator, 0.75)],
            "IoU 0.50:0.95": per_iou.mean(axis=0)}


def _regions(entries: Sequence[Mapping], iou_type: str) -> list:
    """What pycocotools' ``iou`` compares: [x, y, w, h] boxes or RLE dicts."""
    if iou_type == "bbox":
        return [list(map(float, entry["bbox"])) for entry in entries]
    return [entry["segmentation"] for entry in entries]


def _ious(detections: list, objects: list, crowd: bool) -> np.ndarray:
    """[D, G] IoU of detections and objects (for a crowd region: intersection over detection area)."""
    if not detections or not objects:
        return np.zeros((len(detections), len(objects)))
    if isinstance(detections[0], list):
        detections, objects = np.asarray(detections, dtype=float), np.asarray(objects, dtype=float)
    return np.asarray(mask_utils.iou(detections, objects, [int(crowd)] * len(objects))).reshape(
        len(detections), len(objects))


def confusion_matrix(coco_gt: COCO, results: Sequence[Mapping], image_ids: Iterable[int] | None = None, *,
                     iou_type: str = "bbox", iou_threshold: float = 0.5, score_threshold: float = 0.25) -> dict:
    """Which class each object was detected as, with a background row and column.

    coco_gt: the ground truth (e.g. :class:`~yolact_edu.training.evaluation.Evaluation`'s).
    results: COCO result entries of one IoU type (``image_id``, ``category_id``, ``score`` and
        ``bbox`` [x, y, w, h] or ``segmentation`` RLE), as :func:`detections_to_coco` writes them.
    image_ids: the images to count (default: every image of ``coco_gt``).
    iou_type: "bbox" compares boxes, "segm" masks.
    iou_threshold / score_threshold: a detection counts when its score is >= ``score_threshold``;
        it matches an object when their IoU is >= ``iou_threshold`` (in [0, 1]).

    Returns ``{"classes": [names..., "background"], "matrix": [[int]] (K+1)x(K+1) with rows the
    true class and columns the predicted class, "iou_type", "iou_threshold", "score_threshold"}``.
    Row sums over the class rows are the objects (non-crowd) of each class; column sums over the
    class columns the detections kept of each predicted class, minus those ignored on crowds.
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    for name, value in (("iou_threshold", iou_threshold), ("score_threshold", score_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    category_ids = sorted(coco_gt.cats)
    column = {category_id: k for k, category_id in enumerate(category_ids)}
    background = len(category_ids)
    images = set(coco_gt.imgs) if image_ids is None else {int(i) for i in image_ids}
    matrix = np.zeros((background + 1, background + 1), dtype=np.int64)
    by_image: dict[int, list] = {i: [] for i in images}
    for entry in results:
        if entry["image_id"] in images and entry["score"] >= score_threshold:
            by_image[entry["image_id"]].append(entry)
    for image_id in sorted(images):
        detections = sorted(by_image[image_id], key=lambda e: -e["score"])
        annotations = [a for a in coco_gt.imgToAnns.get(image_id, []) if a["category_id"] in column]
        objects = [a for a in annotations if not a.get("iscrowd", 0)]
        crowds = [a for a in annotations if a.get("iscrowd", 0)]
        if iou_type == "segm":
            object_regions = [coco_gt.annToRLE(a) for a in objects]
            crowd_regions = [coco_gt.annToRLE(a) for a in crowds]
        else:
            object_regions, crowd_regions = _regions(objects, "bbox"), _regions(crowds, "bbox")
        detected = _regions(detections, iou_type)
        ious = _ious(detected, object_regions, crowd=False)                       # [D, G]
        matched_detections, matched_objects = set(), set()
        # one to one, highest IoU first, whatever the classes: a confusion is a match of two classes
        for d, g in sorted(zip(*np.nonzero(ious >= iou_threshold)), key=lambda pair: -ious[pair]):
            if d in matched_detections or g in matched_objects:
                continue
            matched_detections.add(d)
            matched_objects.add(g)
            matrix[column[objects[g]["category_id"]], column[detections[d]["category_id"]]] += 1
        for g, annotation in enumerate(objects):
            if g not in matched_objects:
                matrix[column[annotation["category_id"]], background] += 1
        on_crowd = _ious(detected, crowd_regions, crowd=True)                     # [D, C]
        for d, entry in enumerate(detections):
            if d in matched_detections:
                continue
            if on_crowd.shape[1] and on_crowd[d].max() >= iou_threshold:
                continue                                                          # COCOeval ignores these too
            matrix[background, column[entry["category_id"]]] += 1
    names = [str(coco_gt.cats[c].get("name", c)) for c in category_ids]
    return {"classes": [*names, BACKGROUND], "matrix": matrix.tolist(), "iou_type": iou_type,
            "iou_threshold": float(iou_threshold), "score_threshold": float(score_threshold)}
