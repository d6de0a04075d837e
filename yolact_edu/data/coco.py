"""COCO-format instance segmentation datasets (any ``instances_*.json`` + an image folder).

Annotations are read through pycocotools, so polygon, RLE and uncompressed-RLE masks and
crowd regions all work as in COCO itself. Category ids (any integers, with gaps) become
contiguous 0-based labels in ascending id order; :meth:`CocoDataset.category_id` maps
back for results files.

The file is checked when the dataset is built:

* fatal problems raise :class:`DatasetError` naming the file, the id and the field
  (missing or malformed file, duplicate ids, an annotation pointing at an unknown image or
  category, an image without ``file_name``/``width``/``height``);
* recoverable ones are skipped, counted and reported in :attr:`CocoDataset.report`
  (missing or unreadable images, zero-area or out-of-image boxes, invalid polygons or
  RLEs), never silently: the summary is printed and a warning names each unreadable image.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ..files.locations import shown_path
from ..ops.preprocess import image_to_tensor, normalize, preprocess_images
from .augment import Sample, SSDAugmentation, augmentation
from .images import decode_image

MISSING_AREA = "no valid 'area': taken from the mask"


class DatasetError(ValueError):
    """An annotation file that cannot be used; the message names the file, id and field."""


@dataclass
class DatasetReport:
    """What was found in an annotation file and what was skipped (with the offending ids)."""

    annotation_file: str
    num_images: int = 0
    num_annotations: int = 0
    instances_per_class: dict[str, int] = field(default_factory=dict)
    crowd_annotations: int = 0
    images_without_annotations: list[int] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    unreadable_images: list[str] = field(default_factory=list)
    skipped_annotations: dict[str, list[int]] = field(default_factory=dict)   # reason -> ann ids
    repaired_annotations: dict[str, list[int]] = field(default_factory=dict)  # what was filled in -> ids

    def skip(self, reason: str, annotation_id: int) -> None:
        self.skipped_annotations.setdefault(reason, []).append(annotation_id)

    def repair(self, what: str, annotation_id: int) -> None:
        self.repaired_annotations.setdefault(what, []).append(annotation_id)

    @property
    def num_skipped(self) -> int:
        return sum(len(ids) for ids in self.skipped_annotations.values())

    def __str__(self) -> str:
        def some(items, limit=5):
            shown = ", ".join(str(i) for i in items[:limit])
            return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")

        # shown relative to the working folder (or under ~): no machine's folder names in a notebook's output
        lines = [f"{shown_path(self.annotation_file)}: {self.num_images} images, {self.num_annotations} instances "
                 f"({self.crowd_annotations} crowd)",
                 "  instances per class: " + ", ".join(f"{k} {v}" for k, v in self.instances_per_class.items()),
                 f"  images without annotations: {len(self.images_without_annotations)}"]
        if self.missing_images:
            lines.append(f"  missing image files (skipped): {some(self.missing_images)}")
        if self.unreadable_images:
            lines.append(f"  unreadable images (skipped): {some(self.unreadable_images)}")
        for reason, ids in self.skipped_annotations.items():
            lines.append(f"  skipped annotations, {reason}: ids {some(ids)}")
        for what, ids in self.repaired_annotations.items():
            lines.append(f"  kept annotations, {what}: ids {some(ids)}")
        return "\n".join(lines)


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: field '{key}' is missing or not a list")
    return data


def _check_unique(path: Path, entries: list, what: str) -> None:
    seen: set = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry:
            raise DatasetError(f"{path}: {what}[{i}] has no field 'id'")
        if entry["id"] in seen:
            raise DatasetError(f"{path}: duplicate id {entry['id']} in field '{what}'")
        seen.add(entry["id"])


def compressed_rle_runs(counts: str | bytes) -> list[int] | None:
    """The run lengths of a compressed RLE ``counts`` string (COCO's format: 6-bit characters from
    '0' on, 5 data bits each plus a continuation bit, runs after the second delta-coded against
    the run two back), or None when the string is not well formed.

    pycocotools decodes malformed strings without complaint (into uninitialised memory) or fails
    on them only deep inside training, so the dataset checks them here, when it is built."""
    text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
    runs: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                return None                             # cut in the middle of a number
            code = ord(text[position]) - 48
            if not 0 <= code < 64:
                return None                             # not a character of the alphabet
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift                    # sign extension of the last group
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _segmentation_problem(segm, height: int, width: int) -> str | None:
    """Why a segmentation cannot be turned into a mask, or None if it can."""
    if isinstance(segm, list):
        if not segm:
            return "invalid polygon"
        for poly in segm:
            if (not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                               for v in poly)):
                return "invalid polygon"
        return None
    if isinstance(segm, dict):
        size, counts = segm.get("size"), segm.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and isinstance(counts, (list, str))):
            return "invalid RLE"
        if list(size) != [height, width]:
            return "RLE size differs from the image size"
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                return "invalid RLE (counts must be non-negative integers)"
            runs = counts
        else:
            runs = compressed_rle_runs(counts)
            if runs is None or any(r < 0 for r in runs):
                return "invalid RLE (counts cannot be decoded)"
        if sum(runs) != height * width:
            return "invalid RLE (counts do not cover the image)"
        return None
    return "invalid segmentation"


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _positive_int(value) -> bool:
    return _is_integer(value) and value > 0


class CocoDataset(torch.utils.data.Dataset):
    """A COCO instances file + image folder as (image, target) pairs for :class:`~yolact_edu.Yolact`.

    ``dataset[i]`` -> ``(image [3,S,S] float32 normalised as Yolact.preprocess, target)`` with
    target = {"boxes" [n,4] xyxy relative (0..1), "labels" [n] int64 0-based, "masks" [n,S,S]
    float32 {0,1}, "iscrowd" [n] bool, "image_id" int, "orig_size" (H, W)} — the
    ``targets`` format of :class:`~yolact_edu.YolactLoss` (DESIGN §2).

    annotations: the instances JSON; images: the folder its ``file_name``s are relative to.
    max_size / normalization: as the model's config (``cfg.max_size``, ``cfg.normalization``).
    augment: a name of :func:`~yolact_edu.data.augment.augmentation` (``"original"``, ``"light"``,
        ``"none"``; a config carries its own as ``cfg.augmentation``), an ``SSDAugmentation``
        configured otherwise, True (``"original"``) or False (``"none"``: the eval transform, a
        stretch resize exactly as ``Yolact.preprocess``).
    include_empty: keep images without usable annotations (default: only when not augmenting,
        as the original trains on annotated images only).
    verbose: print the validation summary.
    """

    def __init__(self, annotations: str | Path, images: str | Path, *, max_size: int = 550,
                 normalization: str = "mean_std", augment: str | bool | SSDAugmentation = False,
                 include_empty: bool | None = None, verbose: bool = True):
        self.annotation_file = Path(annotations)
        self.image_dir = Path(images)
        self.max_size = max_size
        self.normalization = normalization
        if isinstance(augment, SSDAugmentation):
            if augment.max_size != max_size:
                raise ValueError(f"the augmentation ends at {augment.max_size} px but max_size is {max_size}")
            self.augmentation = augment
        else:       # a name, or True / False for "original" / "none"
            name = augment if isinstance(augment, str) else ("original" if augment else "none")
            self.augmentation = augmentation(name, max_size)
        data = _load_json(self.annotation_file)
        path = self.annotation_file
        _check_unique(path, data["images"], "images")
        _check_unique(path, data["annotations"], "annotations")
        _check_unique(path, data["categories"], "categories")
        for image in data["images"]:
            if not _is_integer(image["id"]):
                raise DatasetError(f"{path}: image id {image['id']!r} is not an integer (COCO results need one)")
            for key in ("file_name", "width", "height"):
                if key not in image:
                    raise DatasetError(f"{path}: image id {image['id']} has no field '{key}'")
            for key in ("width", "height"):
                if not _positive_int(image[key]):
                    raise DatasetError(f"{path}: image id {image['id']} has {key} {image[key]!r}; "
                                       "it must be a whole number of pixels >= 1")
            if not isinstance(image["file_name"], str) or not image["file_name"].strip():
                raise DatasetError(f"{path}: image id {image['id']} has file_name {image['file_name']!r}; "
                                   "it must be a non-empty string")
        for category in data["categories"]:
            if not _is_integer(category["id"]):
                raise DatasetError(f"{path}: category id {category['id']!r} is not an integer")
        categories = sorted(data["categories"], key=lambda c: c["id"])
        self.category_ids: tuple[int, ...] = tuple(c["id"] for c in categories)
        self.class_names: tuple[str, ...] = tuple(str(c.get("name", c["id"])) for c in categories)
        self._label_of = {cid: label for label, cid in enumerate(self.category_ids)}
        image_by_id = {image["id"]: image for image in data["images"]}
        for ann in data["annotations"]:
            for key, known in (("image_id", image_by_id), ("category_id", self._label_of)):
                if ann.get(key) not in known:
                    raise DatasetError(f"{path}: annotation id {ann['id']} has unknown {key} {ann.get(key)!r}")

        self.report = DatasetReport(str(path), num_images=len(data["images"]))
        self._annotations = self._validate(data, image_by_id)
        # The COCO index (and so COCOeval's ground truth) holds the checked annotations only: a
        # skipped one would otherwise be decoded there and fail, or count as a miss it never learnt.
        checked = {id(ann) for anns in self._annotations.values() for ann in anns}
        self.coco = coco_from_dict({**data, "annotations": [a for a in data["annotations"] if id(a) in checked]})
        for annotation_id in self.report.repaired_annotations.get(MISSING_AREA, []):
            annotation = self.coco.anns[annotation_id]
            annotation["area"] = float(mask_utils.area(self.coco.annToRLE(annotation)))
        if include_empty is None:
            include_empty = self.augmentation is None
        self.ids = [i for i in sorted(image_by_id)
                    if str(image_by_id[i]["file_name"]) not in self.report.missing_images
                    and (include_empty or any(not a.get("iscrowd", 0) for a in self._annotations[i]))]
        if not self.ids:
            raise DatasetError(f"{path}: no usable images ({len(data['images'])} listed; "
                               f"{len(self.report.missing_images)} missing files, "
                               f"{self.report.num_skipped} annotations skipped)")
        if verbose:
            print(self.report)

    # -- validation -----------------------------------------------------------------------
    def _validate(self, data: dict, image_by_id: dict) -> dict[int, list[dict]]:
        report = self.report
        usable: dict[int, list[dict]] = {i: [] for i in image_by_id}
        counts: Counter = Counter()
        for ann in data["annotations"]:
            image = image_by_id[ann["image_id"]]
            height, width = int(image["height"]), int(image["width"])
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4
                    and all(isinstance(v, (int, float)) and np.isfinite(v) for v in bbox)):
                report.skip("missing or invalid bbox", ann["id"])
                continue
            x, y, w, h = bbox
            if w <= 0 or h <= 0:
                report.skip("zero-area box", ann["id"])
                continue
            if x >= width or y >= height or x + w <= 0 or y + h <= 0:
                report.skip("box outside the image", ann["id"])
                continue
            problem = _segmentation_problem(ann.get("segmentation"), height, width)
            if problem:
                report.skip(problem, ann["id"])
                continue
            if not (isinstance(ann.get("area"), (int, float)) and np.isfinite(ann["area"]) and ann["area"] >= 0):
                # COCOeval sorts objects into small/medium/large by this field and fails without it;
                # filled in from the mask once the COCO index exists (see __init__)
                report.repair(MISSING_AREA, ann["id"])
            usable[ann["image_id"]].append(ann)
            counts[self.class_names[self._label_of[ann["category_id"]]]] += 1
            report.crowd_annotations += int(bool(ann.get("iscrowd", 0)))
        report.num_annotations = sum(len(a) for a in usable.values())
        report.instances_per_class = {name: counts[name] for name in self.class_names}
        report.images_without_annotations = [i for i in sorted(usable) if not usable[i]]
        for image in data["images"]:
            if not (self.image_dir / str(image["file_name"])).is_file():
                report.missing_images.append(str(image["file_name"]))
        return usable

    # -- label mapping --------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def label(self, category_id: int) -> int:
        """COCO category id -> contiguous 0-based label."""
        return self._label_of[category_id]

    def category_id(self, label: int) -> int:
        """Contiguous 0-based label -> COCO category id (for results files)."""
        return self.category_ids[label]

    # -- loading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def image_info(self, index: int) -> dict:
        return self.coco.imgs[self.ids[index]]

    def load_image(self, index: int) -> np.ndarray | None:
        """The image as HxWx3 uint8 RGB, or None (warned and counted) if it is unreadable or
        its size differs from the annotation file's."""
        info = self.image_info(index)
        path = self.image_dir / str(info["file_name"])
        image = decode_image(path)
        problem = None
        if image is None:
            problem = "cannot be decoded"
        elif image.shape[:2] != (int(info["height"]), int(info["width"])):
            problem = (f"is {image.shape[1]}x{image.shape[0]} but {self.annotation_file.name} says "
                       f"{info['width']}x{info['height']}")
        if problem:
            if str(path) not in self.report.unreadable_images:
                self.report.unreadable_images.append(str(path))
                warnings.warn(f"image id {info['id']}: {path} {problem}; skipped", stacklevel=2)
            return None
        return image

    def load_target(self, index: int) -> dict[str, torch.Tensor]:
        """Annotations at image resolution: boxes [n,4] xyxy pixels (clipped to the image),
        masks [n,H,W] uint8 {0,1}, labels [n] int64, iscrowd [n] bool."""
        info = self.image_info(index)
        height, width = int(info["height"]), int(info["width"])
        anns = self._annotations[self.ids[index]]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        masks = np.zeros((len(anns), height, width), np.uint8)
        for i, ann in enumerate(anns):
            masks[i] = self.coco.annToMask(ann)
        return {"boxes": boxes, "masks": torch.from_numpy(masks),
                "labels": torch.tensor([self._label_of[a["category_id"]] for a in anns], dtype=torch.int64),
                "iscrowd": torch.tensor([bool(a.get("iscrowd", 0)) for a in anns], dtype=torch.bool)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image = self.load_image(index)
        tries = 0
        while image is None:        # an unreadable image: take the next one (reported above)
            tries += 1
            if tries >= len(self):
                raise DatasetError(f"{self.annotation_file}: none of the images can be read")
            index = (index + 1) % len(self)
            image = self.load_image(index)
        target = self.load_target(index)
        info = self.image_info(index)
        size = self.max_size
        if self.augmentation is not None:
            sample = self.augmentation(Sample(image_to_tensor(image), target["boxes"], target["masks"],
                                              target["labels"], target["iscrowd"]))
            tensor = normalize(sample.image[None], self.normalization)[0]
            boxes, masks, labels, iscrowd = sample.boxes / size, sample.masks, sample.labels, sample.iscrowd
        else:
            tensor = preprocess_images([image], size, self.normalization)[0]
            scale = torch.tensor([info["width"], info["height"]] * 2, dtype=torch.float32)
            boxes, labels, iscrowd = target["boxes"] / scale, target["labels"], target["iscrowd"]
            masks = (F.interpolate(target["masks"][None].float(), (size, size), mode="nearest")[0]
                     if len(labels) else torch.zeros((0, size, size)))
        return tensor, {"boxes": boxes, "labels": labels, "masks": masks.float(), "iscrowd": iscrowd,
                        "image_id": int(info["id"]), "orig_size": (int(info["height"]), int(info["width"]))}


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """DataLoader collate: images stacked to [B,3,S,S]; targets kept as a list (n varies)."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


def quietly(fn, *args, **kwargs):
    """Call ``fn`` with pycocotools' progress prints ("creating index...", "DONE") silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def coco_from_dict(data: dict) -> COCO:
    """A pycocotools ``COCO`` index over an instances dict already in memory (``COCO(path)``
    would read the file again and print its progress)."""
    coco = COCO()
    coco.dataset = data
    quietly(coco.createIndex)
    return coco
