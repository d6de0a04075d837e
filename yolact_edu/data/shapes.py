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
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..atomic_write import write_atomically

__all__ = ["SHAPE_CLASSES", "make_shapes", "render_scene", "shapes_exist", "is_generated_set"]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "ring", "star", "cross")
"""Class names; the COCO category id of ``SHAPE_CLASSES[i]`` is ``i + 1``."""

FORMAT_VERSION = 1  # bump when the generator changes its output for a given seed
JPEG_QUALITY = 92
MIN_IMAGE_SIZE = 64  # below this a 1 % object is a handful of pixels and a ring has no hole
MAX_INSTANCES = 10
MIN_VISIBLE_PIXELS = 30  # an instance hidden below either limit is dropped, not annotated
MIN_VISIBLE_FRACTION = 0.2
AREA_FRACTION_RANGE = (0.008, 0.45)  # object area / image area, drawn log-uniformly
SAME_CLASS_NEIGHBOUR_PROB = 0.4  # chance that a new instance is put against one of its own class
_SHIFT = 4  # cv2.fillPoly fractional bits: vertices at 1/16 px, so small shapes keep their form

_SPLITS = ("train", "val")
MARKER = ".yolact_edu_shapes.json"   # written first: a folder without it is never rebuilt or emptied
GENERATOR = "yolact_edu.data.shapes.make_shapes"


# ---------------------------------------------------------------------------------- textures


def _pattern(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random texture ``[height, width]`` float32 in [0, 1]: gradient, smooth noise, stripes or checker."""
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    theta = rng.uniform(0, 2 * np.pi)
    along = x * np.float32(np.cos(theta)) + y * np.float32(np.sin(theta))
    kind = rng.integers(4)
    if kind == 0:  # linear gradient, with a random gamma so it is not always a straight ramp
        t = (along - along.min()) / max(float(along.max() - along.min()), 1.0)
        return t ** np.float32(rng.uniform(0.5, 2.0))
    if kind == 1:  # smooth noise: a coarse random grid, bicubically upsampled
        grid = rng.random((int(rng.integers(2, 9)), int(rng.integers(2, 9))), dtype=np.float32)
        return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)
    if kind == 2:  # stripes, soft (sine) or hard (square wave)
        t = 0.5 + 0.5 * np.sin(along * np.float32(2 * np.pi / rng.uniform(5, 40)) + np.float32(rng.uniform(0, 6.3)))
        return (t > 0.5).astype(np.float32) if rng.random() < 0.5 else t
    across = y * np.float32(np.cos(theta)) - x * np.float32(np.sin(theta))
    cell = np.float32(rng.uniform(6, 48))
    return ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float32)


def _blend(pattern: np.ndarray, color_a: np.ndarray, color_b: np.ndarray) -> np.ndarray:
    """``[h, w, 3]`` float32: per pixel ``color_a`` where pattern is 0, ``color_b`` where it is 1."""
    a = color_a.astype(np.float32)
    return a + pattern[..., None] * (color_b.astype(np.float32) - a)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured, noisy background ``[height, width, 3]`` float32 in about [0, 255]."""
    image = _blend(_pattern(rng, height, width), rng.uniform(0, 255, 3), rng.uniform(0, 255, 3))
    if rng.random() < 0.6:  # a second texture on top, so backgrounds are mixtures, not one pattern
        layer = _blend(_pattern(rng, height, width), rng.uniform(0, 255, 3), rng.uniform(0, 255, 3))
        image += np.float32(rng.uniform(0.2, 0.6)) * (layer - image)
    grain = rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(rng.uniform(3, 12))
    return image + cv2.GaussianBlur(grain, (0, 0), 0.8)


def _fill(rng: np.random.Generator, height: int, width: int, avoid: np.ndarray) -> np.ndarray:
    """An object's fill ``[height, width, 3]`` float32: a random colour varied by a texture and noise.

    ``avoid`` is the mean colour already under the object; the base colour is redrawn a few
    times to differ from it, so objects are hard but not invisible.
    """
    for _ in range(8):
        base = rng.uniform(0, 255, 3)
        if np.linalg.norm(base - avoid) > 90:
            break
    second = np.clip(base + rng.normal(0, 45, 3), 0, 255)
    fill = _blend(_pattern(rng, height, width), base, second)
    return fill + rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(rng.uniform(2, 10))


# ------------------------------------------------------------------------------------ shapes


@dataclass
class _Shape:
    """One instance before it is placed: outline vertices in pixels relative to its centre."""

    category_id: int  # 1-based COCO id
    outer: np.ndarray  # [K, 2] float (x, y)
    hole: np.ndarray | None  # [M, 2] float, the ring's hole; painted as background

    def mask_at(self, center: np.ndarray, height: int, width: int) -> np.ndarray:
        """The full (unoccluded) shape at ``center`` as a ``[height, width]`` uint8 {0, 1} mask."""
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [_fixed_point(self.outer + center)], 1, cv2.LINE_8, _SHIFT)
        if self.hole is not None:
            cv2.fillPoly(mask, [_fixed_point(self.hole + center)], 0, cv2.LINE_8, _SHIFT)
        return mask

    @property
    def low(self) -> np.ndarray:
        return self.outer.min(0)

    @property
    def high(self) -> np.ndarray:
        return self.outer.max(0)


