"""MaskAssemblyControls: every post-processing setting of YOLACT on a slider, with the time of each stage.

The network runs once per image (its raw outputs are kept); moving a control re-runs only
:meth:`Yolact.detect` — decode, NMS, mask assembly, crop, upsampling, threshold — which is
cheap enough to feel live on a CPU, and is exactly the part these settings change.

    >>> from yolact_edu.widgets import MaskAssemblyControls
    >>> controls = MaskAssemblyControls(model, [image_a, image_b])
    >>> controls.nms.value = "standard"; controls.num_protos.value = 4
    >>> len(controls.detections), controls.timings        # what the picture shows
    >>> both = MaskAssemblyControls({"shipped": shipped, "this run": trained}, images)   # a model picker

The "prototypes" slider *truncates* a trained model: it keeps the first k of the prototypes the
model was trained with (and their coefficients) and drops the rest. That is not a model trained
with k prototypes (notebook 04 §6 compares those); the note beside the slider says so.
"""
from __future__ import annotations

import contextlib
import statistics

import ipywidgets as widgets
import numpy as np

from ..bench.timing import STAGES, network_outputs
from ..viz.draw import draw_detections
from .render import StaticSnapshot, new_figure, show_in_output

NMS_KINDS = (("Fast NMS", "fast"), ("cross-class Fast", "cross_class"), ("standard", "standard"))
UPSAMPLING = ("bilinear", "nearest", "bicubic")


