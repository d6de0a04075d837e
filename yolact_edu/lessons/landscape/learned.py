"""The mask-assembly step of each trained family, on one real image (notebook 05 §6).

:mod:`.mask_families` shows each family's rule on hand-set inputs; here the inputs are what the
shipped models (``yolact_tiny``, ``maskrcnn_tiny`` and the four relatives, all trained on the
same shapes data) actually predict. :func:`learned_assembly` runs one model on one image and
keeps, next to its detections, the image-wide maps it computes once and what its best
detection adds:

=============  ===================================  ==============================================
family         shared (once per image)              per instance (the best detection)
=============  ===================================  ==============================================
YOLACT         prototypes [Hp,Wp,k]                 k coefficients; sigmoid(P c) before the crop
Mask R-CNN     P3 features (mean over channels)     its own 28x28 mask in its box
CondInst       mask features [C,S/8,S/8]            relative coordinates; its dynamic mask; the
                                                    same filter at another instance's location
SOLOv2         category grid per level; features    its cell's mask; how much score Matrix NMS left
BlendMask      K bases [K,S/4,S/4]                  K attention maps (M x M); the blend in its box
CenterMask     FCOS score on P3, P4, P5             spatial attention (14 x 14); its 28x28 mask
=============  ===================================  ==============================================

    >>> view = learned_assembly(shipped_model("condinst_tiny"), image)
    >>> fig = draw_learned(view, image)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...build import FAMILY_NAMES
from ...detections import Detections
from ...model.segmenter import image_size
from ...ops.boxes import jaccard
from ...relatives.blendmask import blend_weights
from ...viz.palette import model_color

__all__ = ["LearnedAssembly", "learned_assembly", "draw_learned", "draw_all_detections", "pick_clear_image",
           "mark_detection", "training_budget_sentence"]


@dataclass
class LearnedAssembly:
    """One trained model's assembly step on one image.

    family: "YOLACT", "CondInst", ...; detections: what it found (score >= the minimum);
    shared / instance: (title, array) pairs -- 2-D arrays are maps, 1-D arrays bar charts;
    locality: one line on what keeps an instance's mask on that instance.

    The ``instance`` panels explain one detection, ``detections[EXPLAINED]`` (the best-scored: every
    family lists its detections by score); :meth:`explained` names it and :func:`draw_learned` marks it."""

    family: str
    detections: Detections
    shared: list[tuple[str, np.ndarray]] = field(default_factory=list)
    instance: list[tuple[str, np.ndarray]] = field(default_factory=list)
    locality: str = ""
    model: str = ""             # the config it ran ("yolact_tiny", ...): picks its colour in every plot

    EXPLAINED = 0

    def explained(self) -> str | None:
        """"#1 circle 0.93": the detection the instance panels explain, as the picture labels it;
        None when there are no instance panels (nothing detected)."""
        if not self.instance or len(self.detections) <= self.EXPLAINED:
            return None
        i = self.EXPLAINED
        return f"#{i + 1} {self.detections.class_labels[i]} {float(self.detections.scores[i]):.2f}"


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


@torch.no_grad()
def learned_assembly(model, image: np.ndarray, min_score: float = 0.3, top_k: int | None = None,
                     max_shared: int = 4) -> LearnedAssembly:
    """Run ``model`` (any family of the package, eval mode) on ``image`` (HxWx3 uint8 RGB) and
    collect its assembly step (see the module docstring). The detections kept score at least
    ``min_score``, at most ``top_k`` of them (families calibrate their scores differently: a
    sigmoid-focal FCOS score of 0.4 is a confident one, a softmax YOLACT score is not, so to
    compare pictures keep as many as the image has objects). ``max_shared``: at most that many
    image-wide channels are kept (prototypes, bases, feature channels)."""
    model.eval()
    family = model.cfg.family
    x = model.preprocess(image)
    raw = model(x)
    found = model.detect(raw, [image_size(image)], score_threshold=min_score, top_k=top_k)[0]
    view = LearnedAssembly(FAMILY_NAMES.get(family, family), found, model=getattr(model.cfg, "name", ""))
    builders = {"yolact": _yolact, "maskrcnn": _maskrcnn, "condinst": _condinst, "solov2": _solov2,
                "blendmask": _blendmask, "centermask": _centermask}
    if family not in builders:
        raise ValueError(f"no assembly view for the {family!r} family; known: {', '.join(builders)}")
    builders[family](model, x, raw, view, max_shared, min_score)
    return view


def _yolact(model, x, raw, view, max_shared, min_score):
    found = view.detections
    proto = found.proto                                                     # [Hp,Wp,k]
    if len(found):
        coefs = found.coefs[0]
        strongest = coefs.abs().argsort(descending=True)[:max_shared].tolist()
        view.instance = [("its k coefficients", _np(coefs)),
                         ("sigmoid(P c), before the crop", _np(torch.sigmoid(proto @ coefs)))]
    else:
        strongest = list(range(min(max_shared, proto.shape[-1])))
    view.shared = [(f"prototype {j}", _np(proto[..., j])) for j in strongest]
    view.locality = "the crop to its predicted box"


def _maskrcnn(model, x, raw, view, max_shared, min_score):
    view.shared = [("P3 features (channel mean)", _np(model.backbone(x)["0"][0].mean(0)))]
    probs = raw["mask_probs"][0]
    if len(probs):
        view.instance = [("its own 28x28 mask (in its box)", _np(probs[0]))]
    view.locality = "RoIAlign: its mask is computed from its box's patch alone"


def _condinst(model, x, raw, view, max_shared, min_score):
    fcos = model.fcos_detect(raw, 0, min_score)
    features = raw["mask_features"][0]
    view.shared = [(f"mask feature {c}", _np(features[c])) for c in range(min(max_shared, len(features)))]
    location = fcos["location"]
    if len(location):
        image = torch.zeros_like(location[:1])
        own = model.instance_mask_logits(raw, image, location[:1])
        coords = model.instance_coordinates(location[:1], tuple(features.shape[-2:]))[0]
        view.instance = [("relative x", _np(coords[0])), ("relative y", _np(coords[1])),
                         ("its dynamic mask", _np(torch.sigmoid(own[0])))]
        other = _another_object(fcos["boxes"][:len(view.detections)])
        if other is not None:
            params = raw["controller"][0, location[:1]]
            moved = model.instance_mask_logits(raw, image, location[other:other + 1], params=params)
            view.instance.append((f"its filter at #{other + 1}'s location", _np(torch.sigmoid(moved[0]))))
    view.locality = "relative coordinates: no box, no crop"


def _another_object(boxes: torch.Tensor) -> int | None:
    """The index of the best-scored box that hardly overlaps box 0 (IoU < 0.1: another object), or None."""
    if len(boxes) < 2:
        return None
    apart = torch.nonzero(jaccard(boxes[:1], boxes[1:])[0] < 0.1).flatten()
    return int(apart[0]) + 1 if len(apart) else None


def _solov2(model, x, raw, view, max_shared, min_score):
    probs = torch.sigmoid(raw["category_logits"][0]).amax(1)               # [T]
    offset = 0
    for grid in model.cfg.grids:
        cells = probs[offset:offset + grid * grid].reshape(grid, grid)
        view.shared.append((f"category, {grid}x{grid} grid", _np(cells)))
        offset += grid * grid
    with model.settings(update_threshold=0.0):
        everything = model.grid_detect(raw, 0)
    if len(everything["cell"]):
        # candidates in their order before Matrix NMS: a duplicate of a better mask keeps little of its score
        order = everything["scores_before"].argsort(descending=True)[:12]
        kept = everything["scores"][order] / everything["scores_before"][order].clamp(min=1e-6)
        view.instance = [("its cell's mask", _np(everything["probs"][0])),
                         ("Matrix NMS: score kept, top 12", _np(kept))]
    view.locality = "the grid cell of its centre"


def _blendmask(model, x, raw, view, max_shared, min_score):
    bases = raw["bases"][0]
    view.shared = [(f"base {k}", _np(bases[k])) for k in range(min(max_shared, len(bases)))]
    fcos = model.fcos_detect(raw, 0, min_score)
    if len(fcos["location"]):
        parts = model.instance_mask_logits(raw, torch.zeros_like(fcos["location"][:1]), fcos["location"][:1],
                                           fcos["boxes"][:1])
        weights = blend_weights(parts["attention"], parts["crops"].shape[-2:])[0]
        view.instance = [(f"attention {k}", _np(weights[k])) for k in range(len(weights))]
        view.instance.append(("blended mask in its box", _np(torch.sigmoid(parts["logits"][0]))))
    view.locality = "RoIAlign of the bases to its box"


def _centermask(model, x, raw, view, max_shared, min_score):
    # FCOS's score sqrt(class x centerness) at every location of every level: anchor-free detection,
    # small objects peak on P3, large ones on P5
    score = torch.sqrt(torch.sigmoid(raw["class_logits"][0]).amax(1) * torch.sigmoid(raw["centerness"][0]))
    offset = 0
    for level, stride in enumerate(model.cfg.strides):
        side = model.cfg.max_size // stride
        view.shared.append((f"FCOS score on P{3 + level}", _np(score[offset:offset + side * side].reshape(side, side))))
        offset += side * side
    fcos = model.fcos_detect(raw, 0, min_score)
    if len(fcos["location"]):
        parts = model.instance_masks(raw, torch.zeros_like(fcos["location"][:1]), fcos["boxes"][:1],
                                     fcos["labels"][:1])
        level = 3 + int(parts["levels"][0])
        view.instance = [(f"spatial attention (P{level} patch)", _np(parts["attention"][0, 0])),
                         ("its 28x28 mask", _np(torch.sigmoid(parts["logits"][0])))]
    view.locality = "RoIAlign: a mask head on its box's patch"


def draw_learned(view: LearnedAssembly, image: np.ndarray, width: float = 13.0):
    """The image with the detections (left), the shared maps (top row) and the best detection's
    own inputs and mask (bottom row). Returns the Figure."""
    import matplotlib.pyplot as plt

    from ...viz.draw import draw_detections

    columns = max(len(view.shared), len(view.instance), 1)
    fig = plt.figure(figsize=(width, width * 2 / (columns + 2) * 1.15), layout="constrained")
    grid = fig.add_gridspec(2, columns + 2)
    picture = fig.add_subplot(grid[:, :2])
    picture.imshow(draw_detections(image, view.detections))
    explained = view.explained()
    title = f"{view.family}: {len(view.detections)} detections"
    if explained is not None:
        mark_detection(picture, view.detections.boxes[view.EXPLAINED].tolist(), f"#{view.EXPLAINED + 1}")
        title += f"\nbottom row: {explained} (dashed)"
    picture.set_title(title, fontsize=10, color="black" if explained is None else "tab:red")
    picture.set_xticks([])
    picture.set_yticks([])
    panels = [(True, column, item) for column, item in enumerate(view.shared)]
    panels += [(False, column, item) for column, item in enumerate(view.instance)]
    for shared, column, (title, array) in panels:
        ax = fig.add_subplot(grid[0 if shared else 1, 2 + column])
        if array.ndim == 1:
            ax.bar(range(len(array)), array, color="tab:purple")
            ax.axhline(0, color="black", lw=0.5)
            ax.tick_params(labelsize=7)
        else:
            ax.imshow(array, cmap="viridis" if shared else "magma")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(title, fontsize=8, color="black" if shared else "tab:red")
    which = f"detection {explained}" if explained is not None else "its best detection (none here)"
    fig.suptitle(f"{view.family}: computed once per image (top, black titles) and for {which} "
                 f"(bottom, red); locality from {view.locality}", fontsize=9)
    return fig


def mark_detection(ax, box, text: str) -> None:
    """Outline ``box`` (x1, y1, x2, y2 image pixels) on an image axes with a dashed red and white
    frame, a little inside the drawn box (the box's own label sits above it and stays readable),
    and write ``text`` below its bottom-right corner."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = box
    pad = min(0.015 * abs(ax.get_xlim()[1] - ax.get_xlim()[0]), 0.15 * min(x2 - x1, y2 - y1))
    for color, style in (("white", "-"), ("tab:red", "--")):
        ax.add_patch(Rectangle((x1 + pad, y1 + pad), x2 - x1 - 2 * pad, y2 - y1 - 2 * pad, fill=False,
                               edgecolor=color, linewidth=2.2, linestyle=style))
    ax.text(x2, y2 + pad, text, color="white", fontsize=9, fontweight="bold", ha="right", va="top",
            bbox={"facecolor": "tab:red", "pad": 1, "linewidth": 0})


def pick_clear_image(dataset, objects: tuple[int, int] = (3, 5), max_overlap: float = 0.1) -> int:
    """The first image of a :class:`~yolact_edu.data.CocoDataset` with ``objects[0]..objects[1]``
    annotated objects whose boxes overlap no more than ``max_overlap`` (IoU): a scene where each
    family's per-instance maps are easy to tell apart. A ValueError if there is none."""
    for index, image_id in enumerate(dataset.ids):
        annotations = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=image_id))
        if not objects[0] <= len(annotations) <= objects[1]:
            continue
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32)
        boxes[:, 2:] += boxes[:, :2]                                            # xywh -> xyxy
        overlap = jaccard(boxes, boxes).fill_diagonal_(0)
        if float(overlap.max()) <= max_overlap:
            return index
    raise ValueError(f"no image with {objects[0]}..{objects[1]} objects overlapping at most IoU {max_overlap}")


