"""Mask assembly, paper §3.2 eq. 1:  M = sigmoid(P C^T), then crop, upsample, threshold.

Each step is its own function so notebooks and widgets can show the stages one
by one; :func:`assemble_masks` chains them as inference does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .boxes import crop


def linear_combination(proto: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
    """Prototypes [Hp,Wp,k] (>= 0) times coefficients [n,k] (in [-1,1]) -> logits [Hp,Wp,n]."""
    return proto @ coefs.t()


def upsample_masks(masks: torch.Tensor, height: int, width: int,
                   mode: str = "bilinear") -> torch.Tensor:
    """Soft masks [n,Hp,Wp] -> [n,height,width] by interpolation (align_corners=False)."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, height, width))
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(masks[None], (height, width), mode=mode, **kwargs)[0]


def assemble_masks(proto: torch.Tensor, coefs: torch.Tensor, boxes: torch.Tensor,
                   crop_masks: bool = True) -> torch.Tensor:
    """Soft instance masks at prototype resolution.

    proto [Hp,Wp,k]; coefs [n,k]; boxes [n,4] relative point form (used for the
    crop, padded by 1 proto pixel). Returns [n,Hp,Wp] in [0,1], zero outside the
    box when ``crop_masks``. Cropping happens before upsampling, as the original.
    """
    masks = torch.sigmoid(linear_combination(proto, coefs))
    if crop_masks:
        masks = crop(masks, boxes)
    return masks.permute(2, 0, 1).contiguous()


def masks_to_image(masks: torch.Tensor, height: int, width: int, threshold: float = 0.5,
                   mode: str = "bilinear") -> torch.Tensor:
    """Soft masks [n,Hp,Wp] -> bool masks [n,height,width]: upsample, then ``> threshold``."""
    return upsample_masks(masks, height, width, mode) > threshold
