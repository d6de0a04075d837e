"""``centermask_tiny``: CenterMask (Lee & Park, 2020) -- FCOS boxes, then a Mask R-CNN-style mask
head per box, guided by a spatial attention map.

A two-stage mask on a one-stage, anchor-free detector: FCOS (:mod:`.fcos`) gives the boxes; each
box is RoIAligned from the pyramid level its size calls for, and the spatial-attention-guided
mask head (SAG-Mask) turns the 14 x 14 patch into a 28 x 28 mask.

Per instance (n boxes, F = ``fpn_features``, P = ``roi_size``, R = 2P)::

    level k = ceil(5 - log2(input area / box area)), clamped to P3..P5  (CenterMask's eq. 1:
              small boxes read fine levels; unlike Mask R-CNN's rule it scales with the input)
    patch       RoIAlign(P_k, box)                 [n,F,P,P]
    features    ``mask_head_convs`` x (3x3 conv + ReLU)   [n,W,P,P]
    attention   sigmoid(3x3 conv([mean_c, max_c]))  [n,1,P,P]   the spatial attention module
    features * attention -> 2x2 deconv stride 2 + ReLU -> 1x1 conv -> [n,C,R,R]; the box's class
    channel -> sigmoid -> pasted into the box

Training: the mask head learns on the detector's own boxes at the positive locations (detached;
the ground-truth box where the prediction overlaps it by less than IoU 0.5, early in training),
against the ground truth inside that box; BCE on the ground-truth class's channel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from ..ops.boxes import jaccard
from .fcos import TINY_RECIPE, FCOSConfig, FCOSSegmenter, ltrb_to_boxes
from .instance_masks import roi_mask_targets


def spatial_attention(roi_features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """CenterMask's SAM: roi_features [n,C,P,P] -> sigmoid(conv3x3([mean_c, max_c])) [n,1,P,P]
    in (0,1). weight [1,2,3,3], bias [1]."""
    pooled = torch.cat([roi_features.mean(dim=1, keepdim=True), roi_features.amax(dim=1, keepdim=True)], 1)
    return torch.sigmoid(F.conv2d(pooled, weight, bias, padding=1))


def roi_levels(boxes: torch.Tensor, input_size: int, num_levels: int, finest: int = 3) -> torch.Tensor:
    """boxes [n,4] xyxy px -> [n] level index 0..num_levels-1 (P``finest`` ...) by CenterMask's
    rule k = ceil(k_max - log2(input area / box area))."""
    coarsest = finest + num_levels - 1
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1.0)
    k = torch.ceil(coarsest - torch.log2(float(input_size) ** 2 / area))
    return (k.clamp(finest, coarsest) - finest).long()


@dataclass(frozen=True)
class CenterMaskConfig(FCOSConfig):
    family: ClassVar[str] = "centermask"

    roi_size: int = 14                 # P
    mask_head_convs: int = 2           # CenterMask has 4; 2 keep a CPU step short
    mask_head_channels: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_integers(("roi_size", 1), ("mask_head_convs", 0), ("mask_head_channels", 1))


class SAGMaskHead(nn.Module):
    """RoI patches [n,F,P,P] -> {"attention": [n,1,P,P] in (0,1), "logits": [n,C,2P,2P]}."""

    def __init__(self, in_channels: int, channels: int, convs: int, num_classes: int):
        super().__init__()
        layers = []
        for i in range(convs):
            layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.attention = nn.Conv2d(2, 1, 3, padding=1)
        self.deconv = nn.ConvTranspose2d(channels if convs else in_channels, channels, 2, stride=2)
        self.predictor = nn.Conv2d(channels, num_classes, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.convs(patches)
        attention = spatial_attention(features, self.attention.weight, self.attention.bias)
        return {"attention": attention, "logits": self.predictor(F.relu(self.deconv(features * attention)))}


class CenterMaskTiny(FCOSSegmenter):
    """forward(x [B,3,S,S]) -> raw dict: FCOS's outputs and the pyramid "p3".."p5" (the mask head
    reads the boxes' patches from them after detection)."""

    def __init__(self, cfg: CenterMaskConfig | str = "centermask_tiny"):
        cfg = CENTERMASK_CONFIGS[cfg] if isinstance(cfg, str) else cfg
        super().__init__(cfg)
        self.mask_head = SAGMaskHead(cfg.fpn_features, cfg.mask_head_channels, cfg.mask_head_convs, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pyramid = self.pyramid(x)
        return {**self.fcos(pyramid), **{f"p{3 + i}": p for i, p in enumerate(pyramid)}}

    def roi_patches(self, raw: dict, image: torch.Tensor, boxes: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """RoIAlign of each box [n,4] (input px) of images ``image`` [n] from its level ``levels`` [n]
        (:func:`roi_levels`) -> [n,F,P,P]."""
        cfg = self.cfg
        patches = boxes.new_zeros((len(boxes), cfg.fpn_features, cfg.roi_size, cfg.roi_size))
        rois = torch.cat([image[:, None].to(boxes.dtype), boxes], 1)
        for level, stride in enumerate(cfg.strides):
            where = torch.nonzero(levels == level).flatten()
            if len(where):
                # one dtype for features and boxes (bf16/fp16 features under autocast, float32 boxes)
                patches[where] = roi_align(raw[f"p{3 + level}"].to(rois.dtype), rois[where], cfg.roi_size,
                                           spatial_scale=1.0 / stride, sampling_ratio=2, aligned=True)
        return patches

    def instance_masks(self, raw: dict, image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor
                       ) -> dict[str, torch.Tensor]:
        """"levels" [n], "attention" [n,1,P,P] and "logits" [n,R,R] (the label's channel) of each box."""
        levels = roi_levels(boxes, self.cfg.max_size, len(self.cfg.strides))
        out = self.mask_head(self.roi_patches(raw, image, boxes, levels))
        logits = out["logits"][torch.arange(len(labels), device=labels.device), labels]
        return {"levels": levels, "attention": out["attention"], "logits": logits}

    def instance_mask_probs(self, raw: dict, image: int, found: dict[str, torch.Tensor]) -> torch.Tensor:
        """The SAG-Mask masks of one image's detections (their class's channel), [n,R,R] in their boxes."""
        location = found["location"]
        return torch.sigmoid(self.instance_masks(raw, torch.full_like(location, image), found["boxes"],
                                                 found["labels"])["logits"])

    def criterion(self):
        """``(raw, targets) -> dict``: class, box, centerness (FCOS) and mask (BCE in the box)."""
        def loss(raw: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
            parts, assignment = self.fcos_loss(raw, targets)
            chosen = assignment.sample(self.cfg.mask_train_instances)
            if len(chosen.image) == 0:
                parts["mask"] = sum(p.sum() * 0 for p in self.mask_head.parameters())
                return parts
            points, _ = self.locations(chosen.boxes.device)
            where = points[chosen.location]
            predicted = ltrb_to_boxes(where, raw["ltrb"][chosen.image, chosen.location]).detach()
            predicted = predicted.clamp(0, self.cfg.max_size)
            overlap = jaccard(predicted, chosen.boxes).diagonal()
            boxes = torch.where((overlap >= 0.5)[:, None], predicted, chosen.boxes)
            logits = self.instance_masks(raw, chosen.image, boxes, chosen.truth(targets, "labels"))["logits"]
            truth = roi_mask_targets(chosen.truth(targets, "masks"), boxes, logits.shape[-1])
            parts["mask"] = F.binary_cross_entropy_with_logits(logits, truth)
            return parts
        return loss


CENTERMASK_CONFIGS: dict[str, CenterMaskConfig] = {
    "centermask_tiny": CenterMaskConfig(name="centermask_tiny", **TINY_RECIPE),
}

__all__ = ["CenterMaskConfig", "CenterMaskTiny", "CENTERMASK_CONFIGS", "SAGMaskHead", "spatial_attention",
           "roi_levels"]
