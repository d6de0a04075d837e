"""YOLACT++ fast mask re-scoring network (YOLACT++ paper §3.2).

A tiny CNN looks at each cropped soft mask and predicts its IoU with the
ground truth for every class; the detection's mask score becomes
``class score * predicted IoU`` for its class.
"""
from __future__ import annotations

import torch
from torch import nn


class MaskIoUNet(nn.Module):
    """Soft masks [n, 1, Hp, Wp] -> predicted mask IoU per class [n, num_classes] (>= 0).

    Five 3x3 stride-2 unpadded convs (1->8->16->32->64->128), a 1x1 conv to the
    classes, ReLU after every conv (including the last), then global max pooling.
    """

    def __init__(self, num_classes: int = 80):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for out_channels in (8, 16, 32, 64, 128):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2), nn.ReLU(inplace=True)]
            in_channels = out_channels
        layers += [nn.Conv2d(in_channels, num_classes, 1), nn.ReLU(inplace=True)]
        self.maskiou_net = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        x = self.maskiou_net(masks)
        return x.amax(dim=(2, 3))
