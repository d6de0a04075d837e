"""Toy scenes for comparing the mask-assembly families of :mod:`yolact_edu.lessons.landscape.mask_families`:
each rule is fed the inputs a perfectly trained network *could* produce for a synthetic scene,
so the figure shows what the rule does, not what a network learned (notebook 05, "Mask
assembly families").

    >>> scene = toy_scene()
    >>> demos = family_demos(scene)           # {"YOLACT": FamilyDemo, ..., "SOLOv2": ...}
    >>> fig = plot_family_gallery(scene, demos)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from .mask_families import (
    blendmask_masks,
    centermask_masks,
    condinst_handset_params,
    condinst_masks,
    coordinate_features,
    relative_coordinates,
    solo_center_cells,
    solov2_handset_kernel,
    solov2_masks,
    yolact_masks,
)

__all__ = ["ToyScene", "toy_scene", "FamilyDemo", "family_demos", "solov2_duplicates", "plot_family_gallery",
           "plot_solo_duplicates"]


@dataclass
class ToyScene:
    """A few objects on an H x W canvas: masks [n,H,W] {0,1}, boxes [n,4] px (exclusive end),
    centers [n,2] (x, y) px (centre of mass), labels [n] int64."""

    masks: torch.Tensor
    boxes: torch.Tensor
    centers: torch.Tensor
    labels: torch.Tensor

    @property
    def foreground(self) -> torch.Tensor:
        """[H,W] {0,1}: the union of the objects."""
        return self.masks.amax(dim=0)


def toy_scene(size: int = 64) -> ToyScene:
    """Three separated objects on a size x size canvas: a disc, a rectangle, an ellipse."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    u = size / 64
    masks = torch.stack([
        ((xs - 17 * u) ** 2 + (ys - 19 * u) ** 2 < (10 * u) ** 2),
        (xs > 36 * u) & (xs < 57 * u) & (ys > 7 * u) & (ys < 24 * u),
        ((xs - 38 * u) / (15 * u)) ** 2 + ((ys - 47 * u) / (9 * u)) ** 2 < 1,
    ]).float()
    boxes, centers = [], []
    for mask in masks:
        rows, cols = torch.nonzero(mask, as_tuple=True)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        centers.append([cols.float().mean() + 0.5, rows.float().mean() + 0.5])
    return ToyScene(masks, torch.tensor(boxes, dtype=torch.float32), torch.tensor(centers),
                    torch.tensor([0, 1, 2]))


