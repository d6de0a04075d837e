"""``yolact-edu configs``: the model configurations, one line each."""
from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("configs", help="list the model configurations")


def run(_args) -> int:
    from ..config import get_config, list_configs
    for name in list_configs():
        cfg = get_config(name)
        kind = "YOLACT++" if cfg.use_maskiou else "YOLACT"
        print(f"{name:22s} {kind:9s} {cfg.backbone:10s} {cfg.max_size:4d}px  "
              f"{cfg.num_anchors} anchors/cell  {cfg.num_classes} classes  {cfg.augmentation} augmentation")
    return 0


__all__ = ["add_parser", "run"]
