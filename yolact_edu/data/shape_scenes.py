"""The pictures of the synthetic shapes set: textured shapes on textured backgrounds, placed so
that same-class instances touch and occlude, each annotated by its visible part
(:func:`render_scene`). :mod:`.shapes` writes them as a COCO-format dataset."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "ring", "star", "cross")
"""Class names; the COCO category id of ``SHAPE_CLASSES[i]`` is ``i + 1``."""

MAX_INSTANCES = 10
MIN_VISIBLE_PIXELS = 30  # an instance hidden below either limit is dropped, not annotated
MIN_VISIBLE_FRACTION = 0.2
AREA_FRACTION_RANGE = (0.008, 0.45)  # object area / image area, drawn log-uniformly
SAME_CLASS_NEIGHBOUR_PROB = 0.4  # chance that a new instance is put against one of its own class
_SHIFT = 4  # cv2.fillPoly fractional bits: vertices at 1/16 px, so small shapes keep their form


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


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured, noisy background ``[height, width, 3]`` float32 in about [0, 255]."""
    image = _blend(_pattern(rng, height, width), rng.uniform(0, 255, 3), rng.uniform(0, 255, 3))
    if rng.random() < 0.6:  # a second texture on top, so backgrounds are mixtures, not one pattern
        layer = _blend(_pattern(rng, height, width), rng.uniform(0, 255, 3), rng.uniform(0, 255, 3))
        image += np.float32(rng.uniform(0.2, 0.6)) * (layer - image)
    grain = rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(rng.uniform(3, 12))
    return image + cv2.GaussianBlur(grain, (0, 0), 0.8)


def _fill(rng: np.random.Generator, height: int, width: int, avoid: np.ndarray,
          base: np.ndarray | None = None) -> np.ndarray:
    """An object's fill ``[height, width, 3]`` float32: a random colour varied by a texture and noise.

    ``avoid`` is the mean colour already under the object; the base colour is redrawn a few
    times to differ from it, so objects are hard but not invisible. A given ``base`` (RGB in
    [0, 255]) is used as it is: the crowded variant gives one crowd one colour.
    """
    if base is None:
        for _ in range(8):
            base = rng.uniform(0, 255, 3)
            if np.linalg.norm(base - avoid) > 90:
                break
    second = np.clip(base + rng.normal(0, 45, 3), 0, 255)
    fill = _blend(_pattern(rng, height, width), base, second)
    return fill + rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(rng.uniform(2, 10))


# ------------------------------------------------------------------------------------ shapes


@dataclass
class Shape:
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

    def overlaps(self, center: np.ndarray, other: np.ndarray) -> bool:
        """Whether the shape at ``center`` shares a pixel with the ``[height, width]`` mask ``other``.

        Rasterised only in the shape's own bounding box (integer-shifted fixed-point vertices give
        exactly the pixels :meth:`mask_at` gives), so crowded scenes are generated fast.
        """
        height, width = other.shape
        outer = _fixed_point(self.outer + center)
        x0, y0 = np.maximum((outer.min(0) >> _SHIFT) - 1, 0)
        x1, y1 = np.minimum((outer.max(0) >> _SHIFT) + 2, (width, height))
        if x0 >= x1 or y0 >= y1 or not other[y0:y1, x0:x1].any():
            return False
        offset = np.array([x0, y0], np.int32) << _SHIFT
        window = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(window, [outer - offset], 1, cv2.LINE_8, _SHIFT)
        if self.hole is not None:
            cv2.fillPoly(window, [_fixed_point(self.hole + center) - offset], 0, cv2.LINE_8, _SHIFT)
        return bool((window & other[y0:y1, x0:x1]).any())

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


