"""YOLACT's two parallel tasks as a picture drawn from the model itself (paper fig. 2).

:func:`trace_shapes` runs one forward pass with hooks and records the real tensor shapes of
every part; :func:`draw_architecture` lays them out: backbone -> FPN, then the protonet branch
(prototypes for the whole image) and the prediction-head branch (boxes, classes, coefficients
per anchor) side by side, meeting at assembly. Nothing in the picture is typed by hand: change
the config (input size, k, widths) and the shapes change with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from matplotlib.patches import FancyBboxPatch

from ..model.yolact import Yolact


@dataclass(frozen=True)
class ArchitectureShapes:
    """Shapes from one forward pass of a batch of one S x S image.

    backbone: [1,C,H,W] of each selected ResNet stage (C3, C4, ...);
    fpn: [1,F,H,W] of each pyramid level (P3, P4, ...);
    proto: [1,Hp,Wp,k] prototypes (protonet on P3); head: per level, the shapes of
    (loc [1,P_l,4], conf [1,P_l,C+1], coef [1,P_l,k]); loc/conf/coef: all levels concatenated.
    """

    image: tuple[int, ...]
    backbone: list[tuple[int, ...]]
    fpn: list[tuple[int, ...]]
    proto: tuple[int, ...]
    head: list[tuple[tuple[int, ...], ...]]
    loc: tuple[int, ...]
    conf: tuple[int, ...]
    coef: tuple[int, ...]

    @property
    def num_protos(self) -> int:
        return self.proto[-1]


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


@torch.no_grad()
def trace_shapes(model: Yolact, size: int | None = None) -> ArchitectureShapes:
    """One forward pass of a zero image [1,3,S,S] (S = ``size`` or the config's input size)
    through ``model`` in eval mode, with hooks on the backbone, FPN, protonet and head."""
    size = size or model.cfg.max_size
    device = next(model.parameters()).device
    seen: dict[str, list] = {"backbone": [], "fpn": [], "head": []}
    hooks = [
        model.backbone.register_forward_hook(lambda m, i, o: seen["backbone"].append([_shape(t) for t in o])),
        model.fpn.register_forward_hook(lambda m, i, o: seen["fpn"].append([_shape(t) for t in o])),
        model.prediction_layers[0].register_forward_hook(
            lambda m, i, o: seen["head"].append(tuple(_shape(t) for t in o))),
    ]
    was_training = model.training
    try:
        model.eval()
        x = torch.zeros(1, 3, size, size, device=device)
        raw = model(x)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    backbone = [seen["backbone"][0][i] for i in model.cfg.selected_layers]
    return ArchitectureShapes(image=_shape(x), backbone=backbone, fpn=seen["fpn"][0], proto=_shape(raw["proto"]),
                              head=seen["head"], loc=_shape(raw["loc"]), conf=_shape(raw["conf"]),
                              coef=_shape(raw["coef"]))


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(s) for s in shape) + "]"


def _box(ax, x, y, w, h, title, lines, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01", facecolor=color, edgecolor="0.3"))
    ax.text(x + w / 2, y + h - 0.02, title, ha="center", va="top", fontsize=10, fontweight="bold")
    ax.text(x + w / 2, y + h - 0.075, "\n".join(lines), ha="center", va="top", fontsize=8, family="monospace")


def _arrow(ax, start, end, label=""):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "lw": 1.5, "color": "0.25"})
    if label:        # beside the arrow's middle, on the side away from the boxes it joins
        ax.text((start[0] + end[0]) / 2 + 0.008, (start[1] + end[1]) / 2, label, ha="left", va="center",
                fontsize=8, color="0.25")


def draw_architecture(shapes: ArchitectureShapes, ax=None, num_detections: int | None = None):
    """Draw the architecture with ``shapes`` (from :func:`trace_shapes`) on ``ax`` (a new
    14 x 6 inch figure if None); returns the axes. ``num_detections`` names N in the assembly
    box (N after NMS is data-dependent; None writes "N")."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(14, 6))
    ax.set_xlim(-0.02, 1.03)            # the boxes' rounded padding reaches 0.01 beyond [0, 1]
    ax.set_ylim(-0.01, 1.01)
    ax.axis("off")
    n = "N" if num_detections is None else str(num_detections)
    k = shapes.num_protos
    levels = [f"P{3 + i} {_fmt(s[1:])}" for i, s in enumerate(shapes.fpn)]
    stages = [f"C{3 + i} {_fmt(s[1:])}" for i, s in enumerate(shapes.backbone)]
    height_p, width_p = shapes.proto[1:3]
    anchors = [loc[1] for loc, _, _ in shapes.head]
    _box(ax, 0.0, 0.38, 0.1, 0.24, "image", [_fmt(shapes.image[1:])], "#eeeeee")
    _box(ax, 0.13, 0.3, 0.15, 0.4, "backbone", ["[C,H,W]"] + stages, "#dde8f5")
    _box(ax, 0.31, 0.25, 0.16, 0.5, "FPN", ["[F,H,W]"] + levels, "#dde8f5")
    _box(ax, 0.55, 0.64, 0.21, 0.34, "protonet",
         [f"on P3 {_fmt(shapes.fpn[0][1:])}", "convs, upsample x2", f"prototypes P {_fmt(shapes.proto[1:])}",
          "[Hp,Wp,k]: one set", "for the whole image"], "#fde3cf")
    _box(ax, 0.55, 0.0, 0.21, 0.46, "prediction head",
         ["the same head on every level", " + ".join(map(str, anchors)), f"= {sum(anchors)} anchors",
          f"loc  {_fmt(shapes.loc[1:])}", f"conf {_fmt(shapes.conf[1:])}", f"coef {_fmt(shapes.coef[1:])}",
          "decode + Fast NMS", f"-> {n} detections, C [{n},{k}]"], "#d9f0d3")
    _box(ax, 0.83, 0.28, 0.17, 0.44, "assembly",
         [r"$M = \sigma(P\,C^\top)$", f"[{height_p},{width_p},{k}] x [{k},{n}]", f"-> [{n},{height_p},{width_p}]",
          "crop to each box", "upsample, > 0.5"], "#f3e0f7")
    _arrow(ax, (0.10, 0.5), (0.13, 0.5))
    _arrow(ax, (0.28, 0.5), (0.31, 0.5))
    _arrow(ax, (0.47, 0.62), (0.55, 0.8), "P3")
    _arrow(ax, (0.47, 0.38), (0.55, 0.23), "all levels")
    _arrow(ax, (0.77, 0.8), (0.82, 0.62), "P")
    _arrow(ax, (0.77, 0.23), (0.82, 0.38), "C")
    ax.set_title("two parallel tasks: prototypes for the image, coefficients per anchor "
                 f"(shapes from one forward pass, batch 1, {shapes.image[-1]}x{shapes.image[-2]} input)", fontsize=11)
    return ax


__all__ = ["ArchitectureShapes", "trace_shapes", "draw_architecture"]
