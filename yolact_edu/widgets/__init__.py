"""Interactive widgets for the notebooks (ipywidgets + matplotlib).

- :class:`PrototypeExplorer` — one detection's mask built from prototypes and coefficients,
  every stage of eq. 1 shown, coefficients and prototypes editable (notebook 02).
- :class:`UploadExplorer` — a file-upload button: the learner's own picture goes into a
  :class:`PrototypeExplorer`; a file that is not an image gets one line, not a traceback (notebook 02).
- :class:`MaskAssemblyControls` — the post-processing settings (thresholds, NMS, crop,
  upsampling, number of prototypes) with the detections and per-stage times (notebook 04).
- :class:`NmsExplorer` — standard against Fast NMS on one image's candidates, with an IoU-threshold
  and a score slider (notebook 03).
- :class:`CostExplorer` — a slider for the number of instances over measured latency curves of
  YOLACT and Mask R-CNN: what each pays at that N, and the extra beyond one instance (notebook 01).
- :class:`MethodPicker` — buttons naming methods and the picture of the chosen one's assembly
  step (notebook 05).
- :class:`TrainingMonitor` — live loss curves, progress, a stop button and sample predictions
  for a :class:`~yolact_edu.training.trainer.Trainer` (notebook 04).

Each widget keeps its state in plain attributes (``.stages``, ``.detections``, ``.timings``,
``.history``) and its picture in a matplotlib ``.figure``; the callbacks only read the controls
and call library functions, so the tests drive the widgets by setting ``.value``.
Needs the ``notebooks`` extra: ``pip install "yolact_edu[notebooks]"``.
"""
from .cost_explorer import CostExplorer
from .image_upload import UploadExplorer
from .mask_assembly import MaskAssemblyControls
from .method_picker import MethodPicker
from .nms_explorer import NmsExplorer
from .prototype_explorer import PrototypeExplorer
from .training_monitor import TrainingMonitor

__all__ = ["PrototypeExplorer", "UploadExplorer", "MaskAssemblyControls", "TrainingMonitor", "NmsExplorer",
           "CostExplorer", "MethodPicker"]
