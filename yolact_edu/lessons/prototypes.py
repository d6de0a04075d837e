"""What prototypes encode (notebook 02 §3), measured rather than asserted.

The paper (§3.2, §6) observes prototypes that encode position inside objects (YOLACT is
translation variant because of the padding), edges and foreground/background. Here each prototype
of a trained model is correlated (Pearson r in [-1, 1]) with reference maps built from the ground
truth at prototype resolution:

* ``"x in box"`` / ``"y in box"``: the position of a cell relative to each object's box (0 at its
  left/top, 1 at its right/bottom), correlated inside each box separately and averaged over the
  objects, so a map that is bright on every object's left side scores high wherever the object is;
* ``"foreground"``: the union of the objects; ``"edges"``: the outlines between instances and
  background, and between touching instances;
* ``"class <name>"``: the union of one class's masks (a class detector), in images holding that class.

:func:`average_properties` averages over images; :func:`describe_properties` turns the numbers
into the notebook's sentence, so the text says what this model's numbers say on every rerun.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

POSITION = ("x in box", "y in box")
SCENE = ("foreground", "edges")
CLASS_PREFIX = "class "
WEAK_R = 0.3          # |r| below this for every prototype: the property is reported as weakly encoded
MIN_BOX_CELLS = 3     # boxes narrower or lower than this many prototype cells: too few cells for a correlation


def property_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """The property keys, in the order the figures show them: position, scene, then one per class."""
    return POSITION + SCENE + tuple(CLASS_PREFIX + name for name in class_names)


def _object_boxes(masks: torch.Tensor, size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per object with a mask: (cells [m] flat indices into the Hp*Wp grid, x_rel [m], y_rel [m]) for
    the grid cells whose centres fall inside the tight box of its mask [H,W]; objects whose box spans
    fewer than MIN_BOX_CELLS cells in a direction are left out."""
    height, width = masks.shape[-2:]
    grid_h, grid_w = size
    centre_x = (np.arange(grid_w) + 0.5) * width / grid_w          # cell centres in image pixels
    centre_y = (np.arange(grid_h) + 0.5) * height / grid_h
    found = []
    for mask in masks:
        cols, rows = np.flatnonzero(mask.any(0).numpy()), np.flatnonzero(mask.any(1).numpy())
        if cols.size == 0:
            continue
        x1, x2, y1, y2 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
        in_x = np.flatnonzero((centre_x >= x1) & (centre_x < x2))
        in_y = np.flatnonzero((centre_y >= y1) & (centre_y < y2))
        if in_x.size < MIN_BOX_CELLS or in_y.size < MIN_BOX_CELLS:
            continue
        yy, xx = np.meshgrid(in_y, in_x, indexing="ij")
        found.append(((yy * grid_w + xx).ravel(), ((centre_x[xx] - x1) / (x2 - x1)).ravel(),
                      ((centre_y[yy] - y1) / (y2 - y1)).ravel()))
    return found


