"""``yolact-edu configs``: the model configurations, one line each."""
from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("configs", help="list the model configurations")


def run(_args) -> int:
    from ..build import FAMILY_NAMES, get_model_config, list_models
    for name in list_models():
        cfg = get_model_config(name)
        kind = "YOLACT++" if getattr(cfg, "use_maskiou", False) else FAMILY_NAMES.get(cfg.family, cfg.family)
        anchors = f"{cfg.num_anchors} anchors/cell" if hasattr(cfg, "num_anchors") else "anchor-free"
        print(f"{name:22s} {kind:10s} {cfg.backbone:10s} {cfg.max_size:4d}px  {anchors:14s}  "
              f"{cfg.num_classes} classes  {cfg.augmentation} augmentation")
    return 0


__all__ = ["add_parser", "run"]
