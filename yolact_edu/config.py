"""Model configurations as frozen dataclasses.

The seven official configurations reproduce the original implementation's
``data/config.py`` (see ``shared/reference/yolact_reference.md`` §1), so their
checkpoints load unchanged.  ``yolact_tiny`` is a teaching configuration that
trains on a laptop CPU in minutes.

    >>> cfg = get_config("yolact_base")
    >>> small = cfg.replace(max_size=400)   # a new config; the original is untouched
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

# The 80 COCO category ids in ascending order; position i <-> 0-based label i.
COCO_CATEGORY_IDS: tuple[int, ...] = tuple(
    i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
)

BASE_SCALES = (24, 48, 96, 192, 384)  # anchor side in pixels at 550, one per FPN level P3..P7
MIN_INPUT_SIZE = 32   # the smallest input side S a config may ask for (the backbone halves it 5 times)
AUGMENTATIONS = ("original", "light", "none")   # training augmentations by name (data.augment.augmentation)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """What every model family shares: its name, classes and input, and the training recipe.

    One Trainer, one ``evaluate`` and one CLI serve every family (YOLACT, the teaching Mask R-CNN,
    the relatives) because they read only these fields; each family adds its own in a subclass
    and names itself in ``family``, which checkpoints record to rebuild the right model.
    """

    family: ClassVar[str] = "yolact"

    name: str
    num_classes: int = 80                      # foreground classes (background is added by the head)
    class_names: tuple[str, ...] = COCO_CLASSES
    max_size: int = 550                        # the square input side S
    normalization: str = "mean_std"            # "mean_std" (ResNet) or "unit" (DarkNet: x/255)

    # Detection
    max_detections: int = 100

    # Training recipe (reference §5), for batch size 8
    optimizer: str = "sgd"                         # "sgd" (the original) or "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_warmup_init: float = 1e-4
    lr_warmup_until: int = 500
    lr_steps: tuple[int, ...] = (280_000, 600_000, 700_000, 750_000)
    lr_gamma: float = 0.1
    lr_schedule: str = "step"                      # "step" (the original) or "cosine"
    max_iter: int = 800_000
    batch_size: int = 8
    # Training augmentation, by name (yolact_edu.data.augment.augmentation): "original" (the
    # paper's), "light" (photometric + mirror, for schedules of minutes) or "none".
    augmentation: str = "original"

    def __post_init__(self) -> None:
        # Values that make no sense are refused here, where they are set, not deep in a forward pass.
        self._require_integers(("num_classes", 1), ("max_size", MIN_INPUT_SIZE), ("max_detections", 1),
                               ("batch_size", 1), ("max_iter", 1))
        if not self.lr > 0:
            raise ValueError(f"config {self.name!r}: lr must be > 0, got {self.lr!r}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"config {self.name!r}: class_names has {len(self.class_names)} entries "
                f"but num_classes is {self.num_classes}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"config {self.name!r}: augmentation must be one of {', '.join(AUGMENTATIONS)}, "
                             f"got {self.augmentation!r}")
        if self.normalization not in ("mean_std", "unit"):
            raise ValueError(f"normalization must be 'mean_std' or 'unit', got {self.normalization!r}")

    def _require_integers(self, *rules: tuple[str, int]) -> None:
        for field_name, least in rules:
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"config {self.name!r}: {field_name} must be an integer >= {least}, got {value!r}")

    def _require_fractions(self, *field_names: str) -> None:
        for field_name in field_names:
            value = getattr(self, field_name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"config {self.name!r}: {field_name} must lie in [0, 1], got {value!r}")

    def replace(self, **changes):
        """Return a copy with some fields changed, e.g. ``cfg.replace(num_classes=3,
        class_names=("a", "b", "c"))``. Changing ``num_classes`` alone renames the
        classes ``class_0 .. class_{n-1}`` unless ``class_names`` is given too."""
        if "num_classes" in changes and "class_names" not in changes:
            n = changes["num_classes"]
            changes["class_names"] = (self.class_names if n == self.num_classes
                                      else tuple(f"class_{i}" for i in range(n)))
        return dataclasses.replace(self, **changes)

    def with_classes(self, class_names):
        """This config for a dataset's classes (e.g. ``cfg.with_classes(train_set.class_names)``):
        itself when they are already its classes, else a copy with ``num_classes`` and
        ``class_names`` set from ``class_names``."""
        class_names = tuple(class_names)
        if class_names == self.class_names:
            return self
        return self.replace(num_classes=len(class_names), class_names=class_names)


@dataclass(frozen=True)
class YolactConfig(ModelConfig):
    """Everything that defines a YOLACT model, its post-processing and its loss.

    Fields are grouped as in the paper: backbone, FPN, anchors (§3.3),
    protonet (§3.1), detection (§3.4) and loss weights (§3.1); the shared ones (classes,
    input size, training recipe) come from :class:`ModelConfig`.
    """

    family: ClassVar[str] = "yolact"

    # Backbone: "resnet101", "resnet50", "resnet18" or "darknet53".
    backbone: str = "resnet101"
    backbone_width: int = 64                       # ResNet stem/first-stage channels (64 = torchvision)
    selected_layers: tuple[int, ...] = (1, 2, 3)   # backbone stages fed to the FPN (C3, C4, C5)
    dcn_layers: tuple[int, ...] = (0, 0, 0, 0)     # per stage: how many trailing blocks may use DCN
    dcn_interval: int = 1                          # ... and every n-th of them does

    # FPN (§3 "Backbone Detector")
    fpn_features: int = 256
    fpn_num_downsample: int = 2                    # extra levels P6, P7 from strided 3x3 convs

    # Anchors: one tuple of scales (pixels at max_size) per FPN level; ratios shared by all.
    pred_scales: tuple[tuple[float, ...], ...] = tuple((s,) for s in BASE_SCALES)
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    square_anchors: bool = True                    # the v1 quirk: h <- w (see reference §1.4)

    # Protonet and head
    num_protos: int = 32
    proto_channels: int = 256
    head_channels: int = 256

    # YOLACT++ fast mask re-scoring
    use_maskiou: bool = False
    maskiou_alpha: float = 25.0
    discard_mask_area: float = 25.0                # proto pixels; smaller GT masks do not train maskiou

    # Detection / NMS (eval.py defaults of the original; max_detections is shared)
    nms_top_k: int = 200                           # candidates per class before Fast NMS
    nms_conf_thresh: float = 0.05
    nms_iou_thresh: float = 0.5

    # Loss (reference §2)
    masks_to_train: int = 100
    positive_iou_threshold: float = 0.5
    negative_iou_threshold: float = 0.4
    crowd_iou_threshold: float = 0.7
    ohem_negpos_ratio: int = 3
    bbox_alpha: float = 1.5
    conf_alpha: float = 1.0
    mask_alpha: float = 6.125
    semantic_segmentation_alpha: float = 1.0

    # File name prefix of the official checkpoint, or None for teaching configs.
    official_weights: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_integers(("num_protos", 1), ("proto_channels", 1), ("head_channels", 1),
                               ("fpn_features", 1), ("backbone_width", 1), ("nms_top_k", 1),
                               ("masks_to_train", 1))
        self._require_fractions("nms_conf_thresh", "nms_iou_thresh", "positive_iou_threshold",
                                "negative_iou_threshold", "crowd_iou_threshold")
        if len(self.pred_scales) != len(self.selected_layers) + self.fpn_num_downsample:
            raise ValueError(
                f"config {self.name!r}: pred_scales needs one entry per FPN level "
                f"({len(self.selected_layers) + self.fpn_num_downsample}), got {len(self.pred_scales)}")
        if self.use_maskiou:
            p3_side = self.max_size
            for _ in range(3):             # stride-2 steps of the backbone down to C3 (ceil rounding)
                p3_side = (p3_side + 1) // 2
            if 2 * p3_side < 63:           # the re-scoring net's five unpadded stride-2 convs need 63 px
                raise ValueError(f"config {self.name!r}: YOLACT++ mask re-scoring needs prototypes of at "
                                 f"least 63 px, i.e. max_size >= 249; got max_size {self.max_size}")

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map cell (A): 3 for YOLACT, 9 for YOLACT++."""
        return len(self.pred_scales[0]) * len(self.aspect_ratios)