def random_shape(rng: np.random.Generator, category_id: int, target_area: float, height: int, width: int) -> Shape:
    """A shape of ``target_area`` px (shrunk if needed so it fits the image), randomly rotated."""
    outer, hole = _unit_outline(rng, SHAPE_CLASSES[category_id - 1])
    unit_area = _polygon_area(outer) - (_polygon_area(hole) if hole is not None else 0.0)
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    outer = outer @ rotation
    extent = outer.max(0) - outer.min(0)
    fits = min((width - 3) / extent[0], (height - 3) / extent[1])
    scale = max(min(np.sqrt(target_area / unit_area), fits), 8.0)
    return Shape(category_id, outer * scale, None if hole is None else hole @ rotation * scale)


def center_range(shape: Shape, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest centre (x, y) that keep the whole shape inside the image."""
    return 1 - shape.low, np.array([width - 2, height - 2]) - shape.high


def place_against(
    rng: np.random.Generator, shape: Shape, anchor: Shape, anchor_center: np.ndarray, anchor_mask: np.ndarray
) -> np.ndarray | None:
    """A centre that puts ``shape`` touching (half the time) or overlapping ``anchor``; None if none fits.

    The shape slides along a random direction from far away towards the anchor's centre until
    the two first meet (bisection on "do the masks overlap"); touching stops just before that
    contact, overlapping goes further in.
    """
    height, width = anchor_mask.shape
    lo, hi = center_range(shape, height, width)
    reach = np.linalg.norm(anchor.outer, axis=1).max() + np.linalg.norm(shape.outer, axis=1).max() + 2

    def overlaps(center: np.ndarray) -> bool:
        return shape.overlaps(center, anchor_mask)

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

    shapes: list[Shape] = []
    centers: list[np.ndarray] = []
    masks: list[np.ndarray] = []  # full shapes, uint8
    for fraction in fractions[order]:
        anchor = int(rng.integers(len(shapes))) if shapes and rng.random() < SAME_CLASS_NEIGHBOUR_PROB else None
        category_id = shapes[anchor].category_id if anchor is not None else int(rng.integers(1, len(SHAPE_CLASSES) + 1))
        shape = random_shape(rng, category_id, fraction * image_area, height, width)
        center = None
        if anchor is not None:
            center = place_against(rng, shape, shapes[anchor], centers[anchor], masks[anchor])
        if center is None:
            lo, hi = center_range(shape, height, width)
            center = rng.uniform(lo, np.maximum(hi, lo))
        shapes.append(shape)
        centers.append(center)
        masks.append(shape.mask_at(center, height, width))

    return compose_scene(rng, shapes, masks, textured_background)


def compose_scene(
    rng: np.random.Generator, shapes: list[Shape], masks: list[np.ndarray], background, bases=None,
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Paint placed shapes (bottom to top, full uint8 masks) over ``background(rng, h, w)``.

    Instances hidden below the visibility limits are dropped first; ``bases[i]`` (or None) is
    shape i's fill colour. Returns what :func:`render_scene` returns.
    """
    height, width = masks[0].shape
    kept = list(range(len(masks)))
    visible = _visible_parts([masks[i] for i in kept])
    enough = [int(v.sum()) >= max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * int(masks[i].sum()))
              for i, v in zip(kept, visible)]
    if not all(enough):
        # Removing hidden instances only uncovers the ones below, so one recomputation suffices.
        kept = [i for i, ok in zip(kept, enough) if ok] or [kept[-1]]
        visible = _visible_parts([masks[i] for i in kept])

    canvas = background(rng, height, width)
    for i in kept:  # painter's order: later instances cover earlier ones; the hole stays unpainted
        region = masks[i].astype(bool)
        ys, xs = np.nonzero(region)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        patch, inside = canvas[y0:y1, x0:x1], region[y0:y1, x0:x1]
        fill = _fill(rng, y1 - y0, x1 - x0, avoid=patch[inside].mean(0), base=None if bases is None else bases[i])
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


__all__ = ["SHAPE_CLASSES", "render_scene", "Shape", "random_shape", "center_range", "place_against",
           "textured_background", "compose_scene"]
