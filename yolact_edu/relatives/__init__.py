"""YOLACT's relatives: other instance segmenters behind YOLACT's interface (``preprocess``,
``forward`` -> raw dict, ``criterion`` -> the loss, ``detect``, ``predict`` ->
:class:`~yolact_edu.detections.Detections`), trained by the same Trainer and scored by the same
evaluation. ``maskrcnn``: the detect-then-segment baseline (torchvision's Mask R-CNN on the
teaching backbone). Built by name with :func:`yolact_edu.build_model`."""
