"""The matched comparison (notebook 01's "matched comparison", notebook 05 §6, ``yolact-edu bench compare``): YOLACT,
Mask R-CNN and YOLACT's relatives, all trained on the same data, scored on the same images and
timed on the same machine in one process.

Accuracy comes from :func:`~yolact_edu.training.evaluation.evaluate` (pycocotools): box AP,
mask AP, mask AP75 and mask AP90, the boundary-sensitive figure (at IoU 0.9 a mask must
follow the outline, where Mask R-CNN's 28x28 grid and YOLACT's prototypes at 1/4 of the input
differ most). Latency is end-to-end ``predict`` at batch 1 (uint8 image in, image-size masks
out) with the output forced to N detections, N = 1 .. 100, the models' runs interleaved count by
count so that a machine slowing down mid-way hurts both alike; medians after warm-up.

At the paper's scale, :func:`paper_scale` times ``yolact_resnet50`` against torchvision's Mask
R-CNN R50-FPN (random weights; cost does not depend on them), both forced to 100 detections,
stage by stage.
"""
from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import torch

from ...bench.speed import environment
from ...bench.timing import STAGES, timed_predict
from ...build import build_model
from ...relatives.maskrcnn import fixed_output_count
from ...training.evaluation import evaluate
from ...viz.palette import model_color
from .cost import INSTANCE_COUNTS, format_table, inference_time, least_squares_slope
from .maskrcnn import maskrcnn_model, model_device, run_maskrcnn

ACCURACY_COLUMNS = (("box_AP", "bbox", "AP"), ("box_AP75", "bbox", "AP75"), ("mask_AP", "segm", "AP"),
                    ("mask_AP75", "segm", "AP75"), ("mask_AP90", "segm", "AP90"))


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def accuracy(model: torch.nn.Module, dataset, max_images: int | None = None) -> dict:
    """COCO figures of one model on ``dataset`` (values in [0, 1]): box AP, box AP75, mask AP,
    mask AP75, mask AP90, plus "images" scored and "params"."""
    metrics = evaluate(model, dataset, max_images=max_images, progress=False, verbose=False)
    row = {name: metrics[kind][key] for name, kind, key in ACCURACY_COLUMNS}
    return row | {"images": metrics["num_images"], "params": parameter_count(model)}


@torch.no_grad()
def latency_curve(models: Mapping[str, torch.nn.Module], image, counts: Sequence[int] = INSTANCE_COUNTS,
                  repeats: int = 5, warmup: int = 2) -> dict:
    """End-to-end ``predict`` of each model on one HxWx3 uint8 image with the output forced to N
    detections, for each N in ``counts`` (:func:`~yolact_edu.lessons.two_ways.cost.inference_time`).

    Returns {name: {"counts", "instances" (detections actually returned), "median_ms", "min_ms"}}.
    """
    curves = {name: {"counts": list(counts), "instances": [], "median_ms": [], "min_ms": []} for name in models}
    for count in counts:
        for name, model in models.items():            # interleaved: drift hits every model alike
            timing = inference_time(model, image, instances=int(count), repeats=repeats, warmup=warmup)
            curves[name]["instances"].append(timing["instances"])
            curves[name]["median_ms"].append(timing["median_ms"])
            curves[name]["min_ms"].append(timing["min_ms"])
    return curves


def matched_comparison(models: Mapping[str, torch.nn.Module], dataset, image, *, max_images: int | None = None,
                       counts: Sequence[int] = INSTANCE_COUNTS, repeats: int = 5, warmup: int = 2) -> dict:
    """Accuracy of every model on the same ``dataset`` images, then their latency curves on ``image``.

    Returns {"environment", "accuracy": {name: accuracy(...)}, "latency": latency_curve(...)}."""
    device = model_device(next(iter(models.values())))
    return {"environment": environment(device),
            "accuracy": {name: accuracy(model, dataset, max_images) for name, model in models.items()},
            "latency": latency_curve(models, image, counts, repeats, warmup),
            "settings": {"repeats": repeats, "warmup": warmup, "image_size": list(image.shape[:2])}}