def _fixed_point(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


def _circle(num_points: int = 72) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, num_points, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], 1)


def _unit_outline(rng: np.random.Generator, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices of one instance of class ``name`` with circumradius about 1 (and the ring's hole)."""
    if name in ("circle", "ring"):
        hole = _circle() * rng.uniform(0.4, 0.65) if name == "ring" else None
        return _circle(), hole
    if name == "square":
        angles = np.pi / 4 + np.arange(4) * np.pi / 2
        return np.stack([np.cos(angles), np.sin(angles)], 1), None
    if name == "triangle":  # near-equilateral, corners jittered so not all triangles are alike
        angles = np.pi / 2 + np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.15, 0.15, 3)
        radii = rng.uniform(0.85, 1.0, 3)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), None
    if name == "star":
        points = int(rng.integers(5, 7))
        angles = np.pi / 2 + np.arange(2 * points) * np.pi / points
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), None
    if name == "cross":
        a = rng.uniform(0.2, 0.32)  # half the arm width
        quarter = np.array([[a, 1.0], [a, a], [1.0, a]])
        turns = [quarter @ np.array([[c, s], [-s, c]]) for c, s in ((1, 0), (0, -1), (-1, 0), (0, 1))]
        return np.concatenate(turns), None
    raise ValueError(f"unknown shape class {name!r}; expected one of {SHAPE_CLASSES}")


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _random_shape(rng: np.random.Generator, category_id: int, target_area: float, height: int, width: int) -> _Shape:
    """A shape of ``target_area`` px (shrunk if needed so it fits the image), randomly rotated."""
    outer, hole = _unit_outline(rng, SHAPE_CLASSES[category_id - 1])
    unit_area = _polygon_area(outer) - (_polygon_area(hole) if hole is not None else 0.0)
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    outer = outer @ rotation
    extent = outer.max(0) - outer.min(0)
    fits = min((width - 3) / extent[0], (height - 3) / extent[1])
    scale = max(min(np.sqrt(target_area / unit_area), fits), 8.0)
    return _Shape(category_id, outer * scale, None if hole is None else hole @ rotation * scale)


