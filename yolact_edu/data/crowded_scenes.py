"""The pictures of the *crowded* shapes variant (:func:`render_crowded_scene`): what the paper's
hard cases look like, on data a laptop can train on.

The plain set (:mod:`.shape_scenes`) lets every class keep to itself, so a model can separate
instances by class and crop alone. Here the shape is the only thing that tells classes apart, and
instances of one class have to be told apart from each other:

* **crowds** of 5-15 objects of one class, touching and overlapping, often in one shared colour,
  so neither colour nor class separates them -- only edges and position do;
* **nesting**: a small object of any class placed inside a large object's box (in a star's or a
  cross's empty corner, a ring's hole), the case where a box-cropped mask leaks;
* **clutter**: the plain set's textured backgrounds plus distractor strokes (lines, open curves,
  scribbles) that are not objects;
* **sizes** from a few dozen pixels to a third of the image, as in COCO.

Each mask is still the visible part only, annotated exactly as in the plain set.
"""
from __future__ import annotations

import cv2
import numpy as np

from .shape_scenes import (
    SHAPE_CLASSES,
    Shape,
    center_range,
    compose_scene,
    place_against,
    random_shape,
    textured_background,
)

CROWD_SIZE_RANGE = (5, 15)  # same-class objects in one crowd
CROWDS_RANGE = (1, 2)  # crowds per image
CROWD_MEMBER_FRACTION = (0.003, 0.03)  # one member's area / image area (the crowd's scale), log-uniform
CROWD_TOTAL_FRACTION = 0.4  # a crowd's members cover at most about this share of the image
SHARED_COLOUR_PROB = 0.5  # chance that a crowd wears one colour
LARGE_FRACTION = (0.06, 0.3)  # the 0-2 large objects that lie under everything
FREE_FRACTION = (0.002, 0.2)  # the 0-3 lone objects, any size
NESTED_FRACTION_OF_HOST = (0.03, 0.12)  # a nested object's area / its host's area
STROKES_RANGE = (4, 14)  # distractor strokes per image


# --------------------------------------------------------------------------------- clutter


