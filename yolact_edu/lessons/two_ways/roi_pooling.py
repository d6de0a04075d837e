"""RoIPool against RoIAlign: how Mask R-CNN cuts a box out of a feature map (notebook 01 §2).

Both turn a box of any size into a fixed grid of ``output_size`` bins (7x7 for the box branch,
14x14 for the mask branch) on the FPN level the box's size selects. They differ in where they
read the feature map:

* **RoIPool** (Fast R-CNN) rounds the box to whole feature cells, splits it into bins whose
  edges are rounded to whole cells again, and takes the maximum over the cells of each bin.
  Two roundings: on P3 of a 256-px input a cell is 8 px, so the box moves by up to 4 px and a
  14x14 grid over a 6-cell box reads the same cell for several bins.
* **RoIAlign** (Mask R-CNN) keeps the box exact, splits it into equal bins and averages
  ``sampling_ratio`` x ``sampling_ratio`` points per bin, each read by bilinear interpolation
  between the four nearest cell values. No rounding anywhere: the mask lines up with the object.

Coordinates: a feature map's value ``[i, j]`` sits at the point (x=j, y=i) (torchvision's
``aligned=False`` convention, which ``MultiScaleRoIAlign`` uses), so cell j covers
[j - 0.5, j + 0.5], exactly as ``imshow`` draws it.

:class:`MultiScaleRoIPool` is torchvision's :class:`MultiScaleRoIAlign` with RoIPool inside
(same FPN level per box), and :func:`roi_pooling` swaps it into a trained model at test time.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align, roi_pool
from torchvision.ops.poolers import LevelMapper

from ...training.evaluation import category_mapping
from .scoring import score_variants

ALIGN = "RoIAlign (as trained)"
POOL_MASK = "RoIPool in the mask branch"
POOL_BOTH = "RoIPool in both branches"
POOLING_VARIANTS = (ALIGN, POOL_MASK, POOL_BOTH)


# -- where each one reads the feature map --------------------------------------------------------
def _c_round(value: float) -> int:
    """C's round(): halves away from zero (Python's round() goes to the even neighbour)."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def roi_pool_bins(box, spatial_scale: float, output_size: int, feature_size: tuple[int, int]) -> dict:
    """The cells RoIPool reads for ``box`` (x1, y1, x2, y2 in input pixels), as torchvision's
    ``roi_pool`` computes them.

    Returns {"snapped": (c1, r1, c2, r2) the box rounded to whole cells (inclusive cell indices),
    "rows": [(start, end)] per bin row, "cols": [(start, end)] per bin column (cell ranges,
    end exclusive, clipped to the map; an empty range gives 0)}. Bin (i, j) is the max over
    rows[i] x cols[j]."""
    height, width = feature_size
    c1, r1, c2, r2 = (_c_round(v * spatial_scale) for v in box)
    size_w, size_h = max(c2 - c1 + 1, 1) / output_size, max(r2 - r1 + 1, 1) / output_size

    def ranges(start: int, size: float, limit: int) -> list[tuple[int, int]]:
        def clip(cell: int) -> int:
            return min(max(cell + start, 0), limit)

        return [(clip(math.floor(k * size)), clip(math.ceil((k + 1) * size))) for k in range(output_size)]

    return {"snapped": (c1, r1, c2, r2), "rows": ranges(r1, size_h, height), "cols": ranges(c1, size_w, width)}


def roi_align_points(box, spatial_scale: float, output_size: int, sampling_ratio: int) -> np.ndarray:
    """RoIAlign's sample points for ``box`` (input pixels) in feature-map coordinates
    (``aligned=False``, as :class:`MultiScaleRoIAlign`): [S, S, 2] (x, y) with
    S = output_size * sampling_ratio; bin (i, j) averages points [i*r:(i+1)*r, j*r:(j+1)*r]."""
    x1, y1, x2, y2 = (float(v) * spatial_scale for v in box)
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)     # torchvision's minimum of one cell
    steps = (np.arange(output_size * sampling_ratio) + 0.5) / (output_size * sampling_ratio)
    xs, ys = x1 + steps * width, y1 + steps * height
    return np.stack(np.meshgrid(xs, ys, indexing="xy"), -1)


