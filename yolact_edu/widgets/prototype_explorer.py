"""PrototypeExplorer: one detection's mask, assembled from prototypes and coefficients, stage by stage.

Paper §3.2, eq. 1: M = sigmoid(P c), then crop to the box and threshold. The explorer shows the
image with its detections, the k prototype tiles, the chosen detection's coefficients (a bar
chart coloured by sign), each contribution c_i P_i, the running sum, the sigmoid, the crop and
the threshold. Coefficients can be edited and prototypes switched off; the picture follows.

    >>> from yolact_edu.widgets import PrototypeExplorer
    >>> explorer = PrototypeExplorer(model, image)
    >>> explorer                                  # in a notebook cell
    >>> explorer.coef_sliders[3].value = -0.8     # what a learner's slider move does
    >>> explorer.mask_pixels                      # the assembled mask's area at image size
    >>> both = PrototypeExplorer({"shapes": shapes_model, "crowded": crowded_model}, image)
    >>> both.model_picker.value = "crowded"       # the same image through the other model
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..ops.assemble import crop_removes, mask_stages, masks_to_image
from ..ops.boxes import jaccard
from ..viz.draw import class_color, prototype_grid, tile_grid
from .render import StaticSnapshot, new_figure, show_in_output

POSITIVE, NEGATIVE, OFF = "#d62728", "#1f77b4", "#c7c7c7"   # red +, blue -, as the RdBu_r maps


STARTING_CANDIDATES = 3
SAME_OBJECT_IOU = 0.5      # after a model switch, a box overlapping the previous one this much is the same object


class PrototypeExplorer(StaticSnapshot, widgets.VBox):
    """Interactive view of mask assembly for the detections of one image.

    model: a :class:`~yolact_edu.Yolact` (eval mode is set for the prediction), or {label: Yolact}
    to compare several on the same image (a "model" picker; the first is shown first).
    image: HxWx3 uint8 RGB.
    score_threshold, top_k: which detections are offered in the dropdown.
    detection: the one shown first; None picks, of the 3 most confident, the one whose mask the
    crop changes most (:func:`~yolact_edu.ops.assemble.crop_removes`), so the crop's effect is
    visible at once.
    columns: prototype tiles per row in the mosaics.

    State (read it in tests or in code): ``model`` (the one shown), ``detections``
    (:class:`~yolact_edu.Detections`, CPU), ``coefs`` [k] float (the edited coefficients), ``enabled``
    [k] bool, ``stages`` (the dict of
    :func:`~yolact_edu.ops.assemble.mask_stages`), ``mask_image`` [H,W] bool (upsampled, thresholded),
    ``mask_pixels`` int, ``figure`` (matplotlib Figure), ``png`` (bytes last shown).
    """

    def __init__(self, model, image, *, score_threshold: float = 0.3, top_k: int = 10,
                 detection: int | None = None, columns: int = 8):
        self.models = dict(model) if isinstance(model, dict) else {model.cfg.name: model}
        if not self.models:
            raise ValueError("PrototypeExplorer needs at least one model")
        for each in self.models.values():
            if getattr(each.cfg, "family", "yolact") != "yolact":
                raise TypeError(f"PrototypeExplorer needs a model that assembles masks from prototypes (YOLACT); "
                                f"{each.cfg.name} predicts each mask on its own")
        self.image = np.ascontiguousarray(image)
        self.columns, self.score_threshold, self.top_k = columns, score_threshold, top_k
        self.k = 0
        self.coef_sliders: list[widgets.FloatSlider] = []
        self.proto_toggles: list[widgets.Checkbox] = []
        self.stages: dict[str, torch.Tensor] = {}
        self.mask_image = np.zeros(self.image.shape[:2], bool)
        self.mask_pixels = 0
        self.png = b""
        self._hold = False
        self.figure = new_figure(13, 9.5)

        self.model_picker = widgets.Dropdown(options=list(self.models), description="model",
                                             layout=widgets.Layout(width="260px"))
        self.detection = widgets.Dropdown(options=[("no detections", -1)], description="detection",
                                          layout=widgets.Layout(width="260px"))
        self.mask_threshold = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="threshold",
                                                  continuous_update=False, readout_format=".2f")
        self.crop = widgets.Checkbox(value=True, description="crop to the box", indent=False)
        self.reset = widgets.Button(description="reset", icon="undo",
                                    tooltip="predicted coefficients, all prototypes on")
        self.status = widgets.Label()
        self.figure_out = widgets.Output()
        for widget, css in [(self.model_picker, "ye-model"), (self.detection, "ye-detection"),
                            (self.mask_threshold, "ye-mask-threshold"),
                            (self.crop, "ye-crop"), (self.reset, "ye-reset"), (self.status, "ye-mask-label"),
                            (self.figure_out, "ye-explorer-figure")]:
            widget.add_class(css)
        self.grid = widgets.GridBox([], layout=widgets.Layout(grid_template_columns="repeat(4, 252px)"))
        help_text = widgets.HTML("<b>Coefficients</b> c<sub>i</sub> of the chosen detection (tick box: "
                                 "prototype P<sub>i</sub> on/off). Move one and watch its contribution, "
                                 "the sum and the mask change.")
        top = [self.detection, self.mask_threshold, self.crop, self.reset]
        super().__init__([widgets.HBox(([self.model_picker] if len(self.models) > 1 else []) + top),
                          self.status, self.figure_out, help_text, self.grid])

        self.detection.observe(self._on_detection, names="value")
        for control in (self.mask_threshold, self.crop):
            control.observe(self._on_change, names="value")
        self.reset.on_click(lambda _: self.reset_coefficients())
        self.model_picker.observe(lambda change: self._use_model(change["new"]), names="value")
        self._use_model(self.model_picker.value, detection)

    def _use_model(self, label: str, detection: int | None = None) -> None:
        """Show model ``label``: its detections of the image, its prototypes and their controls. After a
        switch it opens on the detection whose box overlaps the one shown before most (the same object)."""
        shown = getattr(self, "detections", None)
        previous = shown.boxes[self.detection.value] if shown is not None and len(shown) else None
        self.model = self.models[label]
        with torch.no_grad():
            self.detections = self.model.predict(self.image, score_threshold=self.score_threshold,
                                                 top_k=self.top_k).cpu()
        self.proto = self.detections.proto
        if self.proto.shape[-1] != self.k:
            self._build_coefficient_controls(self.proto.shape[-1])
        self.coefs = np.zeros(self.k, np.float32)
        self.enabled = np.ones(self.k, bool)
        names = self.detections.class_labels
        options = [(f"{i}: {names[i]} {float(s):.2f}", i) for i, s in enumerate(self.detections.scores)]
        self._hold = True
        try:
            self.detection.options = options or [("no detections", -1)]
        finally:
            self._hold = False
        controls = [self.detection, self.mask_threshold, self.crop, self.reset, *self.coef_sliders,
                    *self.proto_toggles]
        if len(self.detections):
            for control in controls:
                control.disabled = False
            if detection is None and previous is not None:
                overlap = jaccard(previous[None].float(), self.detections.boxes.float())[0]
                detection = int(overlap.argmax()) if float(overlap.max()) >= SAME_OBJECT_IOU else None
            if detection is None:
                # among the 3 most confident (whose masks are usually right), the one the crop changes most
                removed = crop_removes(self.proto.float(), self.detections.coefs.float(), self.detections.boxes_rel)
                detection = int(removed[:STARTING_CANDIDATES].argmax())     # detections are sorted by score
            if not 0 <= detection < len(self.detections):
                raise IndexError(f"detection {detection} is not one of the {len(self.detections)} detections "
                                 f"above score {self.score_threshold}")
            self._load_detection(detection)
        else:
            for control in controls:
                control.disabled = True
            self.status.value = f"no detection scores above {self.score_threshold}: lower score_threshold"
            self._draw_empty()

    def _build_coefficient_controls(self, k: int) -> None:
        """One slider and one on/off box per prototype (k of them), wired to the picture."""
        self.k = k
        self.coef_sliders = [
            widgets.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.01, description=f"c{i}",
                                continuous_update=False, readout_format=".2f",
                                layout=widgets.Layout(width="195px"), style={"description_width": "28px"})
            for i in range(k)]
        self.proto_toggles = [widgets.Checkbox(value=True, description=f"P{i}", indent=False,
                                               layout=widgets.Layout(width="52px"))
                              for i in range(k)]
        for i, (slider, toggle) in enumerate(zip(self.coef_sliders, self.proto_toggles)):
            slider.add_class("ye-coef-slider")
            toggle.add_class("ye-proto-toggle")
            slider.observe(lambda change, i=i: self._on_coef(i, change["new"]), names="value")
            toggle.observe(lambda change, i=i: self._on_toggle(i, change["new"]), names="value")
        self.grid.children = [widgets.HBox([t, s]) for t, s in zip(self.proto_toggles, self.coef_sliders)]

    # -- callbacks: read the controls, recompute, redraw ----------------------------------
    def _on_detection(self, change) -> None:
        if not self._hold and change["new"] is not None and change["new"] >= 0:
            self._load_detection(change["new"])

    def _on_change(self, _change=None) -> None:
        if not self._hold:
            self.update()

    def _on_coef(self, i: int, value: float) -> None:
        self.coefs[i] = value
        self._on_change()

    def _on_toggle(self, i: int, value: bool) -> None:
        self.enabled[i] = value
        self.coef_sliders[i].disabled = not value
        self._on_change()

    def _load_detection(self, index: int) -> None:
        """Show detection ``index`` with its predicted coefficients and every prototype on."""
        self._hold = True
        try:
            if self.detection.value != index:
                self.detection.value = index
            predicted = self.detections.coefs[index].numpy()
            for i, slider in enumerate(self.coef_sliders):
                slider.value = float(np.round(predicted[i], 2))
                self.proto_toggles[i].value = True
            self.coefs = predicted.astype(np.float32).copy()   # exact values, not the slider's rounding
            self.enabled[:] = True
        finally:
            self._hold = False
        self.update()

    def reset_coefficients(self) -> None:
        """Back to the network's coefficients for the current detection, all prototypes on."""
        if len(self.detections):
            self._load_detection(self.detection.value)

    # -- the computation (library functions) and the picture ------------------------------
    def update(self) -> None:
        index = self.detection.value
        threshold = float(self.mask_threshold.value)
        self.stages = mask_stages(self.proto, torch.from_numpy(self.coefs), self.detections.boxes_rel[index],
                                  enabled=torch.from_numpy(self.enabled), crop_mask=self.crop.value,
                                  threshold=threshold)
        height, width = self.image.shape[:2]
        self.mask_image = masks_to_image(self.stages["cropped"][None], height, width, threshold)[0].numpy()
        self.mask_pixels = int(self.mask_image.sum())
        name = self.detections.class_labels[index]
        self.status.value = (f"detection {index} · {name} {float(self.detections.scores[index]):.2f} · "
                             f"mask {self.mask_pixels} px · threshold {threshold:.2f} · "
                             f"{int(self.enabled.sum())}/{self.k} prototypes on")
        self._draw(index)
        self.png = show_in_output(self.figure_out, self.figure, self.status.value)

    def _draw_empty(self) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(1, 1, 1)
        ax.imshow(self.image)
        ax.set_title(self.status.value)
        ax.axis("off")
        self.png = show_in_output(self.figure_out, self.figure, self.status.value)

    def _draw(self, index: int) -> None:
        fig, stages = self.figure, self.stages
        fig.clear()
        grid = fig.add_gridspec(3, 12, hspace=0.3, wspace=0.6, top=0.95, bottom=0.02, left=0.03, right=0.98)
        color = np.array(class_color(int(self.detections.labels[index]))) / 255

        ax = fig.add_subplot(grid[0, 0:4])
        ax.imshow(self.image)
        for i, box in enumerate(self.detections.boxes.numpy()):
            c = np.array(class_color(int(self.detections.labels[i]))) / 255
            ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor=c,
                                   linewidth=3 if i == index else 1, linestyle="-" if i == index else "--"))
            ax.text(box[0], box[1], str(i), color="white", fontsize=8, va="bottom",
                    bbox={"facecolor": c, "pad": 1, "edgecolor": "none"})
        ax.set_title("1. detections (thick: chosen)")
        ax.axis("off")

        ax = fig.add_subplot(grid[0, 4:8])
        positions = np.arange(self.k)
        colors = [OFF if not on else (POSITIVE if c >= 0 else NEGATIVE) for c, on in zip(self.coefs, self.enabled)]
        ax.bar(positions, np.where(self.enabled, self.coefs, 0.0), color=colors)
        ax.plot(positions, self.detections.coefs[index].numpy(), "k.", markersize=4, label="predicted")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("prototype $i$")
        ax.set_title(r"2. coefficients $c_i$ (tanh: signed)")
        ax.legend(loc="lower right", fontsize=7)

        ax = fig.add_subplot(grid[0, 8:12])
        overlay = self.image.astype(np.float32) / 255
        overlay[self.mask_image] = 0.45 * overlay[self.mask_image] + 0.55 * color
        ax.imshow(overlay)
        box = self.detections.boxes[index].numpy()
        ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, edgecolor=color, linewidth=2))
        ax.set_title(f"9. mask at image size: {self.mask_pixels} px")
        ax.axis("off")

        ax = fig.add_subplot(grid[1, 0:4])
        ax.imshow(self._prototype_mosaic())
        ax.set_title(f"3. the {self.k} prototypes $P_i$ (shared)")
        ax.axis("off")
        for position, key, title in [(grid[1, 4:8], "contributions", r"4. contributions $c_i P_i$"),
                                     (grid[1, 8:12], "running_sum", r"5. running sum $\Sigma_{j \leq i}\, c_j P_j$")]:
            ax = fig.add_subplot(position)
            span = max(float(stages[key].abs().max()), 1e-6)
            ax.imshow(tile_grid(stages[key], self.columns), cmap="RdBu_r", vmin=-span, vmax=span)
            ax.set_title(f"{title}  (±{span:.2f})")
            ax.axis("off")

        hp, wp = stages["logits"].shape
        x1, y1, x2, y2 = (self.detections.boxes_rel[index].numpy() * [wp, hp, wp, hp]).tolist()
        span = max(float(stages["logits"].abs().max()), 1e-6)
        panels = [("logits", r"6. $\Sigma_i\, c_i P_i$ (logits)", {"cmap": "RdBu_r", "vmin": -span, "vmax": span}),
                  ("sigmoid", r"7. $\sigma(\Sigma_i\, c_i P_i)$", {"cmap": "viridis", "vmin": 0, "vmax": 1}),
                  ("cropped", "8. crop to the box" if self.crop.value else "8. crop (off)",
                   {"cmap": "viridis", "vmin": 0, "vmax": 1}),
                  ("mask", f"threshold > {self.mask_threshold.value:.2f}", {"cmap": "gray", "vmin": 0, "vmax": 1})]
        for column, (key, title, style) in enumerate(panels):
            ax = fig.add_subplot(grid[2, 3 * column:3 * column + 3])
            ax.imshow(stages[key].float().numpy(), **style)
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1))
            ax.set_title(title)
            ax.axis("off")

    def _prototype_mosaic(self) -> np.ndarray:
        """:func:`prototype_grid` with switched-off prototypes faded to grey."""
        mosaic = prototype_grid(self.proto, columns=self.columns).astype(np.float32)
        hp, wp, gap = self.proto.shape[0], self.proto.shape[1], 2
        for i in np.flatnonzero(~self.enabled):
            r, c = divmod(int(i), min(self.columns, self.k))
            tile = mosaic[r * (hp + gap):r * (hp + gap) + hp, c * (wp + gap):c * (wp + gap) + wp]
            tile[:] = 0.25 * tile + 0.75 * 200
        return mosaic.astype(np.uint8)


__all__ = ["PrototypeExplorer"]
