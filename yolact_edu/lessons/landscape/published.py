"""The real-time instance-segmentation landscape: published speed/accuracy as data and a chart
(notebook 05, "The real-time landscape"); this machine's own timings are in :mod:`.measured`.

Every published number comes from ``shared/reference/perf_anchors.md`` and carries the key of
its source (:data:`SOURCES`). FPS and ms are *as published*: GPU, framework, precision and
whether post-processing is timed differ between rows, so only rows measured on the same GPU
with the same runtime can be compared. :func:`plot_landscape` therefore draws one panel per
GPU instead of one cloud of points.

    >>> from yolact_edu.lessons.landscape.published import PUBLISHED_RESULTS, plot_landscape
    >>> from yolact_edu.lessons.tables import html_table
    >>> fig = plot_landscape()                                  # mask AP vs FPS, a panel per GPU
    >>> html = html_table(results_table(by_gpu()["Titan Xp"]))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PublishedResult", "PUBLISHED_RESULTS", "SOURCES", "GPU_ORDER", "by_gpu", "find",
           "pareto_front", "results_table", "sources_markdown",
           "plot_landscape", "REAL_TIME_FPS"]

SOURCES: dict[str, tuple[str, str]] = {
    "S1": ("YOLACT: Real-time Instance Segmentation (Bolya et al., ICCV 2019), Tables 1, 2, 4",
           "https://arxiv.org/abs/1904.02689"),
    "S2": ("dbolya/yolact README (YOLACT / YOLACT++ model tables)", "https://github.com/dbolya/yolact"),
    "S6": ("haotian-liu/yolact_edge README (Model Zoo)", "https://github.com/haotian-liu/yolact_edge"),
    "S7": ("facebookresearch/detectron2 MODEL_ZOO.md (Mask R-CNN, V100, batch 1)",
           "https://github.com/facebookresearch/detectron2/blob/main/MODEL_ZOO.md"),
    "S8": ("aim-uofa/AdelaiDet READMEs (BlendMask, CondInst; timed on a GTX 1080 Ti, batch 1)",
           "https://github.com/aim-uofa/AdelaiDet"),
    "S9": ("youngwanLEE/centermask2 README (CenterMask-Lite on a Titan Xp)",
           "https://github.com/youngwanLEE/centermask2"),
    "S11": ("WXinlong/SOLO README (SOLOv2; GPU named only in its highlight line)",
            "https://github.com/WXinlong/SOLO"),
    "S13": ("hustvl/SparseInst README", "https://github.com/hustvl/SparseInst"),
    "S15": ("open-mmlab/mmdetection configs/rtmdet README (RTMDet-Ins, TensorRT FP16, RTX 3090)",
            "https://github.com/open-mmlab/mmdetection/tree/main/configs/rtmdet"),
    "S16": ("Ultralytics docs: YOLOv8 segmentation table (A100, TensorRT)",
            "https://docs.ultralytics.com/models/yolov8/"),
    "S17": ("ultralytics/ultralytics docs: YOLO11 segmentation table (T4, TensorRT 10)",
            "https://github.com/ultralytics/ultralytics"),
    "S19": ("tue-mps/eomt README (FPS on an H100)", "https://github.com/tue-mps/eomt"),
    "S21": ("secondary notes on the YOLACT++ paper (arXiv:1912.06218); not the paper itself",
            "https://arxiv.org/abs/1912.06218"),
}


@dataclass(frozen=True)
class PublishedResult:
    """One published COCO result. ``fps`` and ``ms`` are what the source printed (None where it
    gave only the other); ``mask_ap`` is COCO mask AP in percent (0..100)."""

    method: str
    backbone: str
    input_size: str           # "550" = 550x550 square; "800" = shorter side; "~800" = approximate
    split: str                # "test-dev", "val" or "test-dev?" (the source does not say)
    mask_ap: float
    fps: float | None
    ms: float | None
    gpu: str
    runtime: str
    source: str
    note: str = ""

    @property
    def speed_fps(self) -> float:
        """Frames per second, from ``fps`` or else 1000 / ``ms``."""
        return self.fps if self.fps is not None else 1000.0 / self.ms

    @property
    def speed_ms(self) -> float:
        """Milliseconds per image, from ``ms`` or else 1000 / ``fps``."""
        return self.ms if self.ms is not None else 1000.0 / self.fps

    @property
    def tensorrt(self) -> bool:
        return "TensorRT" in self.runtime

    @property
    def yolact_family(self) -> bool:
        return self.method.lower().startswith("yolact")

    @property
    def label(self) -> str:
        """Short name for charts, e.g. "YOLACT-550 R101" (the "-FPN" suffix dropped)."""
        return f"{self.method} {self.backbone.replace('-FPN', '')}"


def _rows(gpu: str, runtime: str, source: str, rows, note: str = "") -> list[PublishedResult]:
    return [PublishedResult(*row[:7], gpu=gpu, runtime=runtime, source=source,
                            note=row[7] if len(row) > 7 else note) for row in rows]


_PYTORCH = "PyTorch FP32"
_TITAN_S1_NOTE = "re-timed on a Titan Xp by the YOLACT authors"
# The YOLACT rows use the paper's Table 1 timings, not the README's (the author re-timed for ICCV).
PUBLISHED_RESULTS: tuple[PublishedResult, ...] = tuple(
    _rows("Titan Xp", _PYTORCH, "S1", [
        ("YOLACT-550", "R101-FPN", "550", "test-dev", 29.8, 33.5, 29.8),
        ("YOLACT-400", "R101-FPN", "400", "test-dev", 24.9, 45.3, 22.1),
        ("YOLACT-550", "R50-FPN", "550", "test-dev", 28.2, 45.0, 22.2),
        ("YOLACT-550", "D53-FPN", "550", "test-dev", 28.7, 40.7, 24.6),
        ("YOLACT-700", "R101-FPN", "700", "test-dev", 31.2, 23.4, 42.7),
        ("PA-Net", "R50-FPN", "~800", "test-dev", 36.6, 4.7, 212.8, _TITAN_S1_NOTE),
        ("RetinaMask", "R101-FPN", "~800", "test-dev", 34.7, 6.0, 166.7, _TITAN_S1_NOTE),
        ("FCIS", "R101-C5", "~600", "test-dev", 29.5, 6.6, 151.5, _TITAN_S1_NOTE),
        ("Mask R-CNN", "R101-FPN", "~800", "test-dev", 35.7, 8.6, 116.3, _TITAN_S1_NOTE),
        ("MS R-CNN", "R101-FPN", "~800", "test-dev", 38.3, 8.6, 116.3, _TITAN_S1_NOTE),
        ("Mask R-CNN", "R101-FPN", "550", "val", 32.2, 13.5, 73.9, "550x550 input, paper Table 2c"),
    ])
    + _rows("Titan Xp", _PYTORCH, "S2", [
        ("YOLACT++-550", "R50-FPN+DCN", "550", "test-dev", 34.1, 33.5, None),
        ("YOLACT++-550", "R101-FPN+DCN", "550", "test-dev", 34.6, 27.3, None),
    ])
    + _rows("Titan Xp", "detectron2", "S9", [
        ("CenterMask2-Lite", "VoVNetV2-19", "lite", "val", 32.8, None, 23.0),
        ("CenterMask2-Lite", "VoVNetV2-39", "lite", "val", 36.7, None, 28.0),
    ])
    + _rows("GTX 1080 Ti", "detectron2", "S8", [
        ("BlendMask-RT", "R50", "512", "val", 35.1, 31.0, None),
        ("BlendMask-RT", "DLA-34", "512", "val", 36.3, 32.0, None),
        ("BlendMask", "R50", "550", "val", 34.5, 28.0, None),
        ("CondInst", "R50", "800", "val", 37.5, 14.0, None),
        ("CondInst", "R101", "800", "val", 38.6, 11.0, None),
        ("Mask R-CNN", "R50-FPN", "800", "val", 37.2, 13.0, None),
        ("Mask R-CNN", "R101-FPN", "800", "val", 38.6, 10.0, None),
    ])
    + _rows("V100", "detectron2", "S7", [
        ("Mask R-CNN", "R50-FPN", "800", "val", 37.2, None, 43.0),
        ("Mask R-CNN", "R101-FPN", "800", "val", 38.6, None, 56.0),
    ])
    + _rows("V100", "PyTorch (mmdet v1)", "S11", [
        ("SOLOv2", "R50", "800", "val", 37.5, None, 54.0),
        ("SOLOv2", "R101", "800", "val", 39.1, None, 66.0),
        ("SOLOv2-Light", "R18", "448", "val", 29.6, None, 19.0),
        ("SOLOv2-Light", "R50", "448", "val", 33.7, None, 24.0),
        ("SOLOv2-Light", "R50-DCN", "512", "val", 36.4, None, 34.0),
    ], note="the README table names no GPU; V100 is from its highlight line")
    + _rows("RTX 2080 Ti", _PYTORCH, "S6", [
        ("YOLACT", "R50-FPN", "550", "test-dev?", 28.2, 45.0, None),
        ("YOLACT", "R101-FPN", "550", "test-dev?", 29.8, 36.5, None),
        ("YOLACT", "MobileNetV2", "550", "test-dev?", 22.1, 35.7, None),
    ])
    + _rows("RTX 2080 Ti", "TensorRT INT8+FP16", "S6", [
        ("YolactEdge", "R50-FPN", "550", "test-dev?", 27.0, 140.3, None),
        ("YolactEdge", "R101-FPN", "550", "test-dev?", 29.5, 124.8, None),
        ("YolactEdge", "MobileNetV2", "550", "test-dev?", 20.8, 161.4, None),
    ])
    + _rows("RTX 2080 Ti", "detectron2", "S13", [
        ("SparseInst", "R50", "640", "val", 32.8, 44.3, None),
        ("SparseInst G-IAM", "R50", "608", "val", 33.4, 44.6, None),
        ("SparseInst G-IAM", "R50-vd-DCN", "608", "val", 37.4, 40.0, None),
    ])
    + _rows("Jetson AGX Xavier", _PYTORCH, "S6", [
        ("YOLACT", "R50-FPN", "550", "test-dev?", 28.2, 9.1, None),
        ("YOLACT", "R101-FPN", "550", "test-dev?", 29.8, 6.6, None),
        ("YOLACT", "MobileNetV2", "550", "test-dev?", 22.1, 15.0, None),
    ])
    + _rows("Jetson AGX Xavier", "TensorRT INT8+FP16", "S6", [
        ("YolactEdge", "R50-FPN", "550", "test-dev?", 27.0, 30.7, None),
        ("YolactEdge", "R101-FPN", "550", "test-dev?", 29.5, 27.3, None),
        ("YolactEdge", "MobileNetV2", "550", "test-dev?", 20.8, 35.7, None),
    ])
    + _rows("RTX 3090", "TensorRT FP16 (+post-proc.)", "S15", [
        ("RTMDet-Ins-tiny", "CSPNeXt", "640", "val", 35.4, None, 1.70),
        ("RTMDet-Ins-s", "CSPNeXt", "640", "val", 38.7, None, 1.93),
        ("RTMDet-Ins-m", "CSPNeXt", "640", "val", 42.1, None, 2.69),
        ("RTMDet-Ins-l", "CSPNeXt", "640", "val", 43.7, None, 3.68),
        ("RTMDet-Ins-x", "CSPNeXt", "640", "val", 44.6, None, 5.31),
    ])
    + _rows("A100", "TensorRT", "S16", [
        ("YOLOv8n-seg", "CSPDarknet", "640", "val", 30.5, None, 1.21),
        ("YOLOv8s-seg", "CSPDarknet", "640", "val", 36.8, None, 1.47),
        ("YOLOv8m-seg", "CSPDarknet", "640", "val", 40.8, None, 2.18),
    ])
    + _rows("T4", "TensorRT 10", "S17", [
        ("YOLO11n-seg", "C3k2", "640", "val", 32.0, None, 1.8),
        ("YOLO11s-seg", "C3k2", "640", "val", 37.8, None, 2.9),
        ("YOLO11m-seg", "C3k2", "640", "val", 41.5, None, 6.3),
    ])
    + _rows("H100", "PyTorch", "S19", [
        ("EoMT-L", "ViT-L/16", "640", "val", 45.2, 128.0, None),
        ("EoMT-L", "ViT-L/16", "1280", "val", 48.8, 30.0, None),
    ])
)
"""The rows of the landscape chart (perf_anchors.md §1). Left out on purpose: mmdet's "V100"
YOLACT times (they are the Titan Xp FPS converted to ms, not V100 measurements) and
YolactEdge's video (YouTube-VIS) rows (feature reuse across frames, not a per-image result)."""

