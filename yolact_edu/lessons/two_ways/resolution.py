"""How fine can each design draw a boundary? (notebook 01 §4)

Mask R-CNN predicts every mask on a 28x28 grid laid over the object's box, so a grid cell is
(box size / 28) pixels: small objects get fine cells, big ones coarse cells. YOLACT draws every
mask from prototypes on one grid over the whole image (48x48 for a 192 input, 138x138 for
550), so a cell is (image size / 138) pixels whatever the object's size: big objects get
plenty of cells, small ones few.

The functions here take a perfect (ground-truth) mask and put it through each grid — the best
either head could ever output — then measure what survives: mask IoU, and Boundary IoU
(Cheng et al., 2021: IoU of the strips of width ``d`` inside each mask's contour), which
punishes boundary errors on large objects that plain IoU barely notices.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from ...ops.assemble import masks_to_image
from ...ops.boxes import crop
from ...ops.mask_iou import mask_pair_iou, paired_mask_iou
from ...viz.palette import model_color

ROI_SIZE = 28          # Mask R-CNN's mask head output
SHAPE_KINDS = ("circle", "star", "rectangle")
_SHIFT = 4             # cv2 fractional bits: shapes placed to 1/16 px, so sizes vary smoothly


def _as_tensor(mask) -> torch.Tensor:
    mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    return mask.float()


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def roi_mask(mask, box, resolution: int = ROI_SIZE) -> torch.Tensor:
    """The best ``resolution`` x ``resolution`` RoI mask for an object: RoIAlign of its perfect
    mask over its box, as Mask R-CNN builds its training targets.

    mask [H,W] {0,1}; box (x1, y1, x2, y2) pixels, edges (pixel i spans [i, i+1]).
    Returns [M,M] float in [0,1] (fraction of the cell covered, approximately).
    """
    box = torch.as_tensor(box, dtype=torch.float32).reshape(1, 4)
    # aligned=True: pixel i's value sits at i + 0.5, so the grid covers exactly the box.
    return roi_align(_as_tensor(mask)[None, None], [box], (resolution, resolution), 1.0, -1, True)[0, 0]


def paste_roi_mask(roi: torch.Tensor, box, height: int, width: int) -> torch.Tensor:
    """Resample a soft RoI mask [M,M] back into an image [H,W] (bilinear at pixel centres, zero
    outside the box). The exact inverse geometry of :func:`roi_mask`; torchvision's own paste
    rounds the box to whole pixels, which can move an edge by one pixel."""
    x1, y1, x2, y2 = (float(v) for v in box)
    xs = (torch.arange(width, dtype=torch.float32) + 0.5 - x1) / max(x2 - x1, 1e-6) * 2 - 1
    ys = (torch.arange(height, dtype=torch.float32) + 0.5 - y1) / max(y2 - y1, 1e-6) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]          # [1,H,W,2]
    pasted = F.grid_sample(roi.float()[None, None], grid, mode="bilinear", padding_mode="border",
                           align_corners=False)[0, 0]
    inside = (grid[0, ..., 0].abs() <= 1) & (grid[0, ..., 1].abs() <= 1)
    return pasted * inside


def prototype_mask(mask, box, grid=48, crop_to_box: bool = True) -> torch.Tensor:
    """The best mask YOLACT's prototype grid can hold for an object: the perfect mask [H,W]
    averaged onto a ``grid`` (int or (Hp, Wp)) over the whole image, then cropped to ``box``
    (xyxy pixels) as :func:`yolact_edu.ops.boxes.crop` does (1-cell padding). Returns [Hp,Wp] in [0,1]."""
    mask = _as_tensor(mask)
    height, width = mask.shape
    grid = _pair(grid)
    # Area averaging: each cell holds the fraction of it the object covers, the best a soft mask
    # at this resolution can say. The image is stretched to the grid, as YOLACT stretches it.
    cells = F.adaptive_avg_pool2d(mask[None, None], grid)[0, 0]
    if crop_to_box:
        rel = torch.tensor(box, dtype=torch.float32).reshape(1, 4) / torch.tensor([width, height] * 2)
        cells = crop(cells[..., None], rel)[..., 0]
    return cells


def best_masks(mask, box, roi_size: int = ROI_SIZE, proto_grid=48, threshold: float = 0.5) -> dict:
    """A perfect mask [H,W] through both heads' grids and back to the image.

    Returns {"roi_grid": [M,M], "roi": [H,W] bool, "proto_grid": [Hp,Wp], "proto": [H,W] bool}.
    The RoI path uses :func:`roi_mask` + :func:`paste_roi_mask`; the prototype path
    :func:`prototype_mask` + YOLACT's own upsample-and-threshold
    (:func:`yolact_edu.ops.assemble.masks_to_image`).
    """
    height, width = _as_tensor(mask).shape
    roi = roi_mask(mask, box, roi_size)
    cells = prototype_mask(mask, box, proto_grid)
    return {"roi_grid": roi, "roi": paste_roi_mask(roi, box, height, width) > threshold,
            "proto_grid": cells, "proto": masks_to_image(cells[None], height, width, threshold)[0]}


def boundary_band(mask, width: int = 2) -> np.ndarray:
    """The pixels of ``mask`` [H,W] within ``width`` px of its contour (image edges count as
    contour): mask minus its erosion by a (2*width+1) square. Returns [H,W] bool."""
    mask = np.asarray(mask, np.uint8)
    eroded = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=width,
                       borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (mask > 0) & (eroded == 0)


def boundary_iou(a, b, width: int = 2) -> float:
    """Boundary IoU (Cheng et al., CVPR 2021) of masks [H,W]: IoU of their ``width``-px inner
    contour bands. In [0,1]; 1.0 when both are empty."""
    return mask_pair_iou(boundary_band(a, width), boundary_band(b, width))


def mask_box(mask) -> tuple[float, float, float, float]:
    """Tight box (x1, y1, x2, y2) of a non-empty mask [H,W], pixel edges (x2 = last column + 1)."""
    ys, xs = np.nonzero(np.asarray(mask))
    if len(xs) == 0:
        raise ValueError("the mask is empty")
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def shape_mask(kind: str, size: float, image_size=(480, 640), center=None) -> np.ndarray:
    """A ``kind`` ("circle", "star" or "rectangle") ``size`` px across, drawn with sub-pixel
    precision in an image of ``image_size`` (H, W), centred at ``center`` (x, y; default: the
    image centre nudged off the pixel grid). Returns [H,W] bool."""
    if kind not in SHAPE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SHAPE_KINDS)}, got {kind!r}")
    height, width = _pair(image_size)
    cx, cy = center if center is not None else (width / 2 + 0.37, height / 2 + 0.21)
    radius = size / 2
    if kind == "circle":
        angles = np.linspace(0, 2 * np.pi, 180, endpoint=False)
        points = np.stack([np.cos(angles), np.sin(angles)], 1) * radius
    elif kind == "star":
        angles = np.linspace(0, 2 * np.pi, 10, endpoint=False) - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.4)
        points = np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
    else:
        points = np.array([[-1, -0.6], [1, -0.6], [1, 0.6], [-1, 0.6]]) * radius
    # cv2 samples polygons at pixel corners; the -0.5 puts the shape in pixel-edge coordinates.
    points = np.round((points + [cx - 0.5, cy - 0.5]) * (1 << _SHIFT)).astype(np.int32)
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, [points], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def resolution_study(masks, boxes=None, roi_size: int = ROI_SIZE, proto_grid=48,
                     boundary_width: int = 2) -> list[dict]:
    """Best-case quality of both heads for each perfect mask [n,H,W] (boxes [n,4] xyxy pixels,
    default: the masks' tight boxes).

    Returns one dict per object: "size" (sqrt of the area, px), "iou_roi", "iou_proto",
    "biou_roi", "biou_proto" (Boundary IoU, band ``boundary_width`` px), all in [0,1].
    Empty masks are skipped.
    """
    masks = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks, bool)
    rows = []
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        box = mask_box(mask) if boxes is None else [float(v) for v in boxes[i]]
        best = best_masks(mask, box, roi_size, proto_grid)
        rows.append({"size": float(np.sqrt(mask.sum())),
                     "iou_roi": mask_pair_iou(mask, best["roi"].numpy()),
                     "iou_proto": mask_pair_iou(mask, best["proto"].numpy()),
                     "biou_roi": boundary_iou(mask, best["roi"].numpy(), boundary_width),
                     "biou_proto": boundary_iou(mask, best["proto"].numpy(), boundary_width)})
    return rows


def size_sweep(kind: str = "star", sizes=(12, 24, 48, 96, 192, 384), image_size=(480, 640),
               roi_size: int = ROI_SIZE, proto_grid=138, boundary_width: int = 2) -> list[dict]:
    """:func:`resolution_study` of one shape drawn at several ``sizes`` (px across) in an image
    of ``image_size``; each row also has "across" (the requested size)."""
    rows = []
    for size in sizes:
        mask = shape_mask(kind, size, image_size)
        row = resolution_study(mask[None], None, roi_size, proto_grid, boundary_width)[0]
        rows.append({"across": float(size), **row})
    return rows


def summarize_by_size(rows: list[dict], edges=(32, 96)) -> list[dict]:
    """Median of each measure of :func:`resolution_study` rows in size bins ("size" < edges[0],
    edges[0]..edges[1], ...; the default edges are COCO's small / medium / large at 32 and 96 px).
    Returns one dict per non-empty bin: "bin" (a label), "count", and the medians."""
    bounds = [0.0, *edges, float("inf")]
    summary = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        inside = [r for r in rows if low <= r["size"] < high]
        if not inside:
            continue
        label = f"< {high:g} px" if low == 0 else f">= {low:g} px" if high == float("inf") else f"{low:g}-{high:g} px"
        summary.append({"bin": label, "count": len(inside),
                        **{k: float(np.median([r[k] for r in inside]))
                           for k in ("iou_roi", "iou_proto", "biou_roi", "biou_proto")}})
    return summary


def plot_resolution_study(rows: list[dict], ax=None, metric: str = "biou", x: str = "size",
                          labels=("Mask R-CNN 28x28 RoI grid", "YOLACT prototype grid"), title=None):
    """``metric`` ("iou" or "biou") of both grids against object size; a line plot when the rows
    come from :func:`size_sweep`, a scatter otherwise. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    rows = sorted(rows, key=lambda r: r[x])
    xs = [r[x] for r in rows]
    style = {"marker": "o"} if "across" in rows[0] else {"marker": ".", "linestyle": "none", "alpha": 0.6}
    # each design in its family's colour, as in every other plot of the notebook
    ax.plot(xs, [r[f"{metric}_roi"] for r in rows], label=labels[0], color=model_color(labels[0]), **style)
    ax.plot(xs, [r[f"{metric}_proto"] for r in rows], label=labels[1], color=model_color(labels[1]), **style)
    ax.set_xscale("log")
    ax.set_xlabel("object size (sqrt of area, px)" if x == "size" else "object size (px across)")
    ax.set_ylabel("Boundary IoU" if metric == "biou" else "mask IoU")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def error_picture(truth, predicted) -> np.ndarray:
    """Where a mask [H,W] agrees with the truth [H,W] and where not, as HxWx3 uint8 RGB: white =
    object, black = background, red = extra pixels (false positives), blue = missed pixels."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    picture = np.zeros((*truth.shape, 3), np.uint8)
    picture[truth & predicted] = 255
    picture[predicted & ~truth] = (230, 40, 40)
    picture[truth & ~predicted] = (40, 90, 255)
    return picture


def _worst_window(errors: np.ndarray, box, size: int) -> tuple[int, int, int, int]:
    """The size x size window (clipped to the image) holding the most error pixels, near ``box``."""
    height, width = errors.shape
    density = cv2.boxFilter(errors.astype(np.float32), -1, (size, size), normalize=False)
    x1, y1, x2, y2 = (int(v) for v in box)
    region = np.zeros_like(density)
    region[max(y1, 0):y2 + 1, max(x1, 0):x2 + 1] = density[max(y1, 0):y2 + 1, max(x1, 0):x2 + 1]
    cy, cx = np.unravel_index(int(np.argmax(region)), region.shape)
    left = int(np.clip(cx - size // 2, 0, max(width - size, 0)))
    top = int(np.clip(cy - size // 2, 0, max(height - size, 0)))
    return left, top, min(left + size, width), min(top + size, height)


def plot_boundary_zoom(mask, box=None, roi_size: int = ROI_SIZE, proto_grid=48, window=None, axes=None,
                       boundary_width: int = 2):
    """Close-ups of one object's boundary: the perfect mask, and its best RoI-grid and
    prototype-grid masks pasted back, with errors coloured (:func:`error_picture`: red extra,
    blue missed) and each grid's cell lines drawn — box-relative for the RoI grid, image-wide
    for the prototype grid.

    mask [H,W] bool; box xyxy pixels (default: tight box); window (x1, y1, x2, y2) region to
    show (default: the square, ~40 % of the object's size, where the two grids err most).
    Returns the three axes.
    """
    import matplotlib.pyplot as plt

    mask = np.asarray(mask, bool)
    height, width = mask.shape
    box = mask_box(mask) if box is None else [float(v) for v in box]
    best = best_masks(mask, box, roi_size, proto_grid)
    roi, proto = best["roi"].numpy(), best["proto"].numpy()
    if window is None:
        size = int(max(16, 0.4 * max(box[2] - box[0], box[3] - box[1])))
        window = _worst_window((roi != mask) | (proto != mask), box, size)
    wx1, wy1, wx2, wy2 = (int(round(v)) for v in window)
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    grid_h, grid_w = _pair(proto_grid)
    bx = box[0] + (box[2] - box[0]) / roi_size * np.arange(roi_size + 1)
    by = box[1] + (box[3] - box[1]) / roi_size * np.arange(roi_size + 1)
    panels = [("ground truth", error_picture(mask, mask), None, None),
              (f"{roi_size}x{roi_size} RoI grid: IoU {mask_pair_iou(mask, roi):.3f}, "
               f"BIoU {boundary_iou(mask, roi, boundary_width):.2f}", error_picture(mask, roi), bx, by),
              (f"{grid_h}x{grid_w} prototypes: IoU {mask_pair_iou(mask, proto):.3f}, "
               f"BIoU {boundary_iou(mask, proto, boundary_width):.2f}", error_picture(mask, proto),
               width / grid_w * np.arange(grid_w + 1), height / grid_h * np.arange(grid_h + 1))]
    for ax, (title, picture, xs, ys) in zip(axes, panels):
        # extent in pixel-edge coordinates, so grid lines land on cell borders
        ax.imshow(picture[wy1:wy2, wx1:wx2], extent=(wx1, wx2, wy2, wy1), interpolation="nearest")
        if xs is not None:
            for x in xs[(xs >= wx1) & (xs <= wx2)]:
                ax.axvline(x, color="0.55", linewidth=0.6)
            for y in ys[(ys >= wy1) & (ys <= wy2)]:
                ax.axhline(y, color="0.55", linewidth=0.6)
        ax.set_xlim(wx1, wx2)
        ax.set_ylim(wy2, wy1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def best_match(masks, truth) -> int:
    """Index of the mask [N,H,W] that overlaps ``truth`` [H,W] most (mask IoU); -1 when N = 0."""
    masks = _as_tensor(masks).bool()
    if len(masks) == 0:
        return -1
    truth = _as_tensor(truth).bool()
    return int(paired_mask_iou(masks, truth.expand_as(masks)).argmax())


def plot_predicted_boundaries(truth, predictions: dict, window=None, axes=None, boundary_width: int = 2):
    """Close-ups of one object's boundary as trained models drew it: the ground truth, then each
    model's mask with errors coloured (:func:`error_picture`: red extra, blue missed) and its
    IoU and Boundary IoU in the title.

    truth [H,W] bool; predictions {model name: mask [H,W] bool}; window (x1, y1, x2, y2), default
    the square (~40 % of the object) where the models err most. Returns the axes.
    """
    import matplotlib.pyplot as plt

    truth = np.asarray(truth, bool)
    masks = {name: np.asarray(mask, bool) for name, mask in predictions.items()}
    box = mask_box(truth)
    if window is None:
        size = int(max(16, 0.4 * max(box[2] - box[0], box[3] - box[1])))
        errors = np.zeros_like(truth)
        for mask in masks.values():
            errors |= mask != truth
        window = _worst_window(errors, box, size)
    wx1, wy1, wx2, wy2 = (int(round(v)) for v in window)
    if axes is None:
        _, axes = plt.subplots(1, len(masks) + 1, figsize=(3.4 * (len(masks) + 1), 3.6))
    panels = [("ground truth", error_picture(truth, truth))]
    panels += [(f"{name}: IoU {mask_pair_iou(truth, mask):.3f}, BIoU {boundary_iou(truth, mask, boundary_width):.2f}",
                error_picture(truth, mask)) for name, mask in masks.items()]
    for ax, (title, picture) in zip(axes, panels):
        ax.imshow(picture[wy1:wy2, wx1:wx2], extent=(wx1, wx2, wy2, wy1), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


__all__ = ["ROI_SIZE", "roi_mask", "paste_roi_mask", "prototype_mask", "best_masks",
           "boundary_band", "boundary_iou", "mask_box", "shape_mask", "resolution_study", "size_sweep",
           "summarize_by_size", "error_picture",
           "plot_resolution_study", "plot_boundary_zoom", "best_match", "plot_predicted_boundaries"]
