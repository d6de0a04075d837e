"""Feature Pyramid Network with the original YOLACT's details (reference §1.3).

* lateral 1x1 convs are stored for the inputs in *reverse* order (lat_layers.0 on C5);
* top-down: bilinear upsampling of the merged map, then add the lateral;
* each merged map gets a 3x3 "pred" conv followed by ReLU (P3..P5);
* P6 = strided 3x3 conv of the ReLU'd P5, P7 = strided 3x3 conv of P6, no ReLU on either.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FPN(nn.Module):
    """Inputs: backbone maps [C3, C4, C5] (NCHW). Output: [P3, P4, P5, P6, P7], each
    [B, features, H_l, W_l]; at 550 the sizes are 69, 35, 18, 9, 5."""

    def __init__(self, in_channels: list[int], features: int = 256, num_downsample: int = 2):
        super().__init__()
        self.lat_layers = nn.ModuleList(
            [nn.Conv2d(c, features, kernel_size=1) for c in reversed(in_channels)])
        self.pred_layers = nn.ModuleList(
            [nn.Conv2d(features, features, kernel_size=3, padding=1) for _ in in_channels])
        self.downsample_layers = nn.ModuleList(
            [nn.Conv2d(features, features, kernel_size=3, padding=1, stride=2)
             for _ in range(num_downsample)])

    def forward(self, convouts: list[torch.Tensor]) -> list[torch.Tensor]:
        num_inputs = len(convouts)
        merged: list[torch.Tensor] = [None] * num_inputs  # type: ignore[list-item]
        x = None
        for lat_layer, j in zip(self.lat_layers, reversed(range(num_inputs))):
            lateral = lat_layer(convouts[j])
            if x is None:
                x = lateral
            else:
                x = F.interpolate(x, size=lateral.shape[-2:], mode="bilinear",
                                  align_corners=False) + lateral
            merged[j] = x
        outs = [None] * num_inputs
        for pred_layer, j in zip(self.pred_layers, reversed(range(num_inputs))):
            outs[j] = F.relu(pred_layer(merged[j]))
        for downsample in self.downsample_layers:
            outs.append(downsample(outs[-1]))
        return outs