def bilinear(feature: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """The value RoIAlign reads at point (x, y) of ``feature`` [C,H,W]: bilinear between the four
    nearest cells, clamped at the edges, zero beyond one cell outside (torchvision's rule). [C]."""
    _, height, width = feature.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return feature.new_zeros(feature.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = min(int(y), height - 1), min(int(x), width - 1)
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    y, x = (float(y0) if y0 >= height - 1 else y), (float(x0) if x0 >= width - 1 else x)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * (1 - dx) * feature[:, y0, x0] + (1 - dy) * dx * feature[:, y0, x1]
            + dy * (1 - dx) * feature[:, y1, x0] + dy * dx * feature[:, y1, x1])


def roi_align_by_hand(feature: torch.Tensor, box, spatial_scale: float, output_size: int,
                      sampling_ratio: int) -> torch.Tensor:
    """RoIAlign written out: the mean of :func:`bilinear` at each bin's :func:`roi_align_points`.
    feature [C,H,W] -> [C,output_size,output_size]; equals torchvision's ``roi_align``."""
    points = roi_align_points(box, spatial_scale, output_size, sampling_ratio)
    values = torch.stack([torch.stack([bilinear(feature, x, y) for x, y in row]) for row in points])   # [S,S,C]
    r = sampling_ratio
    return values.reshape(output_size, r, output_size, r, -1).mean((1, 3)).permute(2, 0, 1)


def roi_pool_by_hand(feature: torch.Tensor, box, spatial_scale: float, output_size: int) -> torch.Tensor:
    """RoIPool written out: the max over each bin's cells of :func:`roi_pool_bins` (0 for an
    empty bin). feature [C,H,W] -> [C,output_size,output_size]; equals torchvision's ``roi_pool``."""
    bins = roi_pool_bins(box, spatial_scale, output_size, tuple(feature.shape[-2:]))
    out = feature.new_zeros((feature.shape[0], output_size, output_size))
    for i, (r0, r1) in enumerate(bins["rows"]):
        for j, (c0, c1) in enumerate(bins["cols"]):
            if r1 > r0 and c1 > c0:
                out[:, i, j] = feature[:, r0:r1, c0:c1].amax((1, 2))
    return out


# -- the FPN level of a box, and RoIPool over the levels ------------------------------------------
def level_setup(features: list[torch.Tensor], image_shapes, canonical_scale: int = 224,
                canonical_level: int = 4) -> tuple[list[float], LevelMapper]:
    """Each level's scale (feature size / input size, a power of 2) and the FPN paper's level
    mapper (eq. 1: level = floor(4 + log2(sqrt(box area) / 224)), clamped to the levels there
    are), computed as :class:`MultiScaleRoIAlign` does."""
    height = max(int(shape[0]) for shape in image_shapes)
    scales = [2.0 ** round(math.log2(f.shape[-2] / height)) for f in features]
    mapper = LevelMapper(int(-math.log2(scales[0])), int(-math.log2(scales[-1])), canonical_scale=canonical_scale,
                         canonical_level=canonical_level)
    return scales, mapper


class MultiScaleRoIPool(MultiScaleRoIAlign):
    """:class:`torchvision.ops.MultiScaleRoIAlign` with RoIPool instead of RoIAlign: the same
    FPN level for each box, the same output size, max over whole cells instead of bilinear
    samples (``sampling_ratio`` is kept but unused). Same call: ``(features, boxes, image_shapes)``
    -> [R,C,out,out]."""

    @classmethod
    def like(cls, pooler: MultiScaleRoIAlign) -> MultiScaleRoIPool:
        """A RoIPool twin of ``pooler``: same levels, output size and level mapping."""
        return cls(list(pooler.featmap_names), pooler.output_size, pooler.sampling_ratio,
                   canonical_scale=pooler.canonical_scale, canonical_level=pooler.canonical_level)

    def forward(self, x, boxes, image_shapes):
        features = [value for name, value in x.items() if name in self.featmap_names]
        scales, mapper = level_setup(features, image_shapes, self.canonical_scale, self.canonical_level)
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)])
        levels = mapper(boxes) if len(features) > 1 else torch.zeros(len(rois), dtype=torch.int64, device=rois.device)
        result = features[0].new_zeros((len(rois), features[0].shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales)):
            index = torch.nonzero(levels == level).flatten()
            if len(index):
                result[index] = roi_pool(feature, rois[index], self.output_size, scale).to(result.dtype)
        return result