def draw_all_detections(views: dict[str, LearnedAssembly], image: np.ndarray, columns: int = 3):
    """The detections of every family on the same image, side by side, each title in the colour of
    the model that ran (:func:`~yolact_edu.viz.palette.model_color` of ``view.model``, e.g. the
    tiny YOLACT's tab:red, as in every notebook). Returns the Figure."""
    import matplotlib.pyplot as plt

    from ...viz.draw import draw_detections

    rows = -(-len(views) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.4 * rows), squeeze=False)
    for ax, (name, view) in zip(axes.flat, views.items()):
        ax.imshow(draw_detections(image, view.detections))
        shown = f"{name} ({view.model})" if view.model and view.model != name else name
        ax.set_title(f"{shown}\n{len(view.detections)} detections", fontsize=10,
                     color=model_color(view.model or name), fontweight="bold")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(views):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def training_budget_sentence(rows) -> str:
    """One sentence on how long each shipped model trained, from its file's metadata.

    rows: :func:`~yolact_edu.lessons.pretrained.shipped_rows` (each with "model" and "training",
    iterations x batch as "20000 x 8"). Models with the same budget are named together, the largest
    budget first, and the sentence ends with how many times more images the longest-trained saw
    than the shortest (a row whose budget is unreadable is named but left out of that ratio)."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["training"], []).append(row["model"])

    def images(budget: str) -> int | None:
        try:
            iterations, batch = (int(part) for part in budget.split("x"))
        except ValueError:
            return None
        return iterations * batch

    order = sorted(groups, key=lambda budget: images(budget) or -1, reverse=True)
    if len(order) == 1:
        return f"All {len(rows)} models trained for the same budget, {order[0]} (iterations x batch)."

    def names(models: list[str]) -> str:
        return models[0] if len(models) == 1 else ", ".join(models[:-1]) + " and " + models[-1]

    parts = "; ".join(f"{names(groups[budget])} {budget}" for budget in order)
    counted = [budget for budget in order if images(budget)]
    ratio = ""
    if len(counted) > 1:
        most, fewest = counted[0], counted[-1]
        ratio = (f": {names(groups[most])} saw {images(most) / images(fewest):.3g}× as many training images as "
                 f"{names(groups[fewest])}")
    return (f"Training budgets differ (iterations x batch, from each file's metadata): {parts}{ratio}. "
            "An accuracy difference between them may come from training time as well as from the assembly step.")