GPU_ORDER: tuple[str, ...] = ("Titan Xp", "GTX 1080 Ti", "V100", "RTX 2080 Ti", "Jetson AGX Xavier",
                              "RTX 3090", "A100", "T4", "H100")
"""Roughly by release date; the Titan Xp and the GTX 1080 Ti are the same (Pascal) class but are
still drawn apart, because their rows come from different code bases."""


def by_gpu(results=PUBLISHED_RESULTS) -> dict[str, list[PublishedResult]]:
    """Rows grouped by GPU in :data:`GPU_ORDER` (the only groups whose speeds compare)."""
    groups: dict[str, list[PublishedResult]] = {}
    for gpu in sorted({r.gpu for r in results}, key=lambda g: (GPU_ORDER + (g,)).index(g)):
        groups[gpu] = [r for r in results if r.gpu == gpu]
    return groups


def find(method: str, backbone: str | None = None, gpu: str | None = None,
         results=PUBLISHED_RESULTS) -> PublishedResult:
    """The single row with this method (and backbone / GPU); KeyError if none or several."""
    hits = [r for r in results if r.method == method and backbone in (None, r.backbone)
            and gpu in (None, r.gpu)]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} rows match method={method!r} backbone={backbone!r} gpu={gpu!r}")
    return hits[0]