@contextmanager
def roi_pooling(model, branches: tuple[str, ...] = ("mask",)) -> Iterator:
    """Within the block, ``model`` (a torchvision Mask R-CNN) cuts its RoIs with RoIPool in the
    given branches ("mask", "box"); the trained RoIAlign poolers are always put back, even when
    the block raises. Test time only: the model was trained with RoIAlign."""
    heads = model.roi_heads
    saved = {}
    try:
        for branch in branches:
            if branch not in ("mask", "box"):
                raise ValueError(f"branches must be 'mask' and/or 'box', got {branch!r}")
            name = f"{branch}_roi_pool"
            saved[name] = getattr(heads, name)
            setattr(heads, name, MultiScaleRoIPool.like(saved[name]))
        yield model
    finally:
        for name, pooler in saved.items():
            setattr(heads, name, pooler)


# -- one real box -----------------------------------------------------------------------------------
@torch.no_grad()
def roi_geometry(model, image: np.ndarray, box) -> dict:
    """What the mask branch of ``model`` (``maskrcnn_tiny``) reads for one ``box`` (xyxy in
    ``image`` pixels, e.g. a detection's).

    Returns {"level" (feature-map name), "scale" (cells per input pixel), "feature" [C,Hf,Wf] the
    level it reads, "box" the box in input pixels, "output_size", "sampling_ratio", "align"
    [C,out,out] RoIAlign's output and "pool" [C,out,out] RoIPool's}."""
    pooler = model.roi_heads.mask_roi_pool
    height, width = image.shape[:2]
    size = model.cfg.max_size
    box_input = torch.tensor([float(v) for v in box]) * torch.tensor([size / width, size / height] * 2)
    features = model.backbone(model.preprocess(image))
    names = [name for name in features if name in pooler.featmap_names]
    scales, mapper = level_setup([features[n] for n in names], [(size, size)], pooler.canonical_scale,
                                 pooler.canonical_level)
    level = int(mapper([box_input[None]])[0]) if len(names) > 1 else 0
    feature, scale = features[names[level]][0].cpu(), scales[level]
    out, ratio = pooler.output_size[0], pooler.sampling_ratio
    rois = torch.cat([torch.zeros(1), box_input])[None]
    return {"level": names[level], "scale": scale, "feature": feature, "box": box_input.tolist(),
            "output_size": out, "sampling_ratio": ratio,
            "align": roi_align(feature[None], rois, out, scale, ratio)[0],
            "pool": roi_pool(feature[None], rois, out, scale)[0]}


