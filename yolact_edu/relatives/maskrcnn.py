"""``maskrcnn_tiny``: torchvision's Mask R-CNN on the teaching YOLACT's backbone, neck and input.

Detect, then segment (notebook 01). The same half-width ResNet-18 and the same FPN as
``yolact_tiny`` feed torchvision's two-stage machinery unchanged:

    x [B,3,S,S] -> ResNet-18 (C3..C5) -> FPN -> P3..P6 [B,F,S/8..S/64]
      -> RPN: 3 anchors per cell and level -> objectness + deltas -> NMS -> R proposals [R,4]
      -> RoIAlign 7x7 on the proposal's level [R,F,7,7] -> 2 FC -> class logits [R,C+1], boxes
      -> per-class NMS -> N detections
      -> RoIAlign 14x14 [N,F,14,14] -> 4 conv + deconv -> mask logits [N,C+1,28,28]
      -> the predicted class's 28x28 mask, pasted into its box at image size

Against YOLACT's assembly (``ops/assemble.py``): each detection gets its own 28x28 mask from
its own feature patch, so mask cost grows with the number of detections, and the mask is only
as good as the box it is cut from.

Inputs are prepared as for YOLACT (:meth:`preprocess`: stretch to S x S, mean/std), so one
dataset serves both models. torchvision's own transform is kept for its bookkeeping but set to
change nothing (resize S -> S, mean 0, std 1). Crowd regions are dropped from the targets
(torchvision's sampler has no notion of them).
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from ..bench.timing import stage_timer
from ..config import ModelConfig
from ..detections import Detections
from ..model.backbone import ResNetBackbone
from ..model.fpn import FPN
from ..model.segmenter import DetectOptions, InstanceSegmenter
from ..postprocess import per_image_sizes
from .instance_masks import detections_from_roi_masks

# torchvision's loss names -> the parts the Trainer logs
LOSS_PARTS = {"loss_objectness": "rpn_objectness", "loss_rpn_box_reg": "rpn_box",
              "loss_classifier": "class", "loss_box_reg": "box", "loss_mask": "mask"}


@dataclass(frozen=True)
class MaskRCNNConfig(ModelConfig):
    """A small Mask R-CNN; the shared fields (classes, input size, recipe) come from
    :class:`~yolact_edu.config.ModelConfig`, the defaults of the rest match ``yolact_tiny``."""

    family: ClassVar[str] = "maskrcnn"

    backbone: str = "resnet18"
    backbone_width: int = 32
    selected_layers: tuple[int, ...] = (1, 2, 3)       # C3, C4, C5 into the FPN
    fpn_features: int = 64
    fpn_num_downsample: int = 1                        # P6 from a strided conv: levels P3..P6
    anchor_sizes: tuple[float, ...] = (24, 48, 96, 192)    # pixels at max_size, one per level
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    # Proposals and sampled RoIs: far fewer than torchvision's COCO settings (2000 / 512), since a
    # shapes image holds about 5 objects; on a CPU the RoIAlign backward (single-threaded) and the
    # RPN's NMS dominate a step: 64 RoIs and 600 pre-NMS proposals make a step 1.4x faster than
    # 128 and 1000 (profiled, docs/benchmarks.md).
    rpn_pre_nms_top_n_train: int = 600                 # per FPN level
    rpn_post_nms_top_n_train: int = 300
    rpn_pre_nms_top_n_test: int = 500
    rpn_post_nms_top_n_test: int = 300
    box_batch_size_per_image: int = 64                 # RoIs sampled per image for the box loss (1/4 positive)
    box_head_channels: int = 256                       # the 2 FC layers
    mask_head_channels: int = 64                       # the 4 convs of the mask head
    nms_conf_thresh: float = 0.05                      # torchvision's box_score_thresh
    nms_iou_thresh: float = 0.5                        # torchvision's box_nms_thresh

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_integers(("backbone_width", 1), ("fpn_features", 1), ("box_head_channels", 1),
                               ("mask_head_channels", 1), ("box_batch_size_per_image", 1),
                               ("rpn_pre_nms_top_n_train", 1), ("rpn_post_nms_top_n_train", 1),
                               ("rpn_pre_nms_top_n_test", 1), ("rpn_post_nms_top_n_test", 1))
        self._require_fractions("nms_conf_thresh", "nms_iou_thresh")
        levels = len(self.selected_layers) + self.fpn_num_downsample
        if len(self.anchor_sizes) != levels:
            raise ValueError(f"config {self.name!r}: anchor_sizes needs one size per FPN level ({levels}), "
                             f"got {len(self.anchor_sizes)}")
        if self.max_size % 32:
            raise ValueError(f"config {self.name!r}: max_size must be a multiple of 32 (torchvision pads "
                             f"to one, which would shift the boxes), got {self.max_size}")

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map cell and level (one size, each aspect ratio)."""
        return len(self.aspect_ratios)


