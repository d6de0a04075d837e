"""The prediction head shared by all FPN levels, paper §3.1 and fig. 4.

For every anchor it predicts 4 box regressions, C+1 class logits and k mask
coefficients. Only one set of weights exists (``prediction_layers.0`` in the
checkpoints); it is applied to P3..P7 in turn.
"""
from __future__ import annotations

import torch
from torch import nn


class PredictionHead(nn.Module):
    """Feature map [B, in_channels, H, W] ->
    loc [B, H*W*A, 4], conf [B, H*W*A, C+1] (logits), coef [B, H*W*A, k] in [-1, 1].

    Row order is cell-major (rows, then columns), then anchor: prior index
    ``(y*W + x)*A + a``, matching :mod:`yolact_edu.ops.anchors`.
    """

    def __init__(self, in_channels: int, num_classes: int, num_anchors: int,
                 num_protos: int = 32, channels: int = 256):
        super().__init__()
        self.num_classes = num_classes + 1          # + background, column 0
        self.num_protos = num_protos
        self.upfeature = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1),
                                       nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(channels, num_anchors * self.num_classes, 3, padding=1)
        self.mask_layer = nn.Conv2d(channels, num_anchors * num_protos, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = x.shape[0]
        x = self.upfeature(x)

        def flat(t: torch.Tensor, width: int) -> torch.Tensor:
            return t.permute(0, 2, 3, 1).reshape(batch, -1, width)

        loc = flat(self.bbox_layer(x), 4)
        conf = flat(self.conf_layer(x), self.num_classes)
        coef = torch.tanh(flat(self.mask_layer(x), self.num_protos))
        return loc, conf, coef