def pareto_front(results) -> list[PublishedResult]:
    """The rows no other row beats on both speed and mask AP, fastest first.

    Only meaningful within one GPU group (see :func:`by_gpu`)."""
    front, best_ap = [], -np.inf
    for row in sorted(results, key=lambda r: (-r.speed_fps, -r.mask_ap)):
        if row.mask_ap > best_ap:
            front.append(row)
            best_ap = row.mask_ap
    return front


# -- tables (no pandas here: plain rows, rendered as markdown or HTML) -------------------------
TABLE_COLUMNS = ("method", "backbone", "input", "split", "mask AP", "FPS", "ms", "GPU", "runtime", "source")


def results_table(results=PUBLISHED_RESULTS) -> list[dict]:
    """Rows as dicts with :data:`TABLE_COLUMNS` keys; a speed the source did not print is
    computed from the other and shown in parentheses."""
    table = []
    for r in results:
        table.append({"method": r.method, "backbone": r.backbone, "input": r.input_size, "split": r.split,
                      "mask AP": f"{r.mask_ap:.1f}",
                      "FPS": f"{r.fps:g}" if r.fps is not None else f"({r.speed_fps:.1f})",
                      "ms": f"{r.ms:g}" if r.ms is not None else f"({r.speed_ms:.1f})",
                      "GPU": r.gpu, "runtime": r.runtime, "source": r.source})
    return table


