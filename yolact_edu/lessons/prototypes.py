"""What prototypes encode, and what signed coefficients and the crop buy (notebook 02).

The paper (§3.2, §6) observes that prototypes learn position (YOLACT is translation variant
because of the padding), edges and foreground/background. :func:`prototype_properties`
measures that on one image as the correlation of each prototype with four maps at prototype
resolution: the x coordinate, the y coordinate, the foreground (union of ground-truth masks)
and the instance boundaries. :func:`reassemble` rebuilds a detection's masks with other
coefficients (say, only the positive ones) to show why the coefficients are signed.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PROPERTIES = ("x", "y", "foreground", "edges")


def property_maps(masks, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Reference maps [Hp,Wp] for ground-truth ``masks`` [n,H,W] ({0,1}) at ``size`` = (Hp, Wp).

    "x" / "y": column / row coordinate in [0, 1]; "foreground": fraction of each cell covered by
    an object (area interpolation); "edges": 1 where the instance id (nearest interpolation)
    differs from a 4-neighbour's — object outlines, including between touching objects."""
    height, width = size
    masks = torch.as_tensor(np.asarray(masks), dtype=torch.float32)
    ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    if masks.shape[0] == 0:
        empty = np.zeros((height, width), np.float32)
        return {"x": xs.astype(np.float32), "y": ys.astype(np.float32), "foreground": empty, "edges": empty}
    foreground = F.interpolate(masks.amax(0)[None, None], size, mode="area")[0, 0].numpy()
    # the id of the topmost object at each pixel (0 = background), then sampled to the grid
    ids = (masks * torch.arange(1, masks.shape[0] + 1)[:, None, None]).amax(0)
    ids = F.interpolate(ids[None, None], size, mode="nearest")[0, 0].numpy()
    edges = np.zeros_like(ids, dtype=bool)
    edges[:-1] |= ids[:-1] != ids[1:]
    edges[1:] |= ids[1:] != ids[:-1]
    edges[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edges[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    return {"x": xs.astype(np.float32), "y": ys.astype(np.float32), "foreground": foreground.astype(np.float32),
            "edges": edges.astype(np.float32)}


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def prototype_properties(proto, masks) -> dict[str, np.ndarray]:
    """Pearson correlation [k] in [-1, 1] of each prototype [Hp,Wp,k] with each map of
    :func:`property_maps` (keys :data:`PROPERTIES`). A flat prototype correlates 0 with all."""
    proto = proto.detach().float().cpu().numpy() if hasattr(proto, "detach") else np.asarray(proto, np.float32)
    maps = property_maps(masks, proto.shape[:2])
    return {name: np.array([_correlation(proto[..., i], maps[name]) for i in range(proto.shape[-1])], np.float32)
            for name in PROPERTIES}


@torch.no_grad()
def average_properties(model, dataset, indices) -> dict[str, np.ndarray]:
    """:func:`prototype_properties` averaged over ``dataset`` images ``indices`` (a CocoDataset:
    ``load_image`` / ``load_target``); shows which roles are stable across images."""
    total = {name: 0.0 for name in PROPERTIES}
    count = 0
    model.eval()
    for index in indices:
        image = dataset.load_image(index)
        if image is None:
            continue
        proto = model(model.preprocess(image))["proto"][0]
        found = prototype_properties(proto, dataset.load_target(index)["masks"])
        total = {name: total[name] + found[name] for name in PROPERTIES}
        count += 1
    if count == 0:
        raise ValueError("no readable image among the given indices")
    return {name: total[name] / count for name in PROPERTIES}


__all__ = ["PROPERTIES", "property_maps", "prototype_properties", "average_properties"]