def _smooth_noise(channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    # Low-frequency noise in [-1, 1]: what untrained feature maps roughly look like.
    coarse = torch.rand(1, channels, 4, 4, generator=generator) * 2 - 1
    return F.interpolate(coarse, (size, size), mode="bicubic", align_corners=False)[0].clamp(-1, 1)


def _unit(pixels: torch.Tensor, size: int) -> torch.Tensor:
    # Pixel-centre coordinates -> the [-1, 1] range of coordinate_features (linspace over pixels).
    return (pixels - 0.5) / (size - 1) * 2 - 1


def _disc_radii(boxes: torch.Tensor, size: int) -> torch.Tensor:
    # A disc just larger than each box's half diagonal, in the [-1, 1] units.
    return 1.05 * (boxes[:, 2:] - boxes[:, :2]).norm(dim=1) / 2 / (size - 1) * 2


@dataclass
class FamilyDemo:
    """One family's rule applied to a :class:`ToyScene`, with what to draw: masks [n,H,W] in
    [0,1]; ``shared`` [c,H,W] shared maps (a few of them); ``per_instance`` instance 0's own input (a map or a
    vector); ``flow`` the tensor shapes of the rule; ``locality`` "boxes", "centers" or "cells"."""

    name: str
    masks: torch.Tensor
    shared: torch.Tensor
    shared_title: str
    per_instance: torch.Tensor
    per_instance_title: str
    flow: str
    locality: str


def family_demos(scene: ToyScene, seed: int = 0) -> dict[str, FamilyDemo]:
    """Each family's rule on ``scene`` with inputs a perfectly trained network *could* output,
    written from the scene's ground truth (so the figure shows the rule, not a learned model):
    the shared maps hold the foreground f in {0,1} plus smooth noise channels that the
    per-instance parameters ignore."""
    g = torch.Generator().manual_seed(seed)
    fg, boxes, centers, n = scene.foreground, scene.boxes, scene.centers, len(scene.labels)
    size = fg.shape[-1]

    def shape(t):
        return str(list(t.shape))

    protos = 4 * torch.cat([torch.stack([fg, 1 - fg]), _smooth_noise(2, size, g).clamp(min=0)])
    coefs = torch.cat([torch.tensor([[1.0, -1.0]]).expand(n, 2), 0.1 * torch.randn(n, 2, generator=g)], 1)
    yolact = FamilyDemo("YOLACT", yolact_masks(protos, coefs, boxes), protos, "4 prototypes",
                        coefs[0], "instance 0: 4 coefficients",
                        f"protos {shape(protos)} x coefs {shape(coefs)}\n-> sigmoid -> crop to box", "boxes")

    bases = torch.cat([torch.stack([4 * (2 * fg - 1), torch.full_like(fg, -4.0)]), _smooth_noise(2, size, g)])
    # Instance i's own mask, coarsely pooled in its box: the instance-aware part BlendMask adds.
    coarse = torch.cat([roi_align(scene.masks[i][None, None], [boxes[i:i + 1]], 7, aligned=True)[:, 0]
                        for i in range(n)])                                                     # [n,7,7]
    attentions = torch.stack([8 * coarse - 4, 4 - 8 * coarse, torch.full_like(coarse, -8.0),
                              torch.full_like(coarse, -8.0)], dim=1)
    blend = FamilyDemo("BlendMask", blendmask_masks(bases, attentions, boxes)[1], bases, "4 bases",
                       attentions[0].softmax(0)[0], "instance 0: attention on base 0 (7x7)",
                       f"RoIAlign(bases {shape(bases)}) -> 28x28 per RoI\nblended by attn {shape(attentions)}",
                       "boxes")

    features = torch.cat([4 * (2 * fg[None] - 1), _smooth_noise(2, size, g)])
    sam_weight = torch.zeros(1, 2, 3, 3)
    sam_weight[0, 1, 1, 1] = 2.0                      # attend where the channel max is high
    out = centermask_masks(features, boxes, sam_weight, torch.zeros(1), torch.tensor([1.0, 0, 0]),
                           torch.tensor(0.0))
    center = FamilyDemo("CenterMask", out["masks"], features, "3 feature channels",
                        out["attention"][0, 0], "instance 0: spatial attention (14x14)",
                        f"RoIAlign(features {shape(features)}) -> 14x14\n-> x attention -> 28x28 per RoI", "boxes")

    mask_features = torch.cat([fg[None], _smooth_noise(7, size, g)])
    coord_scale = size / 4
    # Half sizes of each box around the detection location, i.e. the filter encodes a box.
    reach = torch.maximum(centers - boxes[:, :2], boxes[:, 2:] - centers) / coord_scale
    params = torch.stack([condinst_handset_params(8, r.tolist(), "box", foreground_channel=0) for r in reach])
    rel = relative_coordinates(centers[:1], size, size, coord_scale)[0]
    condinst = FamilyDemo("CondInst", condinst_masks(mask_features, centers, params, coord_scale=coord_scale),
                          mask_features[:4], "mask features (4 of 8)",
                          rel.abs().sum(0), "instance 0: |dx|+|dy| (relative coords)",
                          f"features {shape(mask_features)} + 2 coords\n"
                          f"-> 3 dynamic 1x1 convs ({params.shape[1]} params each)", "centers")

    unified = coordinate_features(fg)
    kernels = torch.stack([solov2_handset_kernel(tuple(_unit(c, size).tolist()), float(r))
                           for c, r in zip(centers, _disc_radii(boxes, size))])
    solo = FamilyDemo("SOLOv2", solov2_masks(unified, kernels), unified[1:], "features 1-4 (of 5)",
                      kernels[0], "instance 0: 1x1 kernel (5 numbers)",
                      f"kernels {shape(kernels)} (from grid cells)\n* features {shape(unified)}", "cells")
    return {demo.name: demo for demo in (yolact, blend, center, condinst, solo)}


def solov2_duplicates(scene: ToyScene, grid: int = 5, epsilon: float = 0.2) -> dict[str, torch.Tensor]:
    """SOLOv2 on ``scene`` with every positive cell of every object predicting a mask (as after
    training: all cells of an object's centre region fire), each kernel centred on its *cell*
    (so the duplicates differ a little) and scored lower the farther the cell is from the
    object's centre. Returns "cells" [m], "labels" [m], "scores" [m] (descending),
    "masks" [m,H,W] {0,1} and "owner" [m] (object index) -- the input Matrix NMS cleans up."""
    fg = scene.foreground
    size = fg.shape[-1]
    unified = coordinate_features(fg)
    cell_px = size / grid
    cells, owners, kernels, scores = [], [], [], []
    for i, mask in enumerate(scene.masks):
        box = scene.boxes[i]
        radius = float(_disc_radii(box[None], size)[0])
        for cell in solo_center_cells(mask, grid, epsilon).tolist():
            row, col = divmod(cell, grid)
            center = torch.tensor([(col + 0.5) * cell_px, (row + 0.5) * cell_px])
            distance = float((center - scene.centers[i]).norm()) / cell_px
            cells.append(cell)
            owners.append(i)
            kernels.append(solov2_handset_kernel(tuple(_unit(center, size).tolist()), radius))
            scores.append(0.95 - 0.25 * distance - 0.05 * i)
    order = torch.tensor(scores).argsort(descending=True)
    masks = solov2_masks(unified, torch.stack(kernels)) > 0.5
    owners_t = torch.tensor(owners)
    return {"cells": torch.tensor(cells)[order], "labels": scene.labels[owners_t][order],
            "scores": torch.tensor(scores)[order], "masks": masks[order], "owner": owners_t[order]}


def plot_family_gallery(scene: ToyScene, demos: dict[str, FamilyDemo], grid: int = 5):
    """One row per family: a shared map, instance 0's own input, and the assembled masks with the
    source of locality drawn on top (boxes, detection locations, or the SOLO grid). Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ...viz.draw import class_color

    fig, axes = plt.subplots(len(demos), 3, figsize=(12, 2.8 * len(demos)), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1, 1]})
    size = scene.foreground.shape[-1]
    for (ax_shared, ax_own, ax_out), demo in zip(axes, demos.values()):
        maps = [(m - m.min()) / (m.max() - m.min()).clamp(min=1e-6) for m in demo.shared]
        gap = torch.full((size, 2), float("nan"))
        ax_shared.imshow(torch.cat([t for m in maps for t in (m, gap)][:-1], dim=1).numpy(), cmap="viridis")
        ax_shared.set_title(f"{demo.name} — shared: {demo.shared_title}", fontsize=9)
        if demo.per_instance.dim() == 1:
            values = demo.per_instance.numpy()
            ax_own.bar(range(len(values)), values, color="tab:purple")
            ax_own.axhline(0, color="black", lw=0.5)
            ax_own.set_xticks(range(len(values)))
        else:
            ax_own.imshow(demo.per_instance.numpy(), cmap="magma")
        ax_own.set_title(demo.per_instance_title, fontsize=9)
        canvas = torch.ones(size, size, 3)
        for i, mask in enumerate(demo.masks):
            color = torch.tensor(class_color(i), dtype=torch.float32) / 255
            canvas[mask > 0.5] = 0.35 + 0.65 * color
        ax_out.imshow(canvas.numpy())
        for i in range(len(scene.labels)):
            color = [c / 255 for c in class_color(i)]
            if demo.locality == "boxes":
                x1, y1, x2, y2 = scene.boxes[i].tolist()
                ax_out.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=1.5,
                                           ec=color, ls="--"))
            else:
                ax_out.plot(*(scene.centers[i] - 0.5).tolist(), "x", color="black", ms=8, mew=2)
        if demo.locality == "cells":
            for k in range(1, grid):
                ax_out.axhline(k * size / grid - 0.5, color="gray", lw=0.5)
                ax_out.axvline(k * size / grid - 0.5, color="gray", lw=0.5)
        where = {"boxes": "boxes (dashed)", "centers": "locations (x)", "cells": "grid cells (x: centres)"}
        ax_out.set_title(f"masks; locality from {where[demo.locality]}", fontsize=9)
        ax_out.set_xlabel(demo.flow, fontsize=8)
        for ax in (ax_shared, ax_out) if demo.per_instance.dim() == 1 else (ax_shared, ax_own, ax_out):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_solo_duplicates(scene: ToyScene, duplicates: dict[str, torch.Tensor], decayed: torch.Tensor, grid: int):
    """Left: the S x S grid with every object's positive cells shaded in its colour (each cell
    predicts a mask). Right: each prediction's score before and after Matrix NMS. ``duplicates``
    from :func:`solov2_duplicates`; ``decayed`` [m] from :func:`matrix_nms`. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ...viz.draw import class_color

    size = scene.foreground.shape[-1]
    cell_px = size / grid
    fig, (ax_grid, ax_bar) = plt.subplots(1, 2, figsize=(12, 4.3), gridspec_kw={"width_ratios": [1, 1.6]})
    ax_grid.imshow(scene.foreground.numpy(), cmap="gray_r", vmax=3)
    for cell, owner in zip(duplicates["cells"].tolist(), duplicates["owner"].tolist()):
        row, col = divmod(cell, grid)
        color = [c / 255 for c in class_color(owner)]
        ax_grid.add_patch(Rectangle((col * cell_px - 0.5, row * cell_px - 0.5), cell_px, cell_px, color=color,
                                    alpha=0.55))
        ax_grid.text((col + 0.5) * cell_px - 0.5, (row + 0.5) * cell_px - 0.5, str(cell), ha="center",
                     va="center", fontsize=7)
    for k in range(1, grid):
        ax_grid.axhline(k * cell_px - 0.5, color="gray", lw=0.5)
        ax_grid.axvline(k * cell_px - 0.5, color="gray", lw=0.5)
    for center in scene.centers:
        ax_grid.plot(*(center - 0.5).tolist(), "x", color="black", ms=8, mew=2)
    ax_grid.set_title(f"{grid}x{grid} grid: positive cells (centre region, eps = 0.2)", fontsize=9)
    ax_grid.set_xticks([])
    ax_grid.set_yticks([])
    xs = list(range(len(decayed)))
    colors = [[c / 255 for c in class_color(o)] for o in duplicates["owner"].tolist()]
    ax_bar.bar([x - 0.2 for x in xs], duplicates["scores"].tolist(), 0.4, color=colors, alpha=0.45,
               label="score before")
    ax_bar.bar([x + 0.2 for x in xs], decayed.tolist(), 0.4, color=colors, edgecolor="black",
               label="after Matrix NMS")
    ax_bar.set_xticks(xs, [f"cell {c}" for c in duplicates["cells"].tolist()], fontsize=7, rotation=45)
    ax_bar.set_ylabel("score")
    ax_bar.set_title("each cell's mask score (colour = object): duplicates decay, one per object survives",
                     fontsize=9)
    ax_bar.legend(fontsize=8)
    fig.tight_layout()
    return fig