def sources_markdown(results=PUBLISHED_RESULTS, extra: tuple[str, ...] = ()) -> str:
    """A markdown list of the sources the rows cite (plus ``extra`` keys), in key order."""
    keys = sorted({r.source for r in results} | set(extra), key=lambda k: int(k[1:]))
    return "\n".join(f"- **[{k}]** {SOURCES[k][0]} — <{SOURCES[k][1]}>" for k in keys)


# -- the chart ---------------------------------------------------------------------------------
_SPLIT_MARKERS = {"test-dev": "o", "val": "s", "test-dev?": "D"}
REAL_TIME_FPS = 30.0


def _log_fps_axis(ax, low: float, high: float) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if low <= t <= high]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _label_heights(points: list[tuple[float, float]], min_gap: float, near: float = 0.5) -> list[float]:
    """Label y positions: each label starts at its point's y and moves up until it is at least
    ``min_gap`` above the labels of points within ``near`` decades of x (greedy, bottom-up)."""
    order = sorted(range(len(points)), key=lambda i: points[i][1])
    placed: list[tuple[float, float]] = []
    heights = [0.0] * len(points)
    for i in order:
        x, y = points[i]
        for px, py in sorted(placed, key=lambda p: p[1]):
            if abs(np.log10(x) - np.log10(px)) < near and py - min_gap < y < py + min_gap:
                y = py + min_gap
        placed.append((x, y))
        heights[i] = y
    return heights