def _center_range(shape: _Shape, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest centre (x, y) that keep the whole shape inside the image."""
    return 1 - shape.low, np.array([width - 2, height - 2]) - shape.high


def _place_against(
    rng: np.random.Generator, shape: _Shape, anchor: _Shape, anchor_center: np.ndarray, anchor_mask: np.ndarray
) -> np.ndarray | None:
    """A centre that puts ``shape`` touching (half the time) or overlapping ``anchor``; None if none fits.

    The shape slides along a random direction from far away towards the anchor's centre until
    the two first meet (bisection on "do the masks overlap"); touching stops just before that
    contact, overlapping goes further in.
    """
    height, width = anchor_mask.shape
    lo, hi = _center_range(shape, height, width)
    reach = np.linalg.norm(anchor.outer, axis=1).max() + np.linalg.norm(shape.outer, axis=1).max() + 2

    def overlaps(center: np.ndarray) -> bool:
        return bool((shape.mask_at(center, height, width) & anchor_mask).any())

    for _ in range(6):
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        apart, inside = reach, None  # distances along the direction: no overlap / overlap
        for step in np.linspace(reach, 0, 9)[1:]:
            if overlaps(anchor_center + step * direction):
                inside = step
                break
            apart = step
        if inside is None:  # e.g. a small shape that fits in the ring's hole all the way in
            continue
        while apart - inside > 0.25:
            middle = 0.5 * (apart + inside)
            if overlaps(anchor_center + middle * direction):
                inside = middle
            else:
                apart = middle
        distance = apart if rng.random() < 0.5 else apart * rng.uniform(0.45, 0.85)
        center = anchor_center + distance * direction
        if np.all(center >= lo) and np.all(center <= hi):
            return center
    return None


# ------------------------------------------------------------------------------------- scenes


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draw one image of the shapes set.

    Args:
        rng: the random stream; the same stream state gives the same scene.
        height, width: image size in pixels (>= 64).

    Returns:
        image ``[height, width, 3]`` uint8 RGB, and the annotated instances bottom to top as
        ``(category_id, visible_mask)``: ``category_id`` in 1..len(SHAPE_CLASSES), ``visible_mask``
        ``[height, width]`` bool, the part of the shape that nothing above it hides (pairwise
        disjoint; a ring's hole is False). 1..10 instances.
    """
    image_area = height * width
    count = int(rng.integers(1, MAX_INSTANCES + 1))
    low, high = np.log(AREA_FRACTION_RANGE)
    fractions = np.exp(rng.uniform(low, high, count))
    # Mostly larger objects first, so that small ones on top keep crowded scenes annotatable;
    # the noise in the key lets small objects be hidden by large ones too.
    order = np.argsort(-(np.log(fractions) + rng.normal(0, 1.0, count)))

    shapes: list[_Shape] = []
    centers: list[np.ndarray] = []
    masks: list[np.ndarray] = []  # full shapes, uint8
    for fraction in fractions[order]:
        anchor = int(rng.integers(len(shapes))) if shapes and rng.random() < SAME_CLASS_NEIGHBOUR_PROB else None
        category_id = shapes[anchor].category_id if anchor is not None else int(rng.integers(1, len(SHAPE_CLASSES) + 1))
        shape = _random_shape(rng, category_id, fraction * image_area, height, width)
        center = None
        if anchor is not None:
            center = _place_against(rng, shape, shapes[anchor], centers[anchor], masks[anchor])
        if center is None:
            lo, hi = _center_range(shape, height, width)
            center = rng.uniform(lo, np.maximum(hi, lo))
        shapes.append(shape)
        centers.append(center)
        masks.append(shape.mask_at(center, height, width))

    kept = list(range(len(masks)))
    visible = _visible_parts([masks[i] for i in kept])
    enough = [int(v.sum()) >= max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * int(masks[i].sum()))
              for i, v in zip(kept, visible)]
    if not all(enough):
        # Removing hidden instances only uncovers the ones below, so one recomputation suffices.
        kept = [i for i, ok in zip(kept, enough) if ok] or [kept[-1]]
        visible = _visible_parts([masks[i] for i in kept])

    canvas = _background(rng, height, width)
    for i in kept:  # painter's order: later instances cover earlier ones; the hole stays unpainted
        region = masks[i].astype(bool)
        ys, xs = np.nonzero(region)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        patch, inside = canvas[y0:y1, x0:x1], region[y0:y1, x0:x1]
        fill = _fill(rng, y1 - y0, x1 - x0, avoid=patch[inside].mean(0))
        patch[inside] = fill[inside]
    if rng.random() < 0.5:  # a slight camera blur on some images, so edges are not always crisp
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.4, 0.8))
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(rng.uniform(1, 5))
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return image, [(shapes[i].category_id, v) for i, v in zip(kept, visible)]