def _stroke_points(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Vertices ``[K, 2]`` (x, y) of one open distractor stroke: a line, an arc or a scribble."""
    start = rng.uniform((0, 0), (width, height))
    kind = rng.integers(3)
    if kind == 0:  # a straight line
        end = start + rng.normal(0, 0.35, 2) * (width, height)
        return np.stack([start, end])
    if kind == 1:  # an open arc (at most 3/4 of a circle, so never a ring)
        radius = rng.uniform(0.05, 0.3) * min(height, width)
        first = rng.uniform(0, 2 * np.pi)
        angles = first + np.linspace(0, rng.uniform(0.3, 1.5) * np.pi, 24)
        return start + radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    steps = rng.normal(0, 0.06, (int(rng.integers(4, 10)), 2)) * (width, height)  # a scribble
    return start + np.cumsum(steps, 0)


def cluttered_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The plain set's textured background ``[height, width, 3]`` float32 with distractor strokes
    painted on it: anti-aliased, 1-4 px wide, each in its own colour."""
    image = textured_background(rng, height, width)
    for _ in range(int(rng.integers(STROKES_RANGE[0], STROKES_RANGE[1] + 1))):
        alpha = np.zeros((height, width), np.uint8)
        points = np.round(_stroke_points(rng, height, width) * 16).astype(np.int32)
        cv2.polylines(alpha, [points], False, 255, int(rng.integers(1, 5)), cv2.LINE_AA, 4)
        weight = alpha.astype(np.float32)[..., None] / np.float32(255)
        image += weight * (rng.uniform(0, 255, 3).astype(np.float32) - image)
    return image


# ----------------------------------------------------------------------------------- scenes


class _Scene:
    """Shapes placed so far, bottom to top, with their centres, full masks and fill colours."""

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng, self.height, self.width = rng, height, width
        self.shapes: list[Shape] = []
        self.centers: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []  # uint8 {0, 1}
        self.bases: list[np.ndarray | None] = []

    def add(self, shape: Shape, center: np.ndarray, base: np.ndarray | None = None) -> int:
        self.shapes.append(shape)
        self.centers.append(center)
        self.masks.append(shape.mask_at(center, self.height, self.width))
        self.bases.append(base)
        return len(self.shapes) - 1

    def shape(self, category_id: int, fraction: float) -> Shape:
        return random_shape(self.rng, category_id, fraction * self.height * self.width, self.height, self.width)

    def anywhere(self, shape: Shape, near: np.ndarray | None = None, radius: float = 0.0) -> np.ndarray:
        """A random centre keeping ``shape`` in the image, within ``radius`` of ``near`` if given."""
        lo, hi = center_range(shape, self.height, self.width)
        hi = np.maximum(hi, lo)
        if near is not None:
            lo, hi = np.clip(near - radius, lo, hi), np.clip(near + radius, lo, hi)
        return self.rng.uniform(lo, hi)

    def random_class(self) -> int:
        return int(self.rng.integers(1, len(SHAPE_CLASSES) + 1))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _add_crowd(scene: _Scene) -> None:
    """5-15 objects of one class at one scale, each put against an earlier member (touching or
    overlapping), else dropped near the crowd."""
    rng = scene.rng
    category_id = scene.random_class()
    count = int(rng.integers(CROWD_SIZE_RANGE[0], CROWD_SIZE_RANGE[1] + 1))
    low, high = CROWD_MEMBER_FRACTION
    scale = _log_uniform(rng, low, max(low, min(high, CROWD_TOTAL_FRACTION / count)))
    base = rng.uniform(0, 255, 3) if rng.random() < SHARED_COLOUR_PROB else None
    members: list[int] = []
    spread = 3.0 * np.sqrt(scale * scene.height * scene.width)
    for _ in range(count):
        shape = scene.shape(category_id, scale * float(np.exp(rng.normal(0, 0.25))))
        center = None
        if members:
            anchor = members[int(rng.integers(len(members)))]
            center = place_against(rng, shape, scene.shapes[anchor], scene.centers[anchor], scene.masks[anchor])
            if center is None:
                center = scene.anywhere(shape, scene.centers[anchor], spread)
        else:
            center = scene.anywhere(shape)
        jitter = None if base is None else np.clip(base + rng.normal(0, 12, 3), 0, 255)
        members.append(scene.add(shape, center, jitter))


def _nest_in(scene: _Scene, host: int, tries: int = 8) -> None:
    """A small object whose whole box lies inside the host's box, where it covers the least of the
    host (an empty corner, a ring's hole), painted above it."""
    rng = scene.rng
    host_mask = scene.masks[host]
    ys, xs = np.nonzero(host_mask)
    box_low, box_high = np.array([xs.min(), ys.min()], float), np.array([xs.max(), ys.max()], float)
    shape = scene.shape(scene.random_class(), _log_uniform(rng, *NESTED_FRACTION_OF_HOST) * len(xs) / (
        scene.height * scene.width))
    lo, hi = box_low - shape.low + 1, box_high - shape.high - 1
    if np.any(hi < lo):  # the host's box is too small for it
        return
    best, best_cover = None, None
    for _ in range(tries):
        center = rng.uniform(lo, hi)
        cover = int((shape.mask_at(center, scene.height, scene.width) & host_mask).sum())
        if best_cover is None or cover < best_cover:
            best, best_cover = center, cover
    scene.add(shape, best)


def render_crowded_scene(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draw one image of the crowded variant.

    Args:
        rng: the random stream; the same stream state gives the same scene.
        height, width: image size in pixels (>= 64).

    Returns:
        as :func:`.shape_scenes.render_scene`: image ``[height, width, 3]`` uint8 RGB and the
        visible instances bottom to top as ``(category_id, [height, width] bool mask)``, pairwise
        disjoint; 2-33 instances in the 6000 images of seed 100 (median 15): crowd members hidden
        below the visibility limits are dropped.
    """
    scene = _Scene(rng, height, width)
    for _ in range(int(rng.integers(0, 3))):  # large objects first: they lie under the rest
        shape = scene.shape(scene.random_class(), _log_uniform(rng, *LARGE_FRACTION))
        scene.add(shape, scene.anywhere(shape))
    hosts = list(range(len(scene.shapes)))
    for _ in range(int(rng.integers(CROWDS_RANGE[0], CROWDS_RANGE[1] + 1))):
        _add_crowd(scene)
    # Nest in a large object, else in the biggest crowd member.
    if not hosts:
        hosts = [int(np.argmax([mask.sum() for mask in scene.masks]))]
    for _ in range(int(rng.integers(1, 3))):
        _nest_in(scene, hosts[int(rng.integers(len(hosts)))])
    for _ in range(int(rng.integers(0, 4))):
        shape = scene.shape(scene.random_class(), _log_uniform(rng, *FREE_FRACTION))
        scene.add(shape, scene.anywhere(shape))
    return compose_scene(rng, scene.shapes, scene.masks, cluttered_background, scene.bases)


__all__ = ["render_crowded_scene"]
