"""Protonet, paper §3.1 and fig. 3: an FCN on P3 that outputs k prototype masks.

Layout (indices are checkpoint names): 0 conv3x3, 1 ReLU, 2 conv3x3, 3 ReLU,
4 conv3x3, 5 ReLU, 6 bilinear x2, 7 ReLU, 8 conv3x3, 9 ReLU, 10 conv1x1 -> k.
The final ReLU is the prototype activation: prototypes are >= 0 and unbounded,
so the coefficients (tanh, signed) decide whether a prototype adds or removes.
"""
from __future__ import annotations

import torch
from torch import nn


class ProtoNet(nn.Sequential):
    """[B, in_channels, H, W] (P3) -> prototypes [B, num_protos, 2H, 2W], >= 0."""

    def __init__(self, in_channels: int = 256, channels: int = 256, num_protos: int = 32):
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1),
                       nn.ReLU(inplace=True)]
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                   nn.ReLU(inplace=True),
                   nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                   nn.Conv2d(channels, num_protos, 1)]
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))