# Config fields renamed so that one idea has one name in every family (issue 27): the relatives'
# candidate threshold and NMS IoU now carry YOLACT's names. Checkpoints, shipped files and ONNX
# metadata written under the old names are read through this map.
RENAMED_FIELDS = {"candidate_threshold": "nms_conf_thresh", "nms_threshold": "nms_iou_thresh",
                  "box_score_thresh": "nms_conf_thresh", "box_nms_thresh": "nms_iou_thresh"}


def config_to_dict(cfg: ModelConfig) -> dict:
    """The config as plain Python values (for checkpoints and JSON), its ``family`` included."""
    return {"family": cfg.family, **dataclasses.asdict(cfg)}


def config_from_dict(values: dict, config_class: type[ModelConfig] | None = None) -> ModelConfig:
    """Inverse of :func:`config_to_dict` (lists, e.g. from JSON, become tuples again).

    config_class: the family's config class; None means :class:`YolactConfig` (files written
    before other families existed carry no "family"). A ValueError names unknown fields, or a
    "family" that is not ``config_class``'s.
    """
    config_class = config_class or YolactConfig
    values = dict(values)
    family = values.pop("family", config_class.family)
    if family != config_class.family:
        raise ValueError(f"a {family!r} config cannot be read as a {config_class.family!r} one")
    fields = {f.name for f in dataclasses.fields(config_class)}
    for old_name, name in RENAMED_FIELDS.items():     # files written before the rename still load
        if old_name in values and old_name not in fields and name in fields:
            values.setdefault(name, values.pop(old_name))
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown config fields: {', '.join(unknown)}")

    def tupled(value):
        return tuple(tupled(v) for v in value) if isinstance(value, (list, tuple)) else value
    return config_class(**{key: tupled(value) for key, value in values.items()})