class ResNetFPN(nn.Module):
    """ResNet + FPN as torchvision's detectors want a backbone: x [B,3,S,S] -> OrderedDict
    "0".."3" of [B,F,S/8..S/64] (P3..P6), with ``out_channels`` = F."""

    def __init__(self, cfg: MaskRCNNConfig):
        super().__init__()
        self.body = ResNetBackbone(cfg.backbone, width=cfg.backbone_width)
        self.fpn = FPN([self.body.channels[i] for i in cfg.selected_layers], cfg.fpn_features,
                       cfg.fpn_num_downsample)
        self.selected_layers = cfg.selected_layers
        self.out_channels = cfg.fpn_features

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        pyramid = self.fpn([features[i] for i in self.selected_layers])
        return OrderedDict((str(level), p) for level, p in enumerate(pyramid))


class MaskRCNNTiny(InstanceSegmenter, MaskRCNN):
    """torchvision's :class:`MaskRCNN` for a :class:`MaskRCNNConfig`, with the package's faces.

    forward(x, targets) in training mode -> dict of torchvision's loss tensors;
    forward(x) in eval mode -> raw dict of lists, one entry per image: "boxes" [N,4] xyxy in
    input pixels (0..S), "scores" [N] in [0,1], "labels" [N] 1-based (0 = background),
    "mask_probs" [N,28,28] in [0,1] (the predicted class's mask, not yet pasted).
    """

    forward_takes_targets = True

    def __init__(self, cfg: MaskRCNNConfig | str = "maskrcnn_tiny"):
        cfg = maskrcnn_config(cfg) if isinstance(cfg, str) else cfg
        backbone = ResNetFPN(cfg)
        levels = [str(i) for i in range(len(cfg.anchor_sizes))]
        channels, classes = cfg.fpn_features, cfg.num_classes + 1
        anchors = AnchorGenerator(tuple((s,) for s in cfg.anchor_sizes), (cfg.aspect_ratios,) * len(levels))
        super().__init__(
            backbone, min_size=cfg.max_size, max_size=cfg.max_size,
            image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],   # preprocess already normalised
            rpn_anchor_generator=anchors, rpn_head=RPNHead(channels, len(cfg.aspect_ratios)),
            rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
            rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
            rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
            box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2),
            box_head=TwoMLPHead(channels * 7 * 7, cfg.box_head_channels),
            box_predictor=FastRCNNPredictor(cfg.box_head_channels, classes),
            box_score_thresh=cfg.nms_conf_thresh, box_nms_thresh=cfg.nms_iou_thresh,
            box_detections_per_img=cfg.max_detections, box_batch_size_per_image=cfg.box_batch_size_per_image,
            mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
            mask_head=MaskRCNNHeads(channels, (cfg.mask_head_channels,) * 4, 1),
            mask_predictor=MaskRCNNPredictor(cfg.mask_head_channels, cfg.mask_head_channels, classes))
        self.cfg = cfg

    # -- training -------------------------------------------------------------------------
    def torchvision_targets(self, targets: list[dict], input_size: tuple[int, int]) -> list[dict]:
        """The package's targets ("boxes" [n,4] relative xyxy, "labels" [n] 0-based, "masks"
        [n,S,S] {0,1}, "iscrowd" [n]) -> torchvision's (boxes in input pixels, labels 1-based,
        masks uint8), without crowd regions and boxes under a pixel (torchvision refuses those)."""
        height, width = input_size
        out = []
        for t in targets:
            boxes = t["boxes"] * t["boxes"].new_tensor([width, height, width, height])
            keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
            if "iscrowd" in t:
                keep &= ~t["iscrowd"].bool()
            out.append({"boxes": boxes[keep], "labels": t["labels"][keep] + 1,
                        "masks": t["masks"][keep].to(torch.uint8)})
        return out

    def criterion(self):
        """``(raw, targets) -> dict of scalar parts``: torchvision computes the losses inside the
        training forward (its proposals are sampled against the targets), so this only names them:
        rpn_objectness, rpn_box, class, box, mask."""
        return lambda raw, targets: {LOSS_PARTS.get(name, name): value for name, value in raw.items()}

    # -- network --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, targets: list[dict] | None = None) -> dict:
        """x [B,3,S,S] from :meth:`preprocess`; targets (training mode only) as the dataset gives them."""
        if self.training:
            if targets is None:
                raise ValueError("Mask R-CNN's training forward needs the targets: its proposals are "
                                 "sampled against the ground truth")
            return super().forward(list(x), self.torchvision_targets(targets, tuple(x.shape[-2:])))
        images, _ = self.transform(list(x))
        features = self.backbone(images.tensors)
        proposals, _ = self.rpn(images, features)
        found, _ = self.roi_heads(features, proposals, images.image_sizes)
        return {"boxes": [f["boxes"] for f in found], "scores": [f["scores"] for f in found],
                "labels": [f["labels"] for f in found], "mask_probs": [f["masks"][:, 0] for f in found]}

    # -- inference ------------------------------------------------------------------------
    nms_kinds = ("standard",)
    iou_refusal = ("torchvision's RoI heads run its NMS inside the forward pass, before detect sees the boxes "
                   "(nms_iou_thresh in its config sets the IoU)")
    crop_refusals = {False: "its masks are predicted inside each box (RoIAlign): nothing outside the box exists "
                            "to keep"}

    def detections(self, raw: dict, image_sizes, options: DetectOptions, timings: dict | None = None
                   ) -> list[Detections]:
        """Raw outputs -> one :class:`Detections` per image: boxes scaled from the S x S input to
        the image (the input is a stretch of it), each 28x28 mask pasted into its box at image
        size and thresholded. Detections keep torchvision's order (by score; at most
        ``cfg.max_detections``, torchvision's cap in the forward); ``score_threshold`` and
        ``top_k`` drop the rest before any mask is pasted."""
        image_sizes = per_image_sizes(image_sizes, len(raw["boxes"]))
        size = self.cfg.max_size
        results = []
        for boxes, scores, labels, probs, (height, width) in zip(
                raw["boxes"], raw["scores"], raw["labels"], raw["mask_probs"], image_sizes):
            keep = torch.nonzero(scores >= options.score_threshold).flatten()[:options.top_k]
            # pasted a few at a time, as every family's masks (relatives/instance_masks.py)
            with stage_timer(timings, "upsample + threshold", boxes.device):
                results.append(detections_from_roi_masks(boxes[keep], scores[keep], labels[keep] - 1, probs[keep],
                                                         size, (height, width), self.cfg.class_names,
                                                         options.mask_threshold))
        return results

    def forced_output_count(self, count: int):
        """torchvision's RoI heads keep ``count`` detections, score threshold 0 (:func:`fixed_output_count`)."""
        return fixed_output_count(self, count)

    def backbone_parameters(self):
        """The ResNet body only: the FPN is the neck, trained with the heads."""
        return self.backbone.body.parameters()

    def backbone_modules(self):
        return [self.backbone.body]