def plot_roi_geometry(geometry: dict, axes=None, margin: float = 1.5):
    """Four panels for :func:`roi_geometry`: RoIPool's snapped box and whole-cell bins, and
    RoIAlign's exact box, bins and bilinear sample points, both on the feature map they read
    (channel norm, cells as drawn by imshow), then what each hands the mask head (the channel
    that varies most). Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(15, 4), gridspec_kw={"width_ratios": [1.3, 1.3, 1, 1]})
    feature, scale, out = geometry["feature"], geometry["scale"], geometry["output_size"]
    x1, y1, x2, y2 = (v * scale for v in geometry["box"])
    bins = roi_pool_bins(geometry["box"], scale, out, tuple(feature.shape[-2:]))
    points = roi_align_points(geometry["box"], scale, out, geometry["sampling_ratio"])
    norm = feature.norm(dim=0).numpy()
    cell_px = 1 / scale
    for ax in axes[:2]:
        ax.imshow(norm, cmap="gray")
        ax.set_xlim(x1 - margin - 0.5, x2 + margin + 0.5)
        ax.set_ylim(y2 + margin + 0.5, y1 - margin - 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="tab:orange", linewidth=2,
                               linestyle="--", label="exact box"))
    c1, r1, c2, r2 = bins["snapped"]
    ax = axes[0]
    ax.add_patch(Rectangle((c1 - 0.5, r1 - 0.5), c2 - c1 + 1, r2 - r1 + 1, fill=False, edgecolor="tab:red",
                           linewidth=2, label="snapped to cells"))
    edges_x = sorted({edge - 0.5 for pair in bins["cols"] for edge in pair})
    edges_y = sorted({edge - 0.5 for pair in bins["rows"] for edge in pair})
    for x in edges_x:
        ax.plot([x, x], [edges_y[0], edges_y[-1]], color="tab:red", linewidth=0.7)
    for y in edges_y:
        ax.plot([edges_x[0], edges_x[-1]], [y, y], color="tab:red", linewidth=0.7)
    distinct = len(set(bins["cols"])) * len(set(bins["rows"]))
    reads = f"only {distinct} distinct cell blocks" if distinct < out * out else "bin edges on whole cells"
    ax.set_title(f"RoIPool on level {geometry['level']!r} ({cell_px:g} px cells):\n"
                 f"box snapped to cells, {out}x{out} bins read {reads}", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    ax = axes[1]
    bin_x = np.linspace(x1, x2, out + 1) if x2 - x1 >= 1 else x1 + np.arange(out + 1) / out
    bin_y = np.linspace(y1, y2, out + 1) if y2 - y1 >= 1 else y1 + np.arange(out + 1) / out
    for x in bin_x:
        ax.plot([x, x], [bin_y[0], bin_y[-1]], color="tab:cyan", linewidth=0.5)
    for y in bin_y:
        ax.plot([bin_x[0], bin_x[-1]], [y, y], color="tab:cyan", linewidth=0.5)
    ax.scatter(points[..., 0].ravel(), points[..., 1].ravel(), s=2, color="tab:cyan", label="sample points")
    ax.set_title(f"RoIAlign: exact box, {out}x{out} equal bins,\n{geometry['sampling_ratio']}x"
                 f"{geometry['sampling_ratio']} bilinear samples per bin", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    channel = int(geometry["align"].flatten(1).var(1).argmax())
    low = float(min(geometry["align"][channel].min(), geometry["pool"][channel].min()))
    high = float(max(geometry["align"][channel].max(), geometry["pool"][channel].max()))
    for ax, key, title in ((axes[2], "pool", "RoIPool output"), (axes[3], "align", "RoIAlign output")):
        ax.imshow(geometry[key][channel].numpy(), cmap="viridis", vmin=low, vmax=high)
        ax.set_title(f"{title}, channel {channel}\n({out}x{out}, into the mask head)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def smallest_box(boxes: torch.Tensor, scores: torch.Tensor, min_score: float = 0.5) -> int:
    """Index of the smallest box [N,4] (by area) among those scoring >= ``min_score`` (the best-scoring
    box when none does): where rounding to whole feature cells matters most."""
    area = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    if not (scores >= min_score).any():
        return int(scores.argmax())
    return int(torch.where(scores >= min_score, area, torch.full_like(area, float("inf"))).argmin())


# -- what rounding costs ------------------------------------------------------------------------------
def pooling_study(model, dataset, count: int) -> dict:
    """Mask AP, box AP and Boundary IoU of ``model`` (``maskrcnn_tiny``) on the first ``count``
    images of ``dataset``: as trained (RoIAlign), with RoIPool in the mask branch, and with RoIPool
    in both branches, all at test time only. Returns {"scores": {variant: row} as
    :func:`~yolact_edu.lessons.two_ways.scoring.score_variants`, "images": count}."""
    indices = list(range(min(count, len(dataset))))
    category_ids, _ = category_mapping(model, dataset)

    def run(index):
        image = dataset.load_image(index)
        found = {ALIGN: model.predict(image, score_threshold=0.0).cpu()}
        with roi_pooling(model, ("mask",)):
            found[POOL_MASK] = model.predict(image, score_threshold=0.0).cpu()
        with roi_pooling(model, ("mask", "box")):
            found[POOL_BOTH] = model.predict(image, score_threshold=0.0).cpu()
        return found

    return {"scores": score_variants(dataset, indices, run, category_ids), "images": len(indices)}


def pooling_sentence(study: dict) -> str:
    """The measured cost of rounding, in words generated from :func:`pooling_study`."""
    scores = study["scores"]
    align, mask, both = (scores[name] for name in POOLING_VARIANTS)

    def change(row, key):
        delta = row[key] - align[key]
        return f"{'falls' if delta < 0 else 'rises'} from {align[key]:.3f} to {row[key]:.3f}"

    return (f"On {study['images']} validation images, swapping RoIAlign for RoIPool in the mask branch at test "
            f"time (the model was trained with RoIAlign), mask AP {change(mask, 'mask AP')}, mask AP75 "
            f"{change(mask, 'mask AP75')} and Boundary IoU {change(mask, 'boundary IoU')}; with RoIPool in "
            f"the box branch as well, box AP {change(both, 'box AP')} and mask AP {change(both, 'mask AP')}.")


__all__ = ["ALIGN", "POOL_MASK", "POOL_BOTH", "POOLING_VARIANTS", "roi_pool_bins", "roi_align_points", "bilinear",
           "roi_align_by_hand", "roi_pool_by_hand", "level_setup", "MultiScaleRoIPool", "roi_pooling",
           "roi_geometry", "plot_roi_geometry", "smallest_box", "pooling_study", "pooling_sentence"]
