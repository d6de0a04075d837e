"""``yolact-edu configs``: the model configurations, one line each."""
from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("configs", help="list the model configurations")


FAMILY_NAMES = {"yolact": "YOLACT", "maskrcnn": "Mask R-CNN"}


def run(_args) -> int:
    from ..build import get_model_config, list_models
    for name in list_models():
        cfg = get_model_config(name)
        kind = "YOLACT++" if getattr(cfg, "use_maskiou", False) else FAMILY_NAMES.get(cfg.family, cfg.family)
        print(f"{name:22s} {kind:10s} {cfg.backbone:10s} {cfg.max_size:4d}px  "
              f"{cfg.num_anchors} anchors/cell  "
              f"{cfg.num_classes} classes  {cfg.augmentation} augmentation")
    return 0


__all__ = ["add_parser", "run"]
