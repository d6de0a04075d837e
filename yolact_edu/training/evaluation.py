"""COCO evaluation: Detections -> COCO results -> pycocotools ``COCOeval`` -> the 12 standard numbers.

    >>> from yolact_edu.training.evaluation import evaluate
    >>> metrics = evaluate(model, CocoDataset(ann_file, image_dir, max_size=model.cfg.max_size))
    >>> metrics["segm"]["AP"], metrics["bbox"]["AP50"]

Three steps, each usable on its own:

* :func:`detections_to_coco` turns one image's :class:`~yolact_edu.detections.Detections` into
  COCO result entries, kept apart per IoU type: ``{"bbox": [...], "segm": [...]}``. For YOLACT++
  the box entries carry the class scores and the mask entries the re-scored ``mask_scores``, as
  the original's ``eval.py`` does (box AP from box scores, mask AP ranked by mask quality).
* :func:`coco_evaluate` checks that the results belong to the annotation file, then runs
  ``COCOeval`` once per IoU type. All AP/AR arithmetic is pycocotools' (DESIGN §5).
* :func:`evaluate` runs a model over a :class:`~yolact_edu.data.CocoDataset` and does both;
  :func:`evaluate_with_details` also returns the results, the ground truth and the ``COCOeval``
  objects (:class:`Evaluation`), which :mod:`~yolact_edu.training.eval_report` turns into per-class
  AP, precision-recall curves and a confusion matrix.

Which ground truth (:func:`ground_truth_of`): "dataset" scores against the annotations the dataset
kept (``dataset.coco``; the default, what the Trainer's validation uses), "file" against the
annotation file as plain pycocotools reads it, so AP matches any other tool on the same file
(``yolact-edu eval``'s default). They differ only where the dataset skips an annotation that
pycocotools scores (a zero-area box, an object outside the image): "file" counts it as a miss.

Which images are scored: ``COCOeval`` scores every image of the annotation file unless told
otherwise, so an image the model never saw would count all its objects as missed.
:func:`evaluate` therefore restricts ``params.imgIds`` to the images it ran on (``max_images``,
or images the dataset could not read, shrink that set); ``all_images=True`` scores the whole
file instead. :func:`coco_evaluate` takes the list as ``image_ids`` -- it cannot infer it from
the results, because an image where the model found nothing has no result entries but must
still count its objects as missed.

A metric of -1 is COCOeval's "undefined": no ground-truth object of that size range (or none at
all) among the scored images. It is kept as -1, not turned into 0, so it cannot be mistaken for
a model that found nothing.
"""
from __future__ import annotations

import copy
import json
import math
import operator
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm.auto import tqdm

from ..data.coco import coco_from_dict, collate, quietly
from ..detections import Detections

__all__ = ["IOU_TYPES", "METRIC_NAMES", "GROUND_TRUTHS", "Evaluation", "ap_at_iou", "detections_to_coco",
           "coco_evaluate", "run_cocoeval", "evaluate", "evaluate_with_details", "ground_truth_of",
           "category_mapping"]

IOU_TYPES: tuple[str, ...] = ("bbox", "segm")

METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                                 "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""Names of ``COCOeval.stats``, in its order: AP at IoU .50:.05:.95, at .50, at .75, AP for small
(< 32² px), medium and large objects; AR with at most 1, 10, 100 detections per image, AR for
small, medium and large objects (100 detections). Each metrics dict also has "AP90": AP at IoU
0.90 alone, read from COCOeval's precision table (a boundary-sensitive figure: at 0.9 a mask
must follow the object's outline, not just cover it)."""


