"""One colour per model, the same in every plot of every notebook, so a learner can follow a
model from one figure to the next (a table, a curve, a bar) by its colour alone."""
from __future__ import annotations

# Blues for Mask R-CNN, reds for YOLACT (dark: the paper-scale model, light: the tiny one); the
# relatives get the rest of matplotlib's tab10 cycle.
MODEL_COLORS: dict[str, str] = {
    "mask r-cnn tiny": "tab:blue",
    "mask r-cnn": "navy",
    "yolact tiny": "tab:red",
    "yolact": "darkred",
    "yolact++": "tab:pink",
    "blendmask": "tab:purple",
    "centermask": "tab:brown",
    "condinst": "tab:green",
    "solov2": "tab:olive",
    "naive": "tab:gray",
}


def model_color(name: str) -> str:
    """The colour of the model called ``name`` ("YOLACT tiny", "Mask R-CNN R50-FPN (800 px)",
    "maskrcnn_tiny", "CondInst", ...): its family, and whether it is a tiny model."""
    key = name.lower().replace("_", " ").replace("maskrcnn", "mask r-cnn")
    tiny = "tiny" in key
    for family in ("yolact++", "yolact plus", "mask r-cnn", "yolact", "blendmask", "centermask", "condinst",
                   "solov2", "naive"):
        if family in key:
            family = "yolact++" if family == "yolact plus" else family
            if family in ("mask r-cnn", "yolact") and tiny:
                return MODEL_COLORS[f"{family} tiny"]
            return MODEL_COLORS[family]
    return "black"


__all__ = ["MODEL_COLORS", "model_color"]