def _scaled(size: int) -> tuple[tuple[float, ...], ...]:
    # The original truncates with int() when it rescales the 550 anchors.
    return tuple((int(s / 550 * size),) for s in BASE_SCALES)


_PLUS_SCALES = tuple(tuple(s * 2 ** (j / 3.0) for j in range(3)) for s in BASE_SCALES)

_BASE = YolactConfig(name="yolact_base", official_weights="yolact_base")

_CONFIGS: dict[str, YolactConfig] = {
    "yolact_base": _BASE,
    "yolact_im400": _BASE.replace(name="yolact_im400", max_size=400, pred_scales=_scaled(400),
                                  official_weights="yolact_im400"),
    "yolact_im700": _BASE.replace(name="yolact_im700", max_size=700, pred_scales=_scaled(700),
                                  masks_to_train=300, official_weights="yolact_im700"),
    "yolact_resnet50": _BASE.replace(name="yolact_resnet50", backbone="resnet50",
                                     official_weights="yolact_resnet50"),
    "yolact_darknet53": _BASE.replace(name="yolact_darknet53", backbone="darknet53",
                                      selected_layers=(2, 3, 4), normalization="unit",
                                      official_weights="yolact_darknet53"),
    "yolact_plus_base": _BASE.replace(name="yolact_plus_base", dcn_layers=(0, 4, 23, 3),
                                      dcn_interval=3, pred_scales=_PLUS_SCALES,
                                      square_anchors=False, use_maskiou=True,
                                      official_weights="yolact_plus_base"),
    "yolact_plus_resnet50": _BASE.replace(name="yolact_plus_resnet50", backbone="resnet50",
                                          dcn_layers=(0, 4, 6, 3), dcn_interval=1,
                                          pred_scales=_PLUS_SCALES, square_anchors=False,
                                          use_maskiou=True, official_weights="yolact_plus_resnet50"),
    # Teaching config: a half-width ResNet-18 at 256 px with 64-channel FPN, protonet and head
    # (about 1/9 of yolact_base's training cost per image) and a short recipe, so a 2-core CPU
    # trains it from scratch in minutes. 256 px rather than 192: the shapes images are 256..384
    # px, and at 192 the masks lose their corners to the 48x48 prototype grid; trained on 6000
    # images for 20k iterations, 192 px plateaus at mask AP 0.49, 256 px passes 0.50 by 7.5k
    # (docs/benchmarks.md, "the shipped models"). No ImageNet weights can be fetched here, so AdamW with a
    # cosine decay replaces the original's SGD steps, which assume a pretrained backbone.
    # Anchors keep the original's pixel sizes (24..384) rather than shrinking with the input as
    # _scaled() does: the strides stay 8..128, and anchors of one stride (8 px on P3) would leave
    # 45% of the shapes objects without an anchor of IoU >= 0.5 (1.2 positives per object instead
    # of 5), which starves the class loss. Light augmentation: the original's zoom-out and crop
    # shrink and cut the objects more than a schedule of minutes can afford.
    "yolact_tiny": _BASE.replace(name="yolact_tiny", backbone="resnet18", backbone_width=32,
                                 max_size=256, pred_scales=tuple((s,) for s in BASE_SCALES), fpn_features=64,
                                 proto_channels=64, head_channels=64, official_weights=None,
                                 optimizer="adamw", lr=2e-3, lr_warmup_init=2e-4, lr_warmup_until=50,
                                 lr_schedule="cosine", lr_gamma=0.02, lr_steps=(), max_iter=3000,
                                 augmentation="light"),
}

OFFICIAL_CONFIGS: tuple[str, ...] = tuple(n for n, c in _CONFIGS.items() if c.official_weights)


def list_configs() -> list[str]:
    """Names accepted by :func:`get_config`: the 7 official ones, then teaching ones."""
    return list(_CONFIGS)


def get_config(name: str) -> YolactConfig:
    """Return the configuration called ``name`` (also accepts the original's
    ``*_config`` spelling, e.g. ``"yolact_base_config"``)."""
    key = name[: -len("_config")] if name.endswith("_config") else name
    if key not in _CONFIGS:
        raise KeyError(f"unknown config {name!r}; choose one of {', '.join(_CONFIGS)}")
    return _CONFIGS[key]


__all__ = ["ModelConfig", "YolactConfig", "list_configs", "get_config", "config_to_dict", "config_from_dict",
           "COCO_CLASSES", "COCO_CATEGORY_IDS", "OFFICIAL_CONFIGS", "AUGMENTATIONS"]
