"""The bundled synthetic dataset: textured shapes on textured backgrounds, in real COCO format.

Nothing has to be downloaded: ``make_shapes("data/shapes")`` writes, in about 15 s on 2 CPU cores,

    data/shapes/train/train_000000.jpg ...    data/shapes/instances_train.json
    data/shapes/val/val_000000.jpg ...        data/shapes/instances_val.json

The annotation files are ordinary COCO *instances* files (``pycocotools.coco.COCO`` loads them,
``COCOeval`` scores against them), so every step that works on this set works unchanged on a
real COCO subset.

What makes the set worth learning from, although it is tiny:

* six classes (``SHAPE_CLASSES``), one of them a **ring** whose hole is background and shows
  whatever lies behind it -- a box cannot describe it, a mask can;
* 1-10 instances per image, objects from about 1 % to over 40 % of the image area;
* same-class instances deliberately placed **touching and occluding** one another, the case
  where semantic segmentation fails and instance segmentation has to separate them;
* painter's order: each mask is the *visible* part only (the shape minus everything painted
  above it), so masks of one image never overlap; heavily hidden instances are dropped;
* colours drawn per instance and textured backgrounds, so the class is in the shape, not the
  colour.

Masks are compressed RLE from ``pycocotools.mask.encode`` (exact for holes and occlusion);
``bbox`` is ``pycocotools.mask.toBbox`` of that RLE and ``area`` its pixel count, so boxes,
areas and masks agree exactly. Generation is deterministic: one seed gives byte-identical
JSON and JPEG files (for one OpenCV build).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..files.atomic_write import write_atomically
from .crowded_scenes import render_crowded_scene
from .shape_scenes import SHAPE_CLASSES, render_scene

__all__ = ["make_shapes", "shapes_exist", "is_generated_set", "VARIANTS", "DEFAULT_ROOTS"]

FORMAT_VERSION = 1  # bump when the generator changes its output for a given seed
JPEG_QUALITY = 92
MIN_IMAGE_SIZE = 64  # below this a 1 % object is a handful of pixels and a ring has no hole

_SPLITS = ("train", "val")
MARKER = ".yolact_edu_shapes.json"   # written first: a folder without it is never rebuilt or emptied
GENERATOR = "yolact_edu.data.shapes.make_shapes"
VARIANTS = {"plain": render_scene, "crowded": render_crowded_scene}
"""The scene each variant draws: ``plain`` (the default set) and ``crowded`` (crowds of one class,
nesting, clutter: :mod:`.crowded_scenes`)."""
DEFAULT_ROOTS = {"plain": "data/shapes", "crowded": "data/shapes_crowded"}


# --------------------------------------------------------------------------------- COCO files


def _paths(root: Path) -> dict[str, Path]:
    return {
        "root": root,
        "train_images": root / "train",
        "val_images": root / "val",
        "train_annotations": root / "instances_train.json",
        "val_annotations": root / "instances_val.json",
    }


def _generator_info(seed: int, num_images: int, min_size: int, max_size: int, variant: str) -> dict:
    """The request recorded in a split's ``info.generator``; the plain set's stays as it always was."""
    info = {"seed": seed, "num_images": num_images, "min_size": min_size, "max_size": max_size}
    return info if variant == "plain" else {**info, "variant": variant}


def _make_split(
    split: str, num_images: int, seed: int, min_size: int, max_size: int, image_dir: Path, progress: bool,
    variant: str = "plain",
) -> dict:
    """Render ``num_images`` images of ``variant`` into ``image_dir`` and return the split's COCO dict."""
    render = VARIANTS[variant]
    rng = np.random.default_rng([seed, _SPLITS.index(split)])  # train and val: independent streams
    images, annotations = [], []
    indices = range(num_images)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"shapes {split}" + ("" if variant == "plain" else f" ({variant})"), unit="img")
    for index in indices:
        width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
        image, instances = render(rng, height, width)
        file_name = f"{split}_{index:06d}.jpg"
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV encodes BGR
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {file_name}")
        write_atomically(image_dir / file_name, jpeg.tobytes(), fsync=False)
        image_id = index + 1  # COCO ids start at 1 (COCOeval treats id 0 as "unmatched")
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 1})
        for category_id, visible in instances:
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_id,
                "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
                "area": float(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0,
            })
    return {
        "info": {
            "description": f"yolact_edu synthetic shapes{'' if variant == 'plain' else f' ({variant} variant)'}, "
                           f"{split} split",
            "version": str(FORMAT_VERSION),
            "year": 2024,
            "contributor": "yolact_edu (generated by yolact_edu.data.shapes.make_shapes)",
            "url": "",
            "date_created": "",  # left empty: a timestamp would break byte-identical regeneration
            "generator": _generator_info(seed, num_images, min_size, max_size, variant),
        },
        "licenses": [{"id": 1, "name": "MIT License (generated by yolact_edu)", "url": "https://opensource.org/licenses/MIT"}],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_CLASSES)],
    }


