"""The shared, image-wide mask features of the single-shot relatives, built from the pyramid.

CondInst's mask branch (C = 8 channels at 1/8), BlendMask's bottom module (K bases at 1/4) and
SOLOv2's unified mask features (E channels at 1/4) are one construction (YOLACT's protonet is
its cousin on P3 alone)::

    P3, P4, P5 [B,F,S/8..S/32] -> a 3x3 conv each, upsampled to P3's size, summed  [B,W,S/8,S/8]
      (+ 2 coordinate channels x, y in [-1, 1] when ``coordinates``: SOLOv2's CoordConv)
      -> ``convs`` x (3x3 conv + GN + ReLU)
      -> (x2 bilinear upsampling + 3x3 conv + GN + ReLU when ``upsample``)      [B,W,S/4,S/4]
      -> 1x1 conv -> [B,out,S/8 or S/4, ...]    (no activation: bases and features may be negative)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fcos import conv_gn_relu


def coordinate_channels(batch: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """[B,2,H,W]: x then y of each pixel centre, linearly from -1 (left/top) to 1."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height, device=like.device, dtype=like.dtype),
                            torch.linspace(-1, 1, width, device=like.device, dtype=like.dtype), indexing="ij")
    return torch.stack([xs, ys])[None].expand(batch, -1, -1, -1)


class MaskBranch(nn.Module):
    """pyramid (list of [B,F,H_l,W_l], finest first) -> [B,out_channels,H_0 (x2),W_0 (x2)]."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, levels: int = 3, convs: int = 2,
                 upsample: bool = False, coordinates: bool = False):
        super().__init__()
        self.refine = nn.ModuleList([conv_gn_relu(in_channels, channels) for _ in range(levels)])
        self.coordinates = coordinates
        first = channels + (2 if coordinates else 0)
        self.tower = nn.Sequential(*[conv_gn_relu(first if i == 0 else channels, channels) for i in range(convs)])
        self.up = conv_gn_relu(channels, channels) if upsample else None
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        size = pyramid[0].shape[-2:]
        x = 0
        for refine, feature in zip(self.refine, pyramid):
            y = refine(feature)
            x = x + (y if y.shape[-2:] == size else F.interpolate(y, size, mode="bilinear", align_corners=False))
        if self.coordinates:
            x = torch.cat([x, coordinate_channels(x.shape[0], *size, x)], 1)
        x = self.tower(x)
        if self.up is not None:
            x = self.up(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.out(x)


__all__ = ["MaskBranch", "coordinate_channels"]