class MaskAssemblyControls(StaticSnapshot, widgets.VBox):
    """Post-processing controls for a trained model on a few images.

    model: a :class:`~yolact_edu.Yolact`, or {label: Yolact} to explore several (a "model" picker
    appears; the first is shown first); images: HxWx3 uint8 RGB arrays; names: labels for the
    image picker (default "image 0", ...); repeats: post-processing runs per change (median timed).

    State: ``model`` (the one shown), ``detections`` (CPU :class:`~yolact_edu.Detections` shown),
    ``timings`` (seconds per stage in :data:`yolact_edu.bench.timing.STAGES` order; preprocess and
    network measured once per image and model), ``figure``, ``png``.
    """

    def __init__(self, model, images, *, names=None, repeats: int = 3):
        self.models = dict(model) if isinstance(model, dict) else {model.cfg.name: model}
        if not self.models:
            raise ValueError("MaskAssemblyControls needs at least one model")
        for each in self.models.values():
            each.eval()
        model = next(iter(self.models.values()))
        self.model = model
        self.repeats = max(1, repeats)
        self.images = [np.ascontiguousarray(image) for image in images]
        if not self.images:
            raise ValueError("MaskAssemblyControls needs at least one image")
        names = list(names) if names is not None else [f"image {i}" for i in range(len(self.images))]
        cfg = model.cfg
        self._network_cache: dict[tuple[str, int], tuple[dict, dict]] = {}
        self.detections = None
        self.timings: dict[str, float] = {}
        self.png = b""
        self.figure = new_figure(12, 5)

        def slider(kind, css, **kwargs):
            control = kind(continuous_update=False, style={"description_width": "120px"},
                           layout=widgets.Layout(width="380px"), **kwargs)
            control.add_class(css)
            return control

        self.image = widgets.Dropdown(options=list(zip(names, range(len(self.images)))), description="image",
                                      style={"description_width": "120px"}, layout=widgets.Layout(width="380px"))
        self.score_threshold = slider(widgets.FloatSlider, "ye-score-threshold", value=0.3, min=0.0, max=0.95,
                                      step=0.05, description="score threshold")
        self.top_k = slider(widgets.IntSlider, "ye-top-k", value=20, min=1, max=100, description="top-k")
        self.nms = widgets.ToggleButtons(options=NMS_KINDS, value="fast", description="NMS",
                                         style={"description_width": "120px", "button_width": "120px"})
        self.iou_threshold = slider(widgets.FloatSlider, "ye-iou-threshold", value=cfg.nms_iou_thresh, min=0.05,
                                    max=0.95, step=0.05, description="NMS IoU threshold")
        self.crop = widgets.Checkbox(value=True, description="crop masks to their boxes", indent=False)
        self.mask_threshold = slider(widgets.FloatSlider, "ye-assembly-mask-threshold", value=0.5, min=0.05,
                                     max=0.95, step=0.05, description="mask threshold")
        self.interpolation = widgets.Dropdown(options=UPSAMPLING, value="bilinear", description="upsampling",
                                              style={"description_width": "120px"},
                                              layout=widgets.Layout(width="380px"))
        self.model_picker = widgets.Dropdown(options=list(self.models), description="model",
                                             style={"description_width": "120px"},
                                             layout=widgets.Layout(width="380px"))
        self.num_protos = slider(widgets.IntSlider, "ye-num-protos", value=cfg.num_protos, min=1,
                                 max=cfg.num_protos, description=prototype_slider_label(cfg.num_protos))
        self.num_protos_note = widgets.HTML(prototype_note(cfg.num_protos))
        self.status = widgets.Label()
        self.figure_out = widgets.Output()
        self.model_picker.add_class("ye-model")
        self.num_protos_note.add_class("ye-num-protos-note")
        self.image.add_class("ye-image")
        self.nms.add_class("ye-nms")
        self.crop.add_class("ye-assembly-crop")
        self.interpolation.add_class("ye-upsampling")
        self.status.add_class("ye-assembly-label")
        self.figure_out.add_class("ye-assembly-figure")

        self.controls = [self.image, self.score_threshold, self.top_k, self.nms, self.iou_threshold, self.crop,
                         self.mask_threshold, self.interpolation, self.num_protos]
        left = widgets.VBox(([self.model_picker] if len(self.models) > 1 else []) + self.controls[:5])
        right = widgets.VBox(self.controls[5:] + [self.num_protos_note])
        super().__init__([widgets.HBox([left, right]), self.status, self.figure_out])
        for control in self.controls:
            control.observe(lambda _change: self.update(), names="value")
        self.model_picker.observe(lambda change: self._pick_model(change["new"]), names="value")
        self.update()

    def _pick_model(self, label: str) -> None:
        """Show another of the models: the prototype slider takes its k (all of them, at first)."""
        self.model = self.models[label]
        k = self.model.cfg.num_protos
        with self.hold_updates():
            self.num_protos.max = k
            self.num_protos.value = k
            self.num_protos.description = prototype_slider_label(k)
            self.num_protos_note.value = prototype_note(k)
        self.update()

    @contextlib.contextmanager
    def hold_updates(self):
        """A context in which moving controls does not redraw (the caller redraws once after it)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def settings(self) -> dict:
        """The current settings as keyword arguments of :meth:`Yolact.detect`."""
        return {"score_threshold": float(self.score_threshold.value), "top_k": int(self.top_k.value),
                "nms": self.nms.value, "iou_threshold": float(self.iou_threshold.value), "crop": self.crop.value,
                "mask_threshold": float(self.mask_threshold.value), "interpolation": self.interpolation.value,
                "num_protos": int(self.num_protos.value)}

    def _network(self, index: int) -> tuple[dict, dict]:
        key = (self.model_picker.value, index)
        if key not in self._network_cache:
            self._network_cache[key] = network_outputs(self.model, self.images[index])
        return self._network_cache[key]

    def update(self) -> None:
        """Re-run post-processing with the current settings and redraw."""
        if getattr(self, "_holding", False):
            return
        index = self.image.value
        raw, network_timings = self._network(index)
        image = self.images[index]
        runs = []
        for _ in range(self.repeats):       # post-processing is a few ms: the median of a few runs is steadier
            timings = dict(network_timings)
            self.detections = self.model.detect(raw, image.shape[:2], timings=timings, **self.settings())[0].cpu()
            runs.append(timings)
        self.timings = {stage: statistics.median(run.get(stage, 0.0) for run in runs) for stage in STAGES}
        post = sum(self.timings[s] for s in STAGES[2:])
        self.status.value = (f"{len(self.detections)} detections · post-processing {post * 1000:.1f} ms · "
                             f"network {self.timings['network'] * 1000:.0f} ms · "
                             f"first {self.num_protos.value} of {self.model.cfg.num_protos} prototypes · "
                             f"NMS {self.nms.value}")
        if len(self.models) > 1:
            self.status.value = f"{self.model_picker.value}: {self.status.value}"
        self._draw(image)
        self.png = show_in_output(self.figure_out, self.figure, self.status.value)

    def _draw(self, image: np.ndarray) -> None:
        fig = self.figure
        fig.clear()
        grid = fig.add_gridspec(1, 5, wspace=0.5)
        ax = fig.add_subplot(grid[0, :3])
        ax.imshow(draw_detections(image, self.detections))
        shown = f"{self.model_picker.value}: " if len(self.models) > 1 else ""
        ax.set_title(f"{shown}{len(self.detections)} detections")
        ax.axis("off")
        ax = fig.add_subplot(grid[0, 3:])
        milliseconds = [self.timings[s] * 1000 for s in STAGES]
        colors = ["#bbbbbb", "#7f7f7f", "#1f77b4", "#2ca02c", "#ff7f0e"]
        ax.barh(range(len(STAGES)), milliseconds, color=colors)
        ax.set_yticks(range(len(STAGES)), STAGES)
        ax.invert_yaxis()
        for y, ms in enumerate(milliseconds):
            ax.text(ms, y, f" {ms:.1f}", va="center", fontsize=8)
        ax.set_xlabel("ms (this machine; network timed once per image)")
        ax.set_title("time per stage")
        ax.set_xlim(0, max(milliseconds) * 1.3 + 1e-3)


def prototype_slider_label(k: int) -> str:
    """The prototype slider's description for a model trained with ``k`` prototypes."""
    return f"first k of {k} protos"


def prototype_note(k: int) -> str:
    """The note under the prototype slider: it truncates a model trained with ``k`` prototypes."""
    return (f"<small>The model was trained with {k} prototypes. Below {k}, the slider keeps the first k "
            f"and drops the rest: a truncated {k}-prototype model, not one trained with k "
            "(notebook 04 §6 compares those).</small>")


__all__ = ["MaskAssemblyControls", "NMS_KINDS", "UPSAMPLING", "prototype_slider_label", "prototype_note"]