def plot_landscape(results=PUBLISHED_RESULTS, gpus=None, columns: int = 3, annotate: bool = True,
                   figsize=None, title: str | None = None):
    """Mask AP (y) against FPS (x, log scale), one panel per GPU, so that only speeds measured on
    the same GPU sit side by side. Colour: PyTorch vs TensorRT; marker: COCO split; YOLACT-family
    points have a black edge; dotted line: each panel's speed/accuracy Pareto front; dashed: 30 FPS.

    gpus: the GPUs to draw (default: all, in :data:`GPU_ORDER`). Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    groups = {gpu: rows for gpu, rows in by_gpu(results).items() if gpus is None or gpu in gpus}
    if not groups:
        raise ValueError(f"no rows for GPUs {gpus!r}; known: {sorted({r.gpu for r in results})}")
    columns = min(columns, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=figsize or (4.8 * columns, 3.6 * rows + 0.6),
                             sharey=True, squeeze=False)
    aps = [r.mask_ap for r in results]
    for ax, (gpu, rows_of_gpu) in zip(axes.flat, groups.items()):
        speeds = [r.speed_fps for r in rows_of_gpu] + [REAL_TIME_FPS]
        for r in rows_of_gpu:
            ax.scatter(r.speed_fps, r.mask_ap, marker=_SPLIT_MARKERS.get(r.split, "^"), s=38, zorder=3,
                       color="tab:orange" if r.tensorrt else "tab:blue",
                       edgecolors="black" if r.yolact_family else "none", linewidths=1.2)
        if annotate:
            heights = _label_heights([(r.speed_fps, r.mask_ap) for r in rows_of_gpu], min_gap=1.3)
            names = [r.label for r in rows_of_gpu]
            for r, height in zip(rows_of_gpu, heights):
                name = r.label if names.count(r.label) == 1 else f"{r.label} @{r.input_size}"
                ax.annotate(name, (r.speed_fps, r.mask_ap), xytext=(r.speed_fps * 1.12, height - 0.4),
                            textcoords="data", fontsize=7, fontweight="bold" if r.yolact_family else "normal",
                            arrowprops=None if height - r.mask_ap < 0.5 else
                            {"arrowstyle": "-", "lw": 0.4, "color": "gray"})
        front = pareto_front(rows_of_gpu)
        ax.plot([r.speed_fps for r in front], [r.mask_ap for r in front], ":", color="gray", zorder=1)
        ax.axvline(REAL_TIME_FPS, ls="--", lw=0.8, color="tab:red", zorder=0)
        _log_fps_axis(ax, min(speeds) / 1.5, max(speeds) * 4)
        ax.set_ylim(min(aps) - 2, max(aps) + 3)
        ax.set_title(f"{gpu}  ({len(rows_of_gpu)} rows)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("COCO mask AP")
    for ax in axes[-1]:
        ax.set_xlabel("FPS as published (log scale)")
    handles = [Line2D([], [], marker="o", ls="", color="tab:blue", label="PyTorch (eager)"),
               Line2D([], [], marker="o", ls="", color="tab:orange", label="TensorRT"),
               Line2D([], [], marker="o", ls="", color="gray", label="test-dev"),
               Line2D([], [], marker="s", ls="", color="gray", label="val"),
               Line2D([], [], marker="D", ls="", color="gray", label="split not stated"),
               Line2D([], [], marker="o", ls="", color="white", markeredgecolor="black", label="YOLACT family"),
               Line2D([], [], ls="--", color="tab:red", label="30 FPS"),
               Line2D([], [], ls=":", color="gray", label="Pareto front")]
    fig.legend(handles=handles, loc="lower center", ncol=4 if columns < 3 else len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(title or "Published COCO mask AP vs speed: compare points only within a panel (same GPU)",
                 fontsize=11)
    legend_rows = 2 if columns < 3 else 1
    fig.tight_layout(rect=(0, 0.035 * legend_rows * 3 / (rows + 2), 1, 0.97))
    return fig