def shapes_exist(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a complete set: both annotation files parse and every listed image exists."""
    paths = _paths(Path(root))
    for split in _SPLITS:
        try:
            listing = json.loads(paths[f"{split}_annotations"].read_text())
            names = [image["file_name"] for image in listing["images"]]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not names or not all((paths[f"{split}_images"] / name).is_file() for name in names):
            return False
    return True


def is_generated_set(root: str | os.PathLike) -> bool:
    """True when ``root`` carries the marker :func:`make_shapes` writes before its first file: only
    such a folder is ever rebuilt (files deleted or replaced) by it."""
    try:
        marker = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("generator") == GENERATOR


def _claim_root(root: Path, request: dict) -> None:
    """Make ``root`` ours to write: an empty or missing folder gets the marker; a folder holding
    anything without it (someone's dataset, an older set) is refused, never overwritten."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} is a file, not a folder the shapes set can go into")
    if root.is_dir() and not is_generated_set(root):
        found = sorted(p.name for p in root.iterdir())
        if found:
            shown = ", ".join(found[:5]) + (f", ... ({len(found)} in all)" if len(found) > 5 else "")
            raise FileExistsError(
                f"{root} holds files the shapes generator did not write ({shown}) and no complete shapes "
                f"set; it rebuilds only folders marked with its {MARKER}: choose another root (--root) "
                "or empty that folder yourself")
    root.mkdir(parents=True, exist_ok=True)
    write_atomically(root / MARKER, json.dumps({"generator": GENERATOR, "version": FORMAT_VERSION, **request}),
                     fsync=False)


def _check_arguments(num_train: int, num_val: int, seed: int, min_size: int, max_size: int, variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    for name, value, least in (("num_train", num_train, 1), ("num_val", num_val, 1), ("seed", seed, 0),
                               ("min_size", min_size, MIN_IMAGE_SIZE), ("max_size", max_size, MIN_IMAGE_SIZE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    if min_size > max_size:
        raise ValueError(f"min_size must be <= max_size, got min_size={min_size} > max_size={max_size}")


def make_shapes(
    root: str | os.PathLike,
    *,
    num_train: int = 600,
    num_val: int = 100,
    seed: int = 0,
    min_size: int = 256,
    max_size: int = 384,
    overwrite: bool = False,
    progress: bool = False,
    variant: str = "plain",
) -> dict[str, Path]:
    """Generate the synthetic shapes set in COCO format under ``root`` (or reuse a complete one).

    Args:
        root: output folder; created if missing.
        num_train, num_val: images per split (>= 1).
        seed: the same seed gives byte-identical files; train and val use independent streams.
        min_size, max_size: image width and height are drawn independently in [min_size, max_size].
        overwrite: regenerate even if ``root`` already holds a complete set (one this generator
            marked as its own; a folder with other files in it is refused, never overwritten).
        progress: show a tqdm bar per split.
        variant: ``"plain"`` (the default set) or ``"crowded"`` (crowds of 5-15 objects of one
            class, objects nested in other objects' boxes, distractor strokes: see
            :mod:`.crowded_scenes`); same format, seeds and sizes. A complete set of the other
            variant in ``root`` is refused, not reused.

    Returns:
        ``{"root", "train_images", "val_images", "train_annotations", "val_annotations"}`` as Paths,
        ready for ``CocoDataset(paths["train_annotations"], paths["train_images"])``.

    The annotation JSON of each split is written last (atomically), and ``shapes_exist``
    requires both, so an interrupted run is regenerated rather than mistaken for complete.
    Before its first file it writes the marker ``.yolact_edu_shapes.json``; it rebuilds (deletes
    or replaces files in) only folders that are empty or carry that marker, and raises
    FileExistsError naming the folder for any other.
    The default 600 + 100 images take about 15 s on a 2-core CPU (about 27 MB).
    """
    _check_arguments(num_train, num_val, seed, min_size, max_size, variant)
    paths = _paths(Path(root))
    wanted = {"seed": seed, "min_size": min_size, "max_size": max_size}
    if not overwrite and shapes_exist(paths["root"]):
        found = [json.loads(paths[f"{s}_annotations"].read_text())["info"].get("generator", {}) for s in _SPLITS]
        held = {str(f.get("variant", "plain")) for f in found}
        if held != {variant}:
            raise FileExistsError(
                f"{paths['root']} holds the {'/'.join(sorted(held))} variant of the shapes set, not {variant!r}: "
                f"choose another root (--root, e.g. {DEFAULT_ROOTS.get(variant, 'data/shapes_' + variant)}) "
                "or regenerate it (--force)")
        if [_generator_info(seed, n, min_size, max_size, variant) for n in (num_train, num_val)] != found:
            warnings.warn(f"{paths['root']} already holds a shapes set made with {found}; reusing it "
                          "unchanged (pass overwrite=True to regenerate)", stacklevel=2)
        return paths

    _claim_root(paths["root"], wanted if variant == "plain" else {**wanted, "variant": variant})
    # The old annotation files go first: until both new ones are written the set reads as incomplete.
    for split in _SPLITS:
        paths[f"{split}_annotations"].unlink(missing_ok=True)
    for split, count in zip(_SPLITS, (num_train, num_val)):
        paths[f"{split}_images"].mkdir(parents=True, exist_ok=True)
        coco = _make_split(split, count, seed, min_size, max_size, paths[f"{split}_images"], progress, variant)
        write_atomically(paths[f"{split}_annotations"], json.dumps(coco, separators=(",", ":")).encode())
        # Images of an earlier, larger set would otherwise linger beside the new listing.
        listed = {image["file_name"] for image in coco["images"]}
        for stale in paths[f"{split}_images"].glob(f"{split}_*.jpg"):
            if re.fullmatch(rf"{split}_\d{{6}}\.jpg", stale.name) and stale.name not in listed:
                stale.unlink()
    return paths
