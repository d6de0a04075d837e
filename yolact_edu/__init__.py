"""yolact_edu — learn real-time instance segmentation with YOLACT / YOLACT++.

    >>> import yolact_edu as ye
    >>> model = ye.Yolact(ye.get_config("yolact_tiny")).eval()
    >>> detections = model.predict(image)          # image: HxWx3 uint8 RGB
    >>> rcnn = ye.build_model("maskrcnn_tiny")      # every model by name, same faces
    >>> trained = ye.load("condinst_tiny")          # a shipped model, your checkpoint or an official file
"""
from .build import build_model, get_model_config, list_models
from .config import ModelConfig, YolactConfig, get_config, list_configs
from .detections import Detections
from .loading import load
from .loss import YolactLoss
from .model import Yolact
from .weights import CheckpointError, download_official, load_official

__version__ = "0.1.0"

__all__ = ["load", "build_model", "get_model_config", "list_models", "ModelConfig",
           "YolactConfig", "get_config", "list_configs", "Yolact", "Detections", "YolactLoss",
           "load_official", "download_official", "CheckpointError", "__version__"]
