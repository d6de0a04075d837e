"""YOLACT's relatives: other instance segmenters behind YOLACT's interface (``preprocess``,
``forward`` -> raw dict, a loss, ``detect``, ``predict`` -> :class:`~yolact_edu.detections.Detections`),
trained by the same Trainer and scored by the same evaluation. Empty until they land."""