def property_maps(masks, labels, size: tuple[int, int], class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Reference maps [Hp,Wp] float32 for ground-truth ``masks`` [n,H,W] ({0,1}) with class ``labels``
    [n] (0-based into ``class_names``), at ``size`` = (Hp, Wp); keys :func:`property_names`.

    "x in box" / "y in box": in [0, 1] inside each object's box, NaN outside every box (smaller boxes
    drawn over larger ones); "foreground" and each "class <name>": fraction of each cell covered
    (area interpolation); "edges": 1 where the instance id (nearest interpolation) differs from a
    4-neighbour's — object outlines, including between touching objects."""
    height, width = size
    masks = torch.as_tensor(np.asarray(masks), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
    maps = {name: np.full((height, width), np.nan, np.float32) for name in POSITION}
    empty = np.zeros((height, width), np.float32)
    if masks.shape[0] == 0:
        return {**maps, **{name: empty.copy() for name in property_names(class_names)[2:]}}
    # largest box first, so a small object inside a large one keeps its own coordinates on top
    for cells, x_rel, y_rel in sorted(_object_boxes(masks, size), key=lambda found: -found[0].size):
        maps["x in box"].flat[cells], maps["y in box"].flat[cells] = x_rel, y_rel

    def area(union: torch.Tensor) -> np.ndarray:
        return F.interpolate(union[None, None], size, mode="area")[0, 0].numpy().astype(np.float32)

    maps["foreground"] = area(masks.amax(0))
    # the id of the topmost object at each pixel (0 = background), then sampled to the grid
    ids = (masks * torch.arange(1, masks.shape[0] + 1)[:, None, None]).amax(0)
    ids = F.interpolate(ids[None, None], size, mode="nearest")[0, 0].numpy()
    edges = np.zeros_like(ids, dtype=bool)
    edges[:-1] |= ids[:-1] != ids[1:]
    edges[1:] |= ids[1:] != ids[:-1]
    edges[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edges[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    maps["edges"] = edges.astype(np.float32)
    for index, name in enumerate(class_names):
        chosen = labels == index
        maps[CLASS_PREFIX + name] = area(masks[chosen].amax(0)) if chosen.any() else empty.copy()
    return maps


def _correlations(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Pearson r [k] of each column of ``values`` [m,k] with ``reference`` [m]; 0 where either is flat."""
    values = values - values.mean(0)
    reference = reference - reference.mean()
    denominator = np.sqrt((values * values).sum(0) * (reference * reference).sum())
    numerator = (values * reference[:, None]).sum(0)
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0).astype(np.float32)


def prototype_properties(proto, masks, labels, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Pearson r [k] in [-1, 1] of each prototype of ``proto`` [Hp,Wp,k] with each property of one
    image (keys :func:`property_names`; ground truth ``masks`` [n,H,W], ``labels`` [n]).

    "x in box" / "y in box": the mean over the image's objects of the correlation inside each box;
    "class <name>": NaN when the image holds no object of that class (nothing to detect); a flat
    prototype correlates 0 with everything."""
    proto = proto.detach().float().cpu().numpy() if hasattr(proto, "detach") else np.asarray(proto, np.float32)
    size = proto.shape[:2]
    flat = proto.reshape(-1, proto.shape[-1]).astype(np.float64)
    masks = torch.as_tensor(np.asarray(masks))
    labels = np.asarray(labels).reshape(-1)
    maps = property_maps(masks, labels, size, class_names)
    objects = _object_boxes(masks, size) if masks.shape[0] else []
    found = {}
    for axis, name in enumerate(POSITION):
        per_object = [_correlations(flat[cells], coords[axis]) for cells, *coords in objects]
        found[name] = np.mean(per_object, 0).astype(np.float32) if per_object \
            else np.full(proto.shape[-1], np.nan, np.float32)
    for name in SCENE:
        found[name] = _correlations(flat, maps[name].ravel().astype(np.float64))
    for index, name in enumerate(class_names):
        key = CLASS_PREFIX + name
        found[key] = _correlations(flat, maps[key].ravel().astype(np.float64)) if (labels == index).any() \
            else np.full(proto.shape[-1], np.nan, np.float32)
    return found


@torch.no_grad()
def average_properties(model, dataset, indices) -> dict[str, np.ndarray]:
    """:func:`prototype_properties` averaged over ``dataset`` images ``indices`` (a CocoDataset:
    ``load_image`` / ``load_target`` / ``class_names``), each property over the images where it is
    defined; shows which roles are stable across images. Returns {property: r [k]}."""
    names = property_names(dataset.class_names)
    found: dict[str, list[np.ndarray]] = {name: [] for name in names}
    model.eval()
    for index in indices:
        image = dataset.load_image(index)
        if image is None:
            continue
        proto = model(model.preprocess(image))["proto"][0]
        target = dataset.load_target(index)
        for name, values in prototype_properties(proto, target["masks"], target["labels"],
                                                 dataset.class_names).items():
            if not np.isnan(values).all():
                found[name].append(values)
    if not any(found.values()):
        raise ValueError("no readable image among the given indices")
    k = next(len(values[0]) for values in found.values() if values)
    return {name: np.mean(values, 0).astype(np.float32) if values else np.zeros(k, np.float32)
            for name, values in found.items()}


def best_prototypes(properties: dict[str, np.ndarray]) -> list[tuple[str, int, float]]:
    """(property, prototype index, r) of the best-matching prototype (largest |r|) of each property,
    strongest first."""
    best = [(name, int(np.abs(r).argmax()), float(r[np.abs(r).argmax()])) for name, r in properties.items()]
    return sorted(best, key=lambda found: -abs(found[2]))


def _label(name: str) -> str:
    return f"the {name[len(CLASS_PREFIX):]} masks" if name.startswith(CLASS_PREFIX) else \
        {"x in box": "x inside the boxes", "y in box": "y inside the boxes"}.get(name, f"the {name}")


def describe_properties(properties: dict[str, np.ndarray], weak: float = WEAK_R) -> str:
    """The notebook's account of :func:`average_properties`, as Markdown: which property has the
    strongest prototype and its r, the ranking of the rest, which properties no prototype follows
    with |r| >= ``weak``, and which best matches follow another property more closely (a background
    map is the best "edge" prototype when no edge detector exists)."""
    ranked = best_prototypes(properties)
    name, index, r = ranked[0]
    kind = "a class detector" if name.startswith(CLASS_PREFIX) else \
        {"foreground": "a foreground map", "edges": "an edge map"}.get(name, "a position map")
    sign = "bright where the reference is high" if r > 0 else "bright where the reference is 0"
    lines = [f"- **Strongest: {kind}.** P{index} follows {_label(name)} (r = {r:+.2f}: {sign}).",
             "- Best prototype per property, strongest first: "
             + "; ".join(f"{n} P{i} ({v:+.2f})" for n, i, v in ranked) + "."]
    weak_ones = [n for n, _, v in ranked if abs(v) < weak]
    if weak_ones:
        lines.append(f"- **No prototype reaches |r| = {weak}** for {', '.join(weak_ones)}.")
    elsewhere = []
    for n, i, v in ranked:
        own = max(properties, key=lambda other: abs(properties[other][i]))
        if abs(v) >= weak and own != n and abs(properties[own][i]) > abs(v):
            elsewhere.append(f"P{i}, the best for {n} ({v:+.2f}), follows {own} ({properties[own][i]:+.2f})")
    if elsewhere:
        lines.append("- A closer match for another property: " + "; ".join(elsewhere) + ".")
    if all(abs(v) < weak for n, _, v in ranked if n in POSITION):
        lines.append("- So this model has no map of position inside the box; the paper saw such maps on COCO.")
    return "\n".join(lines)


# -- §4 signed coefficients, §5 the crop, §6 the number of prototypes: sentences from the numbers ----
SATURATED = 0.9       # |c| above this: the tanh is in its flat part
KEPT_IOU = 0.5        # a mask rebuilt without its negative coefficients "survives" above this IoU


def describe_signed_coefficients(coefs, agreement) -> str:
    """§4's sentence: the share of coefficients ``coefs`` (any shape, in [-1, 1]) that are negative
    and that lie beyond ±SATURATED, and how many of the masks rebuilt with the negatives set to 0
    keep IoU >= KEPT_IOU with the model's own (``agreement`` [N] IoU per detection)."""
    coefs = torch.as_tensor(coefs).flatten().float()
    agreement = torch.as_tensor(agreement).flatten().float()
    negative = float((coefs < 0).float().mean())
    saturated = float((coefs.abs() > SATURATED).float().mean())
    kept = int((agreement >= KEPT_IOU).sum())
    lost = len(agreement) - kept
    return (f"{saturated:.0%} of the {coefs.numel()} coefficients lie beyond ±{SATURATED} (where the tanh flattens) "
            f"and {negative:.0%} are negative. With the negatives set to 0, {kept} of this image's {len(agreement)} "
            f"masks {'keeps' if kept == 1 else 'keep'} IoU ≥ {KEPT_IOU} with the model's own: the other {lost} "
            f"{'needs' if lost == 1 else 'need'} a prototype subtracted.")


CROP_CHOICES = ("about the same", "somewhat lower", "less than half")


def crop_ablation_answer(ap_with: float, ap_without: float) -> str:
    """Which of :data:`CROP_CHOICES` the measured mask AP without the crop is, relative to with it:
    at least 90 % of it, at least half, or less than half."""
    ratio = ap_without / ap_with if ap_with > 0 else 1.0
    return CROP_CHOICES[0] if ratio >= 0.9 else CROP_CHOICES[1] if ratio >= 0.5 else CROP_CHOICES[2]


def describe_crop_ablation(scores: dict) -> str:
    """§5's sentence from ``scores`` = {True: segm metrics with the crop, False: without}, each a dict
    with "AP", "AP50", "APs" (COCO's -1 = no object of that size: left out): what switching the crop
    off at test time costs, and which metric loses the largest share."""
    names = {"AP": "mask AP", "AP50": "AP50", "APs": "AP_small"}
    kept = {key: scores[False][key] / scores[True][key] for key in names
            if scores[True].get(key, -1) > 0 and scores[False].get(key, -1) >= 0}
    parts = [f"{names[key]} {scores[True][key]:.3f} → {scores[False][key]:.3f} (×{kept[key]:.2f})" for key in kept]
    worst = min(kept, key=kept.get)
    return ("Switching the crop off **at test time only** (the model was trained with the crop in its loss): "
            + ", ".join(parts) + f". {names[worst][0].upper() + names[worst][1:]} loses the largest share.")


def describe_sweep(sweep: dict) -> str:
    """§6's sentences from the shipped k sweep (:func:`~yolact_edu.lessons.prototype_sweep.load_sweep`):
    which k give no masks at all and what their prototypes look like (all zero, or correlation with
    the objects that the largest-k model finds in the sweep image), their box AP against the others',
    and whether mask AP rises with every doubling of k from the first k that makes masks."""
    from .prototype_sweep import sweep_masks

    ks = [int(k) for k in sweep["num_protos"]]
    mask_ap, box_ap = np.asarray(sweep["mask_AP"], float), np.asarray(sweep["box_AP"], float)
    empty = [k for k, ap in zip(ks, mask_ap) if ap == 0]
    lines = []
    if empty:
        objects = sweep_masks(sweep, k=ks[-1]).any(0).float()
        proto_size = sweep["per_k"][ks[-1]]["proto"].shape[:2]
        objects = F.interpolate(objects[None, None], proto_size, mode="area")[0, 0].numpy().ravel()
        looks = []
        for k in empty:
            proto = sweep["per_k"][k]["proto"].astype(np.float32)
            if not proto.any():
                looks.append(f"k = {k}'s prototype is 0 everywhere (a dead ReLU)")
            else:
                r = _correlations(proto.reshape(-1, k).astype(np.float64), objects)
                looks.append(f"k = {k}'s prototypes correlate with the objects by r = "
                             + ", ".join(f"{v:+.2f}" for v in r)
                             + (" (bright off the objects)" if (r < 0).all() else ""))
        others = [b for k, b in zip(ks, box_ap) if k not in empty]
        lines.append(f"With k = {' and '.join(map(str, empty))} the masks come out empty (mask AP 0), while their box "
                     f"AP ({', '.join(f'{box_ap[ks.index(k)]:.2f}' for k in empty)}) is within "
                     f"{max(abs(box_ap[ks.index(k)] - b) for k in empty for b in others):.2f} of the others'. "
                     + "; ".join(looks) + ".")
    making = [(k, ap) for k, ap in zip(ks, mask_ap) if ap > 0]
    if making:
        rising = all(b > a for (_, a), (_, b) in zip(making, making[1:]))
        trend = "rises with each doubling" if rising else "does not rise with every doubling"
        lines.append(f"From k = {making[0][0]} on, mask AP {trend}: "
                     + " → ".join(f"{ap:.3f}" for _, ap in making) + ".")
    return " ".join(lines)


def draw_properties(properties: dict[str, np.ndarray], reference: dict[str, np.ndarray], proto) -> plt.Figure:
    """Two figures' worth in one: top row, one image's ``reference`` maps (:func:`property_maps`) for the
    position and scene properties and for the best-matched class that the image holds; below each,
    that image's prototype (``proto`` [Hp,Wp,k]) that matches the property best on average
    (``properties``, from :func:`average_properties`); bottom, every property (rows) against every
    prototype (columns), coloured by r."""
    proto = proto.detach().float().cpu().numpy() if hasattr(proto, "detach") else np.asarray(proto)
    classes = [entry for entry in best_prototypes(properties) if entry[0].startswith(CLASS_PREFIX)]
    shown = [entry for entry in best_prototypes(properties) if not entry[0].startswith(CLASS_PREFIX)]
    # the strongest class that this image holds (a class absent from it has an empty reference)
    present = [entry for entry in classes if np.nanmax(reference[entry[0]]) > 0]
    shown = sorted(shown, key=lambda entry: list(properties).index(entry[0])) + present[:1]
    fig = plt.figure(figsize=(14, 8.4))
    grid = fig.add_gridspec(3, len(shown), height_ratios=[1, 1, 0.95])
    for column, (name, index, r) in enumerate(shown):
        top, bottom = fig.add_subplot(grid[0, column]), fig.add_subplot(grid[1, column])
        top.imshow(np.ma.masked_invalid(reference[name]), cmap="viridis")
        top.set_title(f"reference: {name}" + (" (best class here)" if name.startswith(CLASS_PREFIX) else ""),
                      fontsize=9)
        bottom.imshow(proto[..., index], cmap="viridis")
        bottom.set_title(f"P{index}: r = {r:+.2f}", fontsize=9)
        top.axis("off")
        bottom.axis("off")
    heat = fig.add_subplot(grid[2, :])
    names = list(properties)
    image = heat.imshow(np.stack([properties[n] for n in names]), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    heat.set_yticks(range(len(names)), names, fontsize=8)
    heat.set_xticks(range(proto.shape[-1]))
    heat.set_xlabel("prototype")
    fig.colorbar(image, ax=heat, label="correlation r", fraction=0.03)
    fig.suptitle("top: one image's reference maps; middle: the prototype that matches each best, averaged over "
                 "images; bottom: every r")
    return fig


__all__ = ["POSITION", "SCENE", "CLASS_PREFIX", "WEAK_R", "property_names", "property_maps",
           "prototype_properties", "average_properties", "best_prototypes", "describe_properties",
           "draw_properties", "SATURATED", "KEPT_IOU", "describe_signed_coefficients", "CROP_CHOICES",
           "crop_ablation_answer", "describe_crop_ablation", "describe_sweep"]