def _visible_parts(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Bottom-to-top full masks -> the part of each that no later mask covers (bool)."""
    covered = np.zeros(masks[0].shape, bool)
    visible = []
    for mask in reversed(masks):
        shape = mask.astype(bool)
        visible.append(shape & ~covered)
        covered |= shape
    return visible[::-1]


# --------------------------------------------------------------------------------- COCO files


def _paths(root: Path) -> dict[str, Path]:
    return {
        "root": root,
        "train_images": root / "train",
        "val_images": root / "val",
        "train_annotations": root / "instances_train.json",
        "val_annotations": root / "instances_val.json",
    }


def _make_split(
    split: str, num_images: int, seed: int, min_size: int, max_size: int, image_dir: Path, progress: bool
) -> dict:
    """Render ``num_images`` images into ``image_dir`` and return the split's COCO dict."""
    rng = np.random.default_rng([seed, _SPLITS.index(split)])  # train and val: independent streams
    images, annotations = [], []
    indices = range(num_images)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"shapes {split}", unit="img")
    for index in indices:
        width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
        image, instances = render_scene(rng, height, width)
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
            "description": f"yolact_edu synthetic shapes, {split} split",
            "version": str(FORMAT_VERSION),
            "year": 2024,
            "contributor": "yolact_edu (generated by yolact_edu.data.shapes.make_shapes)",
            "url": "",
            "date_created": "",  # left empty: a timestamp would break byte-identical regeneration
            "generator": {"seed": seed, "num_images": num_images, "min_size": min_size, "max_size": max_size},
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


def _check_arguments(num_train: int, num_val: int, seed: int, min_size: int, max_size: int) -> None:
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
    _check_arguments(num_train, num_val, seed, min_size, max_size)
    paths = _paths(Path(root))
    wanted = {"seed": seed, "min_size": min_size, "max_size": max_size}
    if not overwrite and shapes_exist(paths["root"]):
        found = [json.loads(paths[f"{s}_annotations"].read_text())["info"].get("generator", {}) for s in _SPLITS]
        if [{**wanted, "num_images": n} for n in (num_train, num_val)] != found:
            warnings.warn(f"{paths['root']} already holds a shapes set made with {found}; reusing it "
                          "unchanged (pass overwrite=True to regenerate)", stacklevel=2)
        return paths

    _claim_root(paths["root"], wanted)
    # The old annotation files go first: until both new ones are written the set reads as incomplete.
    for split in _SPLITS:
        paths[f"{split}_annotations"].unlink(missing_ok=True)
    for split, count in zip(_SPLITS, (num_train, num_val)):
        paths[f"{split}_images"].mkdir(parents=True, exist_ok=True)
        coco = _make_split(split, count, seed, min_size, max_size, paths[f"{split}_images"], progress)
        write_atomically(paths[f"{split}_annotations"], json.dumps(coco, separators=(",", ":")).encode())
        # Images of an earlier, larger set would otherwise linger beside the new listing.
        listed = {image["file_name"] for image in coco["images"]}
        for stale in paths[f"{split}_images"].glob(f"{split}_*.jpg"):
            if re.fullmatch(rf"{split}_\d{{6}}\.jpg", stale.name) and stale.name not in listed:
                stale.unlink()
    return paths
