"""The NMS explorer (notebook 03): an IoU-threshold slider and a score slider re-run standard
and Fast NMS on one image's candidates and redraw the boxes each keeps.

    >>> from yolact_edu.widgets import NmsExplorer
    >>> NmsExplorer(image, nms_candidates(raw), class_names).widget     # display this
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..lessons.nms_comparison import NmsCandidates, NmsComparison, compare_nms, plot_nms_comparison
from .render import SnapshotBox, show_in_output


class NmsExplorer:
    """An ipywidgets panel: an IoU-threshold slider and a score slider re-run standard and
    Fast NMS on one image's candidates and redraw :func:`plot_nms_comparison`.

    ``NmsExplorer(image, candidates, class_names).widget`` is what a notebook displays;
    :meth:`update` (called on every slider change) returns the new :class:`NmsComparison`.
    """

    def __init__(self, image: np.ndarray, candidates: NmsCandidates, class_names: Sequence[str] = (),
                 iou_threshold: float = 0.5, min_score: float = 0.05, nms_top_k: int = 200,
                 conf_threshold: float = 0.05, max_detections: int | None = 100):
        import ipywidgets as widgets

        self.image, self.candidates, self.class_names = image, candidates, tuple(class_names)
        self.start_threshold = iou_threshold        # the slider's starting value (the config's threshold)
        self.settings = {"nms_top_k": nms_top_k, "conf_threshold": conf_threshold, "max_detections": max_detections}
        self.iou_slider = widgets.FloatSlider(value=iou_threshold, min=0.05, max=0.95, step=0.05,
                                              description="IoU threshold", continuous_update=False,
                                              style={"description_width": "initial"})   # the whole label
        self.score_slider = widgets.FloatSlider(value=min_score, min=0.0, max=0.95, step=0.05,
                                                description="min score", continuous_update=False,
                                                style={"description_width": "initial"})
        self.summary = widgets.HTML()
        self.output = widgets.Output()
        for slider in (self.iou_slider, self.score_slider):
            slider.observe(self.update, names="value")
        self.widget = SnapshotBox([widgets.HBox([self.iou_slider, self.score_slider]), self.summary, self.output])
        self.widget.snapshot_name = type(self).__name__
        self.comparison = self.update()

    def update(self, _change=None) -> NmsComparison:
        import matplotlib.pyplot as plt

        self.comparison = compare_nms(self.candidates.boxes, self.candidates.scores, ("standard", "fast"),
                                      self.iou_slider.value, **self.settings)
        min_score = self.score_slider.value
        only_standard = self.comparison.only_in("standard", "fast", min_score)
        self.summary.value = (f"IoU threshold {self.iou_slider.value:.2f}: standard keeps "
                              f"{len(self.comparison.runs['standard'].pairs(min_score))}, Fast NMS "
                              f"{len(self.comparison.runs['fast'].pairs(min_score))} boxes scoring above "
                              f"{min_score:.2f}; {len(only_standard)} suppressed by Fast NMS only")
        fig = plot_nms_comparison(self.image, self.candidates.boxes, self.comparison, min_score=min_score,
                                  class_names=self.class_names, scores=self.candidates.scores,
                                  nms_top_k=self.settings["nms_top_k"])
        # the PNG into the Output directly (no display through pyplot), kept as the snapshot
        self.widget.png = show_in_output(self.output, fig, self.summary.value)
        plt.close(fig)
        return self.comparison


__all__ = ["NmsExplorer"]