# -- Detections -> COCO results ----------------------------------------------------------------
def _as_int_id(value, what: str) -> int:
    """An int from an int-like id (int, numpy integer, 0-d integer tensor); ValueError otherwise.

    Floats are refused rather than rounded: an id of 3.5 is a bug upstream, not an id.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be an integer id, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer id, got {value!r} ({type(value).__name__})") from None


def detections_to_coco(detections: Detections, image_id: int,
                       category_ids: Sequence[int] | Mapping[int, int]) -> dict[str, list[dict]]:
    """One image's detections -> COCO result entries, per IoU type.

    detections: boxes [N,4] xyxy pixels, scores [N], labels [N] 0-based, masks [N,H,W] bool at
        the image size, mask_scores [N] or None.
    image_id: the image's COCO id (int-like; ValueError otherwise).
    category_ids: label -> COCO category id, e.g. ``dataset.category_ids`` (a sequence) or a dict.

    Returns ``{"bbox": [...], "segm": [...]}``, N entries each:

    * "bbox": ``{"image_id", "category_id", "bbox": [x, y, w, h] floats, "score": detections.scores}``
    * "segm": ``{"image_id", "category_id", "segmentation": compressed RLE with str counts,
      "score": detections.mask_scores if not None (YOLACT++) else detections.scores}``

    The mask entries deliberately have no "bbox": ``COCO.loadRes`` would then take the box area
    instead of the mask area for the small/medium/large split of the mask metrics.
    """
    image_id = _as_int_id(image_id, "image_id")
    num = len(detections)
    labels = detections.labels.tolist()
    known = category_ids.keys() if isinstance(category_ids, Mapping) else range(len(category_ids))
    unknown = sorted({label for label in labels if label not in known})
    if unknown:
        raise ValueError(f"image {image_id}: labels {unknown} have no category id "
                         f"(category_ids covers {len(known)} labels)")
    categories = [int(category_ids[label]) for label in labels]
    boxes = detections.boxes.detach().float().cpu().reshape(-1, 4).tolist()
    box_scores = detections.scores.detach().float().cpu().tolist()
    mask_scores = box_scores if detections.mask_scores is None else \
        detections.mask_scores.detach().float().cpu().tolist()
    masks = detections.masks.detach().cpu()
    if masks.shape[0] != num:
        raise ValueError(f"image {image_id}: {masks.shape[0]} masks for {num} detections")
    rles = []
    if num:
        # encode wants [H,W,N] uint8 in Fortran (column-major) order, COCO's RLE scan order
        rles = mask_utils.encode(np.asfortranarray(masks.numpy().astype(np.uint8).transpose(1, 2, 0)))
    box_results, mask_results = [], []
    for (x1, y1, x2, y2), category, box_score, mask_score, rle in zip(
            boxes, categories, box_scores, mask_scores, rles):
        box_results.append({"image_id": image_id, "category_id": category,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": box_score})
        mask_results.append({"image_id": image_id, "category_id": category,
                             "segmentation": {"size": [int(s) for s in rle["size"]],
                                              "counts": rle["counts"].decode("ascii")},  # JSON-ready
                             "score": mask_score})
    return {"bbox": box_results, "segm": mask_results}


# -- checking results against the annotation file ------------------------------------------
def _some(ids: Iterable, limit: int = 5) -> str:
    ids = sorted(ids)
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def _finite(value) -> bool:
    return isinstance(value, (Real, np.number)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(float(value))


def _clean_entry(entry, where: str, iou_type: str) -> dict:
    """A checked copy of one result entry with plain int ids and float score (loadRes mutates its
    input, so we never hand it the caller's dicts)."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} is a {type(entry).__name__}, not a dict")
    key = "bbox" if iou_type == "bbox" else "segmentation"
    for name in ("image_id", "category_id", "score", key):
        if name not in entry:
            raise ValueError(f"{where} has no field '{name}' (needed for {iou_type} evaluation)")
    clean = {"image_id": _as_int_id(entry["image_id"], f"{where}['image_id']"),
             "category_id": _as_int_id(entry["category_id"], f"{where}['category_id']")}
    if not _finite(entry["score"]):
        raise ValueError(f"{where}['score'] must be a finite number, got {entry['score']!r}")
    clean["score"] = float(entry["score"])
    if iou_type == "bbox":
        box = entry["bbox"]
        if not (isinstance(box, (Sequence, np.ndarray)) and len(box) == 4 and all(_finite(v) for v in box)):
            raise ValueError(f"{where}['bbox'] must be 4 finite numbers [x, y, w, h], got {box!r}")
        if box[2] < 0 or box[3] < 0:
            raise ValueError(f"{where}['bbox'] has a negative width or height: {list(box)} is [x, y, w, h]")
        clean["bbox"] = [float(v) for v in box]
    else:
        rle = entry["segmentation"]
        if not (isinstance(rle, Mapping) and isinstance(rle.get("counts"), (str, bytes))
                and isinstance(rle.get("size"), (Sequence, np.ndarray)) and len(rle["size"]) == 2):
            raise ValueError(f"{where}['segmentation'] must be a compressed RLE dict "
                             f"{{'size': [h, w], 'counts': str}} (pycocotools.mask.encode), "
                             f"got {type(rle).__name__}")
        clean["segmentation"] = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"]}
        # no "bbox": loadRes would use the box area for the size ranges of mask AP
    return clean


def _checked_results(coco_gt: COCO, entries, iou_type: str, image_ids: set[int]) -> list[dict]:
    """Clean copies of the entries, or a ValueError naming what does not match ``coco_gt``."""
    if not isinstance(entries, (list, tuple)):
        raise ValueError(f"{iou_type} results must be a list of dicts, got {type(entries).__name__}")
    clean = [_clean_entry(e, f"{iou_type} results[{i}]", iou_type) for i, e in enumerate(entries)]
    result_images = {e["image_id"] for e in clean}
    unknown_images = result_images - set(coco_gt.imgs)
    if unknown_images:
        raise ValueError(f"{iou_type} results name image ids that are not in the annotation file: "
                         f"{_some(unknown_images)} (the file has {len(coco_gt.imgs)} images)")
    outside = result_images - image_ids
    if outside:
        raise ValueError(f"{iou_type} results name image ids outside image_ids, which COCOeval would "
                         f"silently ignore: {_some(outside)}")
    unknown_categories = {e["category_id"] for e in clean} - set(coco_gt.cats)
    if unknown_categories:
        raise ValueError(f"{iou_type} results name category ids that are not in the annotation file: "
                         f"{_some(unknown_categories)} (it has {_some(coco_gt.cats, 10)})")
    if iou_type == "segm":
        for i, e in enumerate(clean):
            info = coco_gt.imgs[e["image_id"]]
            if e["segmentation"]["size"] != [int(info["height"]), int(info["width"])]:
                raise ValueError(f"segm results[{i}]: RLE size {e['segmentation']['size']} differs from "
                                 f"image {e['image_id']}'s [height, width] "
                                 f"[{info['height']}, {info['width']}]")
    return clean


def _results_coco(coco_gt: COCO, results: list[dict]) -> COCO:
    """The results as a COCO object. ``loadRes`` fails on an empty list (it looks at
    ``results[0]``), so an empty result set is built directly: no detections, same images."""
    if results:
        return quietly(coco_gt.loadRes, results)
    return coco_from_dict({"images": list(coco_gt.dataset["images"]),
                           "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
                           "annotations": []})


# -- COCOeval ------------------------------------------------------------------------------
def coco_evaluate(coco_gt: COCO | str | Path, results: Mapping[str, list[dict]] | list[dict],
                  iou_types: Sequence[str] = IOU_TYPES, *, image_ids: Iterable[int] | None = None,
                  verbose: bool = True) -> dict[str, dict[str, float]]:
    """COCO AP/AR of ``results`` against ``coco_gt``, one ``COCOeval`` run per IoU type.

    coco_gt: a pycocotools ``COCO`` (e.g. ``dataset.coco``) or the path of an instances JSON.
    results: ``{"bbox": [...], "segm": [...]}`` as from :func:`detections_to_coco` (lists
        concatenated over images), or one list whose entries carry both "bbox" and
        "segmentation" (used for every IoU type; its "bbox" is dropped for segm).
    iou_types: any of "bbox", "segm".
    image_ids: the images the results cover (``params.imgIds``): every image the model ran on,
        including those where it found nothing. None scores all images of the annotation file
        (and warns if the results touch only some of them).
    verbose: print COCOeval's standard 12-line table per IoU type; False prints nothing.

    Returns ``{iou_type: {name: value for name in METRIC_NAMES}}``, values in [0, 1], or -1
    where COCOeval has no ground truth to score (e.g. "APs" when no object is small).
    Raises ValueError, naming the offenders, for results that do not correspond to the
    annotation file: unknown image or category ids, ids outside ``image_ids``, malformed
    entries, RLE sizes that differ from the image's. Empty results are fine: AP and AR are 0.
    """
    return run_cocoeval(coco_gt, results, iou_types, image_ids=image_ids, verbose=verbose)[0]


def run_cocoeval(coco_gt: COCO | str | Path, results: Mapping[str, list[dict]] | list[dict],
                 iou_types: Sequence[str] = IOU_TYPES, *, image_ids: Iterable[int] | None = None,
                 verbose: bool = True) -> tuple[dict[str, dict[str, float]], dict[str, COCOeval]]:
    """:func:`coco_evaluate` (same arguments), returning its metrics and the accumulated ``COCOeval``
    of each IoU type, whose ``eval["precision"]`` :mod:`~yolact_edu.training.eval_report` reads per
    class and per recall point."""
    if isinstance(coco_gt, (str, Path)):
        coco_gt = quietly(COCO, str(coco_gt))
    iou_types = (iou_types,) if isinstance(iou_types, str) else tuple(iou_types)
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_types must be among {IOU_TYPES}, got {iou_type!r}")
    if image_ids is None:
        scored = set(coco_gt.imgs)
    else:
        scored = {_as_int_id(i, "image_ids entry") for i in image_ids}
        unknown = scored - set(coco_gt.imgs)
        if unknown:
            raise ValueError(f"image_ids not in the annotation file: {_some(unknown)}")
    if not scored:
        raise ValueError("no images to evaluate (image_ids is empty or the annotation file has no images)")

    metrics, evaluators = {}, {}
    for iou_type in iou_types:
        if isinstance(results, Mapping):
            if iou_type not in results:
                raise ValueError(f"results have no {iou_type!r} list (they have {sorted(results)}); "
                                 f"pass iou_types={tuple(k for k in results if k in IOU_TYPES)}")
            entries = results[iou_type]
        else:
            entries = results
        checked = _checked_results(coco_gt, entries, iou_type, scored)
        if image_ids is None and checked:
            covered = {e["image_id"] for e in checked}
            if len(covered) < len(scored):
                warnings.warn(f"{iou_type} results cover {len(covered)} of the {len(scored)} images in the "
                              "annotation file; the objects of the others count as missed. Pass image_ids "
                              "to score only the images the model ran on.", stacklevel=3)
        evaluator = COCOeval(coco_gt, _results_coco(coco_gt, checked), iou_type)
        evaluator.params.imgIds = sorted(scored)
        quietly(evaluator.evaluate)      # progress chatter; the table below is what matters
        quietly(evaluator.accumulate)
        if verbose:
            print(f"COCO {iou_type}: {len(scored)} images, {len(checked)} detections")
            evaluator.summarize()
        else:
            quietly(evaluator.summarize)
        metrics[iou_type] = {name: float(value) for name, value in zip(METRIC_NAMES, evaluator.stats)}
        metrics[iou_type]["AP90"] = ap_at_iou(evaluator, 0.9)
        evaluators[iou_type] = evaluator
    return metrics, evaluators


def ap_at_iou(evaluator: COCOeval, iou: float) -> float:
    """AP at one IoU threshold of an accumulated COCOeval (all areas, 100 detections), as
    ``summarize`` computes AP50 and AP75: the mean precision over recall points and categories
    that have ground truth; -1 when none has."""
    thresholds = evaluator.params.iouThrs
    index = int(np.argmin(np.abs(thresholds - iou)))
    if abs(thresholds[index] - iou) > 1e-6:
        raise ValueError(f"IoU {iou} is not one of COCOeval's thresholds {list(thresholds)}")
    area = evaluator.params.areaRngLbl.index("all")
    precision = evaluator.eval["precision"][index, :, :, area, -1]        # [recall points, categories]
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else -1.0


# -- which model class is which category of the file ---------------------------------------
def _placeholder_names(names: Sequence[str]) -> bool:
    """True for the ``class_0 .. class_{n-1}`` that ``cfg.replace(num_classes=n)`` invents."""
    return list(names) == [f"class_{i}" for i in range(len(names))]


def category_mapping(model: torch.nn.Module, dataset) -> tuple[dict[int, int], str | None]:
    """The file's category id for each of the model's labels, and a note when classes had to be
    matched by name; a ValueError when the model's classes are not the file's.

    A yolact_edu checkpoint stores the category ids it was trained with (``model.category_ids``,
    set by :func:`~yolact_edu.training.checkpoint.load_model`) and its class names (``cfg.class_names``).
    Same ids and names: used as they are. The same names under other ids or in another order:
    matched by name (the note says so). Anything else is refused rather than scored: a swapped
    id would silently count every detection of two classes as a false positive.
    """
    names, file_names = list(model.cfg.class_names), list(dataset.class_names)
    file_ids = list(dataset.category_ids)
    if len(names) != len(file_names):
        raise ValueError(f"the model predicts {len(names)} classes but {dataset.annotation_file} has "
                         f"{len(file_names)} categories")
    model_ids = getattr(model, "category_ids", None)
    model_ids = list(model_ids) if model_ids is not None else None
    by_position = {label: file_ids[label] for label in range(len(names))}
    if names == file_names and model_ids in (None, file_ids):
        return by_position, None
    if model_ids is None and _placeholder_names(names):
        return by_position, None              # an unnamed model: positions are all there is
    if len(set(names)) == len(names) and sorted(names) == sorted(file_names):
        mapping = {label: file_ids[file_names.index(name)] for label, name in enumerate(names)}
        was = (lambda label: model_ids[label]) if model_ids else (lambda label: file_ids[label])
        moved = [f"{name} {was(label)} -> {mapping[label]}" for label, name in enumerate(names)
                 if was(label) != mapping[label]]
        source = "id in the checkpoint" if model_ids else "id at the model's position in the file"
        return mapping, (f"the model's classes were matched to {dataset.annotation_file}'s categories by name "
                         f"({source} -> id in the file: {', '.join(moved)})")
    differ = [f"{model_ids[label] if model_ids else label + 1} {names[label]!r} vs "
              f"{file_ids[label]} {file_names[label]!r}"
              for label in range(len(names)) if names[label] != file_names[label]
              or (model_ids is not None and model_ids[label] != file_ids[label])]
    raise ValueError(f"the model's classes do not match the categories of {dataset.annotation_file} "
                     f"(model id/name vs file id/name: {', '.join(differ[:5])}"
                     f"{', ...' if len(differ) > 5 else ''}); scores against it would be meaningless")


# -- which ground truth: the file as pycocotools reads it, or what the dataset kept ---------------
GROUND_TRUTHS: tuple[str, ...] = ("dataset", "file")
"""What :func:`evaluate` scores against: "dataset", the annotations the :class:`~yolact_edu.data.CocoDataset`
kept (``dataset.coco``: what the model was trained and is validated on), or "file", the annotation file
as plain pycocotools reads it, so AP matches any other tool scoring the same results on the same file."""

# Skip reasons of CocoDataset for annotations whose box and mask pycocotools reads as written (a
# degenerate box, an object outside the image): it scores them, as misses. The others (no box, a
# polygon or RLE that cannot be decoded, an RLE of another size than its image) crash pycocotools or
# turn into garbage there, so no tool gives a number for them to match; "file" leaves them out too.
SCORED_BY_PYCOCOTOOLS = frozenset({"zero-area box", "box outside the image"})


def _counts(reasons: Mapping[str, list]) -> str:
    return ", ".join(f"{reason} {len(ids)}" for reason, ids in reasons.items())


def ground_truth_of(dataset, source: str = "dataset") -> tuple[COCO, str]:
    """The ground truth to score ``dataset``'s images against, and one line saying what it holds.

    dataset: a :class:`~yolact_edu.data.CocoDataset` (its ``coco``, ``report`` and ``annotation_file``).
    source: one of :data:`GROUND_TRUTHS`. "dataset" returns ``dataset.coco`` (annotations the dataset
        skipped are not there). "file" reads the annotation file again and keeps every annotation
        plain pycocotools scores, including those the dataset skips for a degenerate or outside box
        (:data:`SCORED_BY_PYCOCOTOOLS`); only annotations pycocotools cannot score are left out, and
        an "area" it could not read (missing, not a number) is taken from the mask as the dataset does.

    Returns (COCO, line), the line counting what differs from the file, by reason, e.g.
    ``"ground truth: instances_val.json as pycocotools reads it, 3 annotations the dataset skips
    included (zero-area box 2, box outside the image 1)"``.
    """
    if source not in GROUND_TRUTHS:
        raise ValueError(f"ground truth must be one of {GROUND_TRUTHS}, got {source!r}")
    report = dataset.report
    skipped = report.skipped_annotations
    scored = {reason: ids for reason, ids in skipped.items() if reason in SCORED_BY_PYCOCOTOOLS}
    unreadable = {reason: ids for reason, ids in skipped.items() if reason not in SCORED_BY_PYCOCOTOOLS}
    name = Path(dataset.annotation_file).name
    if source == "dataset":
        line = f"ground truth: the annotations of {name} the dataset keeps"
        line += (f"; {report.num_skipped} it skips are left out ({_counts(skipped)})" if skipped
                 else " (it skips none)")
        return dataset.coco, line
    data = json.loads(Path(dataset.annotation_file).read_text(encoding="utf-8"))
    left_out = {i for ids in unreadable.values() for i in ids}
    annotations = [ann for ann in data["annotations"] if ann["id"] not in left_out]
    coco = coco_from_dict({**data, "annotations": annotations})
    repaired = 0
    for ann in coco.anns.values():
        if not isinstance(ann.get("area"), (int, float)):
            # COCOeval sorts objects into small/medium/large by this field and fails without it
            ann["area"] = float(mask_utils.area(coco.annToRLE(ann)))
            repaired += 1
    parts = [] if skipped else ["the dataset skips none of its annotations"]
    if scored:
        parts.append(f"{sum(map(len, scored.values()))} annotations the dataset skips included ({_counts(scored)})")
    if unreadable:
        parts.append(f"{len(left_out)} it skips that pycocotools cannot score left out ({_counts(unreadable)})")
    if repaired:
        parts.append(f"area taken from the mask for {repaired}")
    return coco, f"ground truth: {name} as pycocotools reads it, " + "; ".join(parts)


def _require_ground_truth(coco: COCO, annotation_file, image_ids: Sequence[int]) -> None:
    """ValueError unless the images hold a non-crowd ground-truth object (crowds never count as
    misses): without one COCOeval's AP is -1, "undefined", which must not pass for a score."""
    if not any(not ann.get("iscrowd", 0) for i in image_ids for ann in coco.imgToAnns.get(i, [])):
        raise ValueError(f"{annotation_file}: the {len(image_ids)} images to score hold no ground-truth "
                         "object (none, only crowd regions, or only skipped annotations), so AP is "
                         "undefined; evaluate on annotated images")


# -- model + dataset -> metrics --------------------------------------------------------------
@dataclass
class Evaluation:
    """Everything one :func:`evaluate_with_details` run saw, for reports beyond the 12 numbers.

    metrics: :func:`evaluate`'s dict (JSON-ready).
    results: ``{"bbox": [...], "segm": [...]}``, the COCO result entries of every image run
        (:func:`detections_to_coco`; category ids of the file): what a results file holds.
    ground_truth: the pycocotools ``COCO`` they were scored against (see :func:`ground_truth_of`).
    ground_truth_note: :func:`ground_truth_of`'s line saying what that ground truth holds.
    image_ids: the images scored (``params.imgIds``), sorted.
    evaluators: the accumulated ``COCOeval`` per IoU type (``eval["precision"]`` [T,R,K,A,M]).
    """

    metrics: dict
    results: dict[str, list[dict]]
    ground_truth: COCO
    ground_truth_note: str
    image_ids: list[int]
    evaluators: dict[str, COCOeval] = field(default_factory=dict)


def evaluate(model: torch.nn.Module, dataset, *, batch_size: int = 4, score_threshold: float = 0.0,
             max_images: int | None = None, all_images: bool = False, iou_types: Sequence[str] = IOU_TYPES,
             progress: bool = True, verbose: bool = True, device: str | torch.device | None = None,
             num_workers: int = 0, detect_kwargs: dict | None = None, ground_truth: str = "dataset") -> dict:
    """Box and mask COCO AP of ``model`` on ``dataset``, the way the original's ``eval.py`` scores.

    model: a :class:`~yolact_edu.Yolact`; run in eval mode under ``torch.no_grad``, its
        train/eval mode (and device) restored afterwards.
    dataset: a :class:`~yolact_edu.data.CocoDataset` built without augmentation, with the
        model's ``max_size`` and ``normalization`` and one label per model class.
    score_threshold: passed to ``model.detect``; 0 (keep everything) is right for mAP, which
        rewards low-scored true positives. Detection otherwise uses the config's defaults: Fast
        NMS, ``cfg.nms_conf_thresh``, ``cfg.nms_iou_thresh``, at most ``cfg.max_detections``.
    max_images: score only the first ``max_images`` images (a quick look).
    all_images: score every image of the annotation file, counting those not run (beyond
        ``max_images``, missing or unreadable files) as all missed; default: only the images run.
    device: where to run; None means where the model's parameters are.
    detect_kwargs: further :meth:`Yolact.detect` settings to score, e.g. ``{"crop": False}`` or
        ``{"num_protos": 8}`` (notebook 02 measures what the crop and the prototypes are worth).
    ground_truth: "dataset" (default: the annotations the dataset kept, as the Trainer's validation
        scores) or "file" (the annotation file as pycocotools reads it, as ``yolact-edu eval``
        scores); see :func:`ground_truth_of`.

    Returns :func:`coco_evaluate`'s ``{"bbox": {...}, "segm": {...}}`` plus "num_images",
    "num_detections" (kept by detect, all images), "inference_seconds"
    (network, detect and conversion) and "seconds" (everything, COCOeval included), and
    "category_note" (how classes were matched to the file's categories, None when as they are).
    Raises ValueError when the model's classes are not the file's (see :func:`category_mapping`)
    or when the scored images hold no ground truth (AP would be COCOeval's undefined -1).
    """
    return evaluate_with_details(
        model, dataset, batch_size=batch_size, score_threshold=score_threshold, max_images=max_images,
        all_images=all_images, iou_types=iou_types, progress=progress, verbose=verbose, device=device,
        num_workers=num_workers, detect_kwargs=detect_kwargs, ground_truth=ground_truth).metrics


def evaluate_with_details(model: torch.nn.Module, dataset, *, batch_size: int = 4, score_threshold: float = 0.0,
                          max_images: int | None = None, all_images: bool = False,
                          iou_types: Sequence[str] = IOU_TYPES, progress: bool = True, verbose: bool = True,
                          device: str | torch.device | None = None, num_workers: int = 0,
                          detect_kwargs: dict | None = None, ground_truth: str = "dataset") -> Evaluation:
    """:func:`evaluate`, same arguments, returning an :class:`Evaluation`: the metrics together with
    the results, the ground truth and the ``COCOeval`` objects that per-class AP, precision-recall
    curves and a confusion matrix are read from (:mod:`~yolact_edu.training.eval_report`)."""
    start = time.perf_counter()
    for attribute in ("coco", "category_ids", "augmentation", "max_size", "normalization"):
        if not hasattr(dataset, attribute):
            raise TypeError(f"evaluate needs a CocoDataset; {type(dataset).__name__} has no '{attribute}'")
    if dataset.augmentation is not None:
        raise ValueError("evaluate needs a dataset without augmentation: build it with augment=False "
                         "(augmentation changes images and boxes, so the scores would be meaningless)")
    cfg = model.cfg
    if (dataset.max_size, dataset.normalization) != (cfg.max_size, cfg.normalization):
        raise ValueError(f"the dataset prepares images at max_size={dataset.max_size}, normalization="
                         f"{dataset.normalization!r}, but the model ({cfg.name}) expects max_size={cfg.max_size}, "
                         f"normalization={cfg.normalization!r}")
    if dataset.num_classes != cfg.num_classes:
        raise ValueError(f"the model predicts {cfg.num_classes} classes but the dataset has "
                         f"{dataset.num_classes} categories")
    category_ids, note = category_mapping(model, dataset)
    if note and verbose:
        print(f"note: {note}")
    coco_gt, gt_note = ground_truth_of(dataset, ground_truth)
    _require_ground_truth(coco_gt, dataset.annotation_file,
                          sorted(coco_gt.imgs) if all_images else dataset.ids[:max_images])
    subset = dataset if max_images is None else torch.utils.data.Subset(
        dataset, range(min(max_images, len(dataset))))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False,
                                         collate_fn=collate, num_workers=num_workers)
    original_device = next(model.parameters()).device
    device = original_device if device is None else torch.device(device)
    was_training = model.training
    results: dict[str, list[dict]] = {"bbox": [], "segm": []}
    seen: set[int] = set()
    model.to(device).eval()
    try:
        with torch.no_grad():
            for images, targets in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
                images = images.to(device)
                raw = model.network(images)        # as predict does: an optimize()d copy's way
                detections = model.detect(raw, [t["orig_size"] for t in targets],
                                          score_threshold=score_threshold, **(detect_kwargs or {}))
                for target, found in zip(targets, detections):
                    # An unreadable image is replaced by the next one in the dataset (and warned
                    # about there); scoring that image twice would double its false positives.
                    if target["image_id"] in seen:
                        continue
                    seen.add(target["image_id"])
                    for iou_type, entries in detections_to_coco(found, target["image_id"],
                                                                category_ids).items():
                        results[iou_type].extend(entries)
    finally:
        model.to(original_device).train(was_training)
    inference_seconds = time.perf_counter() - start
    if not all_images:
        _require_ground_truth(coco_gt, dataset.annotation_file, sorted(seen))  # unreadable images may have left none
    image_ids = sorted(coco_gt.imgs) if all_images else sorted(seen)
    metrics, evaluators = run_cocoeval(coco_gt, results, iou_types, image_ids=None if all_images else image_ids,
                                        verbose=verbose)
    metrics.update(num_images=len(seen), num_detections=len(results["bbox"]), category_note=note,
                   inference_seconds=inference_seconds, seconds=time.perf_counter() - start)
    return Evaluation(metrics=metrics, results=results, ground_truth=coco_gt, ground_truth_note=gt_note,
                      image_ids=image_ids, evaluators=evaluators)
