"""Every model of the package by name: ``build_model("yolact_tiny")``, ``build_model("maskrcnn_tiny")``.

The one place that knows all families (YOLACT in ``model/``, the others in ``relatives/``), so
that the Trainer, ``evaluate``, checkpoints and the CLI can serve any of them by name or by
config, and rebuild the right one from a checkpoint's config dict (its "family" entry).

    >>> import yolact_edu as ye
    >>> model = ye.build_model("maskrcnn_tiny")
    >>> model = ye.build_model(ye.get_config("yolact_tiny").replace(max_size=256))
"""
from __future__ import annotations

from torch import nn

from .config import ModelConfig, YolactConfig, get_config, list_configs
from .config import config_from_dict as family_config_from_dict
from .model import Yolact
from .relatives.blendmask import BLENDMASK_CONFIGS, BlendMaskConfig, BlendMaskTiny
from .relatives.centermask import CENTERMASK_CONFIGS, CenterMaskConfig, CenterMaskTiny
from .relatives.condinst import CONDINST_CONFIGS, CondInstConfig, CondInstTiny
from .relatives.maskrcnn import MASKRCNN_CONFIGS, MaskRCNNConfig, MaskRCNNTiny
from .relatives.solov2 import SOLOV2_CONFIGS, SOLOv2Config, SOLOv2Tiny

# family -> (config class, model class)
FAMILIES: dict[str, tuple[type[ModelConfig], type[nn.Module]]] = {
    YolactConfig.family: (YolactConfig, Yolact),
    MaskRCNNConfig.family: (MaskRCNNConfig, MaskRCNNTiny),
    CondInstConfig.family: (CondInstConfig, CondInstTiny),
    SOLOv2Config.family: (SOLOv2Config, SOLOv2Tiny),
    BlendMaskConfig.family: (BlendMaskConfig, BlendMaskTiny),
    CenterMaskConfig.family: (CenterMaskConfig, CenterMaskTiny),
}
# family -> its name in prose, tables and plots
FAMILY_NAMES: dict[str, str] = {"yolact": "YOLACT", "maskrcnn": "Mask R-CNN", "condinst": "CondInst",
                                "solov2": "SOLOv2", "blendmask": "BlendMask", "centermask": "CenterMask"}
_RELATIVE_CONFIGS: dict[str, ModelConfig] = {**MASKRCNN_CONFIGS, **CONDINST_CONFIGS, **SOLOV2_CONFIGS,
                                              **BLENDMASK_CONFIGS, **CENTERMASK_CONFIGS}


def list_models() -> list[str]:
    """Every config name :func:`build_model` accepts: YOLACT's (:func:`list_configs`), then the
    relatives' (``maskrcnn_tiny``, ...)."""
    return [*list_configs(), *_RELATIVE_CONFIGS]


def get_model_config(name: str) -> ModelConfig:
    """The config called ``name``, of any family."""
    if name in _RELATIVE_CONFIGS:
        return _RELATIVE_CONFIGS[name]
    try:
        return get_config(name)
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(list_models())}") from None


def build_model(name_or_config: str | ModelConfig) -> nn.Module:
    """A freshly initialised model (train mode, CPU) for a config or a config name."""
    cfg = get_model_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    if cfg.family not in FAMILIES:
        raise ValueError(f"unknown model family {cfg.family!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[cfg.family][1](cfg)


def config_from_dict(values: dict) -> ModelConfig:
    """A config of any family from :func:`~yolact_edu.config.config_to_dict`'s dict (a dict
    without "family", from before there were others, is YOLACT's)."""
    family = values.get("family", YolactConfig.family)
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return family_config_from_dict(values, FAMILIES[family][0])


def detect_options_markdown() -> str:
    """A Markdown table of what each family's ``detect``/``predict`` honours beyond the options all
    share (score_threshold, top_k, mask_threshold), read off the model classes themselves (``nms_kinds``,
    ``iou_refusal``, ``crop_refusals``, ``detect_extras``), so the README cannot drift from the code."""
    lines = ["| family | nms (first: default) | iou_threshold | crop | its own options |", "|---|---|---|---|---|"]
    for family, (_, model_class) in FAMILIES.items():
        crops = [f"{value} (default)" if value == model_class.crop_default else str(value)
                 for value in (True, False) if value not in model_class.crop_refusals]
        crop = " or ".join(sorted(crops, key=lambda text: "default" not in text)) if crops else "refused"
        extras = ", ".join(name for name in model_class.detect_extras)
        iou = "refused" if model_class.iou_refusal is not None else "yes"
        lines.append(f"| {FAMILY_NAMES[family]} | {', '.join(model_class.nms_kinds)} | {iou} | {crop} | {extras} |")
    return "\n".join(lines)


__all__ = ["build_model", "get_model_config", "list_models", "config_from_dict", "detect_options_markdown",
           "FAMILIES", "FAMILY_NAMES"]