# -- the paper's scale ---------------------------------------------------------------------------
def _median_stages(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


@torch.no_grad()
def paper_scale(image, instances: int = 100, repeats: int = 3, warmup: int = 1, device="cpu") -> dict:
    """``yolact_resnet50`` (550 x 550) against torchvision's Mask R-CNN R50-FPN (short side 800)
    on one image, both with random weights and forced to ``instances`` detections.

    Returns {"environment", "instances", "yolact": {"stages_ms", "total_ms", "input"},
    "maskrcnn": {...}, "ratio": YOLACT total / Mask R-CNN total} with per-stage medians."""
    torch.manual_seed(0)
    yolact = build_model("yolact_resnet50").eval().to(device)
    rcnn = maskrcnn_model("none", verbose=False).to(device)
    forced = {"score_threshold": 0.0, "conf_threshold": 0.0, "top_k": int(instances)}
    yolact_runs, rcnn_runs = [], []
    with fixed_output_count(rcnn, instances):
        for run in range(warmup + repeats):           # interleaved, as in latency_curve
            found, stages = timed_predict(yolact, image, **forced)
            result, info = run_maskrcnn(rcnn, image)
            if run >= warmup:
                yolact_runs.append({name: stages[name] * 1e3 for name in STAGES})
                rcnn_runs.append(dict(info["times_ms"]))
    out = {"environment": environment(device), "instances": int(instances),
           "yolact": {"stages_ms": _median_stages(yolact_runs), "detections": len(found),
                      "input": list(yolact.preprocess(image).shape)},
           "maskrcnn": {"stages_ms": _median_stages(rcnn_runs), "detections": len(result["boxes"]),
                        "input": list(info["images"].tensors.shape)}}
    for name, runs in (("yolact", yolact_runs), ("maskrcnn", rcnn_runs)):
        out[name]["total_ms"] = statistics.median(sum(run.values()) for run in runs)
    out["ratio"] = out["yolact"]["total_ms"] / out["maskrcnn"]["total_ms"]
    return out


# -- tables ---------------------------------------------------------------------------------------
def accuracy_table(result: dict) -> str:
    header = ["model", "params (M)", *(name for name, _, _ in ACCURACY_COLUMNS), "images"]
    rows = [[name, row["params"] / 1e6, *(row[key] for key, _, _ in ACCURACY_COLUMNS), row["images"]]
            for name, row in result["accuracy"].items()]
    return format_table(rows, header, decimals=3)


def latency_table(result: dict) -> str:
    curves = result["latency"]
    names = list(curves)
    header = ["instances N", *(f"{name} ms" for name in names)]
    if len(names) == 2:
        header.append(f"{names[0]} / {names[1]}")
    rows = []
    for i, count in enumerate(curves[names[0]]["counts"]):
        row = [count, *(curves[name]["median_ms"][i] for name in names)]
        if len(names) == 2:
            row.append(curves[names[0]]["median_ms"][i] / curves[names[1]]["median_ms"][i])
        rows.append(row)
    return format_table(rows, header, decimals=2)


def per_instance_ms(curve: dict) -> float | None:
    """The slope of a latency curve: extra ms per extra detection, from its first to its last
    point (None with fewer than two distinct counts)."""
    counts, times = curve["instances"], curve["median_ms"]
    if len(counts) < 2 or counts[-1] == counts[0]:
        return None
    return (times[-1] - times[0]) / (counts[-1] - counts[0])


def matched_markdown(accuracy: Mapping[str, Mapping], curves: Mapping[str, Mapping]) -> str:
    """The matched comparison in words, generated from its numbers (notebook 01).

    accuracy: {model name: row} with "mask AP", "mask AP90" (numbers or strings such as "0.403",
    as :func:`~yolact_edu.lessons.pretrained.shipped_rows` gives them) and optionally "training";
    curves: :func:`latency_curve`'s result for the same names. Returns Markdown bullets: who has
    the higher mask AP90 and mask AP, and each model's end-to-end time at the fewest and the most
    instances with its least-squares slope (ms per extra instance)."""
    names = list(accuracy)
    lines = []
    for key in ("mask AP90", "mask AP"):
        order = sorted(names, key=lambda name: float(accuracy[name][key]), reverse=True)
        values = ", ".join(f"{name} {float(accuracy[name][key]):.3f}" for name in order)
        top, second = float(accuracy[order[0]][key]), float(accuracy[order[-1]][key])
        verdict = f"{order[0]} higher" if top > second else "equal"
        lines.append(f"- **{key}**: {values} ({verdict}).")
    if all("training" in accuracy[name] for name in names):
        lines.append("- **trained for** (iterations x batch): "
                     + ", ".join(f"{name} {accuracy[name]['training']}" for name in names) + ".")
    times = []
    for name in names:
        curve = curves[name]
        slope = least_squares_slope(curve["instances"], curve["median_ms"])
        times.append(f"{name} {curve['median_ms'][0]:.1f} → {curve['median_ms'][-1]:.1f} ms "
                     f"({slope:+.2f} ms per extra instance)")
    first, last = curves[names[0]]["instances"][0], curves[names[0]]["instances"][-1]
    lines.append(f"- **end to end**, N = {first} → {last}: " + "; ".join(times) + ".")
    return "\n".join(lines)


def shipped_name(result: dict, name: str) -> str:
    """The shipped model behind the row ``name`` of a comparison: ``yolact_tiny`` for the row
    "YOLACT" of ``yolact-edu bench compare`` on the shipped weights (read from the stem of its
    weights file, ``yolact_tiny_shapes.pth``), else ``name`` itself. Its colour is the model's
    colour in every notebook (:func:`~yolact_edu.viz.palette.model_color`): the tiny YOLACT is
    tab:red here as in notebook 01, not the paper-scale YOLACT's dark red."""
    from pathlib import PurePath

    weights = (result.get("weights") or {}).get(name)
    if not weights:
        return name
    stem = PurePath(str(weights)).stem
    return stem.removesuffix("_shapes")


def summary_rows(result: dict, decimals: int | None = None) -> list[dict]:
    """One row per model: the model (its row name) and, when the run records its weights, the
    shipped model it is (:func:`shipped_name`), parameters, the accuracy figures, and the latency
    at the fewest and the most instances timed with the slope between them (ms per extra instance).
    Values as numbers, or with ``decimals`` every float as a string with that many decimals (for
    display)."""
    rows = []
    for name, row in result["accuracy"].items():
        curve = result["latency"][name]
        shipped = {"shipped as": shipped_name(result, name)} if result.get("weights") else {}
        rows.append({"model": name, **shipped, "params (M)": row["params"] / 1e6,
                     **{key: row[key] for key, _, _ in ACCURACY_COLUMNS},
                     f"ms @ N={curve['counts'][0]}": curve["median_ms"][0],
                     f"ms @ N={curve['counts'][-1]}": curve["median_ms"][-1],
                     "ms / instance": per_instance_ms(curve)})
    if decimals is not None:
        rows = [{key: f"{value:.{decimals}f}" if isinstance(value, float) else value for key, value in row.items()}
                for row in rows]
    return rows


def summary_table(result: dict) -> str:
    """:func:`summary_rows` as fixed-width text, 3 decimals."""
    rows = summary_rows(result)
    return format_table([list(row.values()) for row in rows], list(rows[0]), decimals=3)


def plot_comparison(result: dict, figsize=(13, 4.2)):
    """The comparison in one figure: box AP, mask AP and mask AP90 per model (bars), and end-to-end
    latency against the number of instances N (lines). Each model in the colour of the model it
    is (:func:`shipped_name`: the shipped ``yolact_tiny`` in the tiny YOLACT's colour); each line
    with its own marker and dash, so lines that lie on each other both show. Returns the Figure."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    fig, (bars, lines) = plt.subplots(1, 2, figsize=figsize, gridspec_kw={"width_ratios": [1.25, 1]})
    names = list(result["accuracy"])
    shown = (("box_AP", "box AP"), ("mask_AP", "mask AP"), ("mask_AP90", "mask AP90 (boundary)"))
    x = np.arange(len(names))
    width = 0.8 / len(shown)
    colors = [model_color(shipped_name(result, name)) for name in names]
    # each model in its colour (as in every plot), the three figures told apart by their hatching
    for i, ((key, label), hatch, alpha) in enumerate(zip(shown, ("", "//", ".."), (1.0, 0.7, 0.45))):
        values = [result["accuracy"][name][key] for name in names]
        drawn = bars.bar(x + (i - (len(shown) - 1) / 2) * width, values, width, color=colors, alpha=alpha,
                         hatch=hatch, edgecolor="white", label=label)
        bars.bar_label(drawn, fmt="%.2f", fontsize=7, padding=1)
    bars.set_xticks(x, names, fontsize=9)
    bars.set_ylabel("COCO AP on the val images")
    bars.set_ylim(0, 1)
    keys = [Patch(facecolor="0.45", alpha=alpha, hatch=hatch, edgecolor="white", label=label)
            for (_, label), hatch, alpha in zip(shown, ("", "//", ".."), (1.0, 0.7, 0.45))]
    bars.legend(handles=keys, fontsize=8, loc="upper right")
    bars.set_title(f"accuracy, {next(iter(result['accuracy'].values()))['images']} images", fontsize=10)
    markers, dashes = ("o", "s", "^", "D", "v", "P", "X", "*"), ("-", "--", "-.", ":")
    for i, (name, curve) in enumerate(result["latency"].items()):
        shipped = shipped_name(result, name)
        # open markers and distinct dashes: a line drawn later does not hide one beneath it
        lines.plot(curve["instances"], curve["median_ms"], marker=markers[i % len(markers)],
                   linestyle=dashes[i % len(dashes)], markerfacecolor="none", markersize=7, linewidth=1.6,
                   label=name if shipped == name else f"{name} ({shipped})", color=model_color(shipped))
    lines.set_xlabel("detections N (forced)")
    lines.set_ylabel("ms per image, batch 1 (median)")
    lines.set_title(f"end-to-end predict, {result['environment']['machine']}", fontsize=10)
    lines.grid(True, alpha=0.3)
    lines.legend(fontsize=8)
    fig.tight_layout()
    return fig


def paper_scale_table(result: dict) -> str:
    rows = [[f"YOLACT {stage}", ms] for stage, ms in result["yolact"]["stages_ms"].items()]
    rows.append(["YOLACT total", result["yolact"]["total_ms"]])
    rows += [[f"Mask R-CNN {stage}", ms] for stage, ms in result["maskrcnn"]["stages_ms"].items()]
    rows.append(["Mask R-CNN total", result["maskrcnn"]["total_ms"]])
    return format_table(rows, ["stage", "ms (median)"], decimals=1)


__all__ = ["ACCURACY_COLUMNS", "parameter_count", "accuracy", "latency_curve",
           "matched_comparison", "paper_scale", "accuracy_table", "latency_table", "paper_scale_table",
           "per_instance_ms", "matched_markdown", "shipped_name", "summary_rows", "summary_table", "plot_comparison"]
