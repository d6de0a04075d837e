"""``blendmask_tiny``: BlendMask (Chen et al., 2020) -- a few image-wide bases, blended inside each
box by attention maps the detector predicts per instance.

Between YOLACT (k prototypes, one coefficient each per instance) and Mask R-CNN (a whole mask
per RoI): BlendMask's instance gets not K numbers but K small maps, so every pixel of its RoI
picks its own mix of the bases.

Assembly for n instances of one image (K = ``num_bases``, M = ``attention_size``, R =
``blend_resolution``)::

    bases      [K,S/4,S/4]    bottom module on P3..P5 (shared by the image's instances)
    attention  [n,K,M,M]      FCOS's box tower at each instance's location (K*M*M channels)
    crops = RoIAlign(bases, box_i)                        [n,K,R,R]
    weights = softmax over K of upsample(attention, R)     [n,K,R,R]
    mask logits = sum over K of crops * weights            [n,R,R] -> sigmoid -> pasted into box_i

Loss: FCOS's three parts plus the per-pixel BCE of the blended masks against the ground truth
inside the ground-truth box, for at most ``mask_train_instances`` positive locations per image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from .fcos import TINY_RECIPE, FCOSConfig, FCOSSegmenter
from .instance_masks import roi_mask_targets
from .mask_branch import MaskBranch


def blend_weights(attention: torch.Tensor, resolution) -> torch.Tensor:
    """attention [n,K,M,M] logits -> per-pixel weights [n,K,R,R] (R x R = ``resolution``): bilinear
    upsampling, then the softmax over the K bases, so the weights of each pixel sum to 1."""
    return F.interpolate(attention, resolution, mode="bilinear", align_corners=False).softmax(dim=1)


def blend(crops: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """BlendMask's blender: crops [n,K,R,R] (RoIAligned bases), attention [n,K,M,M] logits ->
    mask logits [n,R,R]: per pixel, the softmax-over-K-weighted sum of the base crops (eq. 2-4)."""
    return (crops * blend_weights(attention, crops.shape[-2:])).sum(dim=1)


@dataclass(frozen=True)
class BlendMaskConfig(FCOSConfig):
    family: ClassVar[str] = "blendmask"

    num_bases: int = 4                 # K (BlendMask's default for real-time models)
    attention_size: int = 7            # M: BlendMask uses 14 with R = 56 at 800 px
    blend_resolution: int = 28         # R
    basis_channels: int = 64
    mask_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_integers(("num_bases", 1), ("attention_size", 1), ("blend_resolution", 1),
                               ("basis_channels", 1))


class BlendMaskTiny(FCOSSegmenter):
    """forward(x [B,3,S,S]) -> raw dict: FCOS's outputs, "attention" [B,L,K*M*M] and
    "bases" [B,K,S/4,S/4]."""

    def __init__(self, cfg: BlendMaskConfig | str = "blendmask_tiny"):
        cfg = BLENDMASK_CONFIGS[cfg] if isinstance(cfg, str) else cfg
        super().__init__(cfg, extra={"attention": cfg.num_bases * cfg.attention_size ** 2})
        self.bottom = MaskBranch(cfg.fpn_features, cfg.basis_channels, cfg.num_bases, levels=len(cfg.strides),
                                 upsample=True)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pyramid = self.pyramid(x)
        return {**self.fcos(pyramid), "bases": self.bottom(pyramid)}

    def instance_mask_logits(self, raw: dict, image: torch.Tensor, location: torch.Tensor,
                             boxes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Assembly for instances at ``location`` [n] of images ``image`` [n] in ``boxes`` [n,4]
        (input px): "crops" [n,K,R,R], "attention" [n,K,M,M], "logits" [n,R,R]."""
        cfg = self.cfg
        bases = raw["bases"]
        rois = torch.cat([image[:, None].to(boxes.dtype), boxes], 1)
        # RoIAlign needs features and boxes of one dtype: under autocast the bases come as bf16/fp16
        # while the boxes stay float32 (rounding a box to bf16 would move it by up to a pixel).
        crops = roi_align(bases.to(rois.dtype), rois, cfg.blend_resolution,
                          spatial_scale=bases.shape[-1] / cfg.max_size, sampling_ratio=2, aligned=True)
        attention = raw["attention"][image, location].reshape(-1, cfg.num_bases, cfg.attention_size,
                                                              cfg.attention_size)
        return {"crops": crops, "attention": attention, "logits": blend(crops, attention)}

    def instance_mask_probs(self, raw: dict, image: int, found: dict[str, torch.Tensor]) -> torch.Tensor:
        """The blended masks of one image's detections, [n,R,R] inside their boxes."""
        location = found["location"]
        return torch.sigmoid(self.instance_mask_logits(raw, torch.full_like(location, image), location,
                                                       found["boxes"])["logits"])

    def criterion(self):
        """``(raw, targets) -> dict``: class, box, centerness (FCOS) and mask (BCE in the box)."""
        def loss(raw: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
            parts, assignment = self.fcos_loss(raw, targets)
            chosen = assignment.sample(self.cfg.mask_train_instances)
            if len(chosen.image) == 0:
                parts["mask"] = raw["attention"].sum() * 0 + raw["bases"].sum() * 0
                return parts
            logits = self.instance_mask_logits(raw, chosen.image, chosen.location, chosen.boxes)["logits"]
            truth = roi_mask_targets(chosen.truth(targets, "masks"), chosen.boxes, self.cfg.blend_resolution)
            parts["mask"] = self.cfg.mask_loss_weight * F.binary_cross_entropy_with_logits(logits, truth)
            return parts
        return loss


BLENDMASK_CONFIGS: dict[str, BlendMaskConfig] = {
    "blendmask_tiny": BlendMaskConfig(name="blendmask_tiny", **TINY_RECIPE),
}

__all__ = ["BlendMaskConfig", "BlendMaskTiny", "BLENDMASK_CONFIGS", "blend", "blend_weights"]