@contextlib.contextmanager
def fixed_output_count(model: MaskRCNN, count: int):
    """Make any torchvision Mask R-CNN return ``count`` detections (score threshold 0) inside the
    ``with`` block, so its mask branch runs for exactly that many; the settings are restored after.
    (It changes the RoI heads in place: meant for timings, not for a model another thread is using.)"""
    heads = model.roi_heads
    saved = heads.score_thresh, heads.detections_per_img
    heads.score_thresh, heads.detections_per_img = 0.0, int(count)
    try:
        yield
    finally:
        heads.score_thresh, heads.detections_per_img = saved


MASKRCNN_CONFIGS: dict[str, MaskRCNNConfig] = {
    # The teaching YOLACT's backbone, FPN width, input and recipe (AdamW, cosine; no ImageNet
    # weights can be fetched, so everything trains from scratch).
    "maskrcnn_tiny": MaskRCNNConfig(
        name="maskrcnn_tiny", max_size=256, optimizer="adamw", lr=1e-3, lr_warmup_init=1e-4,
        lr_warmup_until=200, lr_schedule="cosine", lr_gamma=0.02, lr_steps=(), max_iter=3000,
        augmentation="light"),
}


def maskrcnn_config(name: str) -> MaskRCNNConfig:
    if name not in MASKRCNN_CONFIGS:
        raise KeyError(f"unknown Mask R-CNN config {name!r}; choose one of {', '.join(MASKRCNN_CONFIGS)}")
    return MASKRCNN_CONFIGS[name]


__all__ = ["MaskRCNNConfig", "MaskRCNNTiny", "fixed_output_count", "ResNetFPN", "MASKRCNN_CONFIGS", "maskrcnn_config",
           "LOSS_PARTS"]
