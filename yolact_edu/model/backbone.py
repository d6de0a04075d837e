"""Backbones: ResNet-18/50/101 from torchvision blocks, DarkNet-53, and the
YOLACT++ deformable convolution (DCNv2) through ``torchvision.ops.deform_conv2d``.

Child names match the original checkpoints: ``conv1``, ``bn1``, ``layers.{0..3}``
for ResNet; ``_preconv``, ``layers.{0..4}`` for DarkNet.  ``forward`` returns
every stage output; the model picks ``cfg.selected_layers`` from them.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import deform_conv2d


class ModulatedDeformConv(nn.Module):
    """DCNv2 3x3 convolution with the original's parameter names.

    ``conv_offset_mask`` predicts 27 channels per output pixel: 18 offsets
    (channel 2t = dy, 2t+1 = dx of kernel tap t = i*3 + j) and 9 modulation
    logits. It is zero-initialised, so a fresh DCN starts as a plain conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 padding: int = 1, dilation: int = 1):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.conv_offset_mask = nn.Conv2d(in_channels, 27, 3, stride=stride, padding=padding,
                                          dilation=dilation, bias=True)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_y_x_mask = self.conv_offset_mask(x)
        offset = offset_y_x_mask[:, :18]             # cat(o1, o2) of the original = first 18 channels
        mask = torch.sigmoid(offset_y_x_mask[:, 18:])
        return deform_conv2d(x, offset, self.weight, self.bias, stride=self.stride,
                             padding=self.padding, dilation=self.dilation, mask=mask)


def dcn_blocks(num_blocks: int, dcn_layers: int, dcn_interval: int) -> list[bool]:
    """Which blocks of a stage use DCN (the original's ``_make_layer`` rule):
    block 0 iff ``dcn_layers >= num_blocks``; block i >= 1 iff
    ``i + dcn_layers >= num_blocks`` and ``i % dcn_interval == 0``."""
    return [dcn_layers >= num_blocks if i == 0
            else (i + dcn_layers >= num_blocks and i % dcn_interval == 0)
            for i in range(num_blocks)]


RESNET_DEPTHS = {"resnet18": (BasicBlock, (2, 2, 2, 2)),
                 "resnet50": (Bottleneck, (3, 4, 6, 3)),
                 "resnet101": (Bottleneck, (3, 4, 23, 3))}


class ResNetBackbone(nn.Module):
    """ResNet v1.5 (stride on the 3x3 conv) returning the outputs of the 4 stages
    (C2..C5, strides 4/8/16/32; channels 256/512/1024/2048, or 64..512 for ResNet-18)."""

    def __init__(self, name: str = "resnet101", dcn_layers=(0, 0, 0, 0), dcn_interval: int = 1,
                 width: int = 64):
        super().__init__()
        block, depths = RESNET_DEPTHS[name]
        # width: channels of the stem and the first stage (64 in every torchvision ResNet);
        # later stages double it. Narrower teaching models cost about (width/64)^2 the FLOPs.
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        in_planes = width
        for stage, blocks in enumerate(depths):
            planes = width * 2 ** stage
            stride = 1 if stage == 0 else 2
            out_planes = planes * block.expansion
            modules = []
            for i, use_dcn in enumerate(dcn_blocks(blocks, dcn_layers[stage], dcn_interval)):
                downsample = None
                if i == 0 and (stride != 1 or in_planes != out_planes):
                    downsample = nn.Sequential(
                        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(out_planes))
                unit = block(in_planes, planes, stride if i == 0 else 1, downsample)
                if use_dcn:
                    unit.conv2 = ModulatedDeformConv(planes, planes, stride if i == 0 else 1)
                modules.append(unit)
                in_planes = out_planes
            self.layers.append(nn.Sequential(*modules))
            self.channels.append(out_planes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


def _darknet_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                  padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1, inplace=True))


class DarkNetBlock(nn.Module):
    """Residual unit: 1x1 conv to half the channels, 3x3 conv back, add the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _darknet_conv(channels, channels // 2, 1)
        self.conv2 = _darknet_conv(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class DarkNetBackbone(nn.Module):
    """DarkNet-53: a stride-1 stem, then 5 stages (stride-2 conv + residual units);
    outputs at strides 2..32 with 64/128/256/512/1024 channels."""

    def __init__(self, depths=(1, 2, 8, 8, 4)):
        super().__init__()
        self._preconv = _darknet_conv(3, 32, 3)
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        in_channels = 32
        for stage, blocks in enumerate(depths):
            channels = 64 * 2 ** stage
            self.layers.append(nn.Sequential(_darknet_conv(in_channels, channels, 3, stride=2),
                                             *[DarkNetBlock(channels) for _ in range(blocks)]))
            self.channels.append(channels)
            in_channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self._preconv(x)
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


def build_backbone(cfg) -> nn.Module:
    """The backbone named by ``cfg.backbone`` (with DCN where ``cfg.dcn_layers`` asks)."""
    if cfg.backbone == "darknet53":
        return DarkNetBackbone()
    if cfg.backbone not in RESNET_DEPTHS:
        raise ValueError(f"unknown backbone {cfg.backbone!r}; choose one of "
                         f"{', '.join([*RESNET_DEPTHS, 'darknet53'])}")
    return ResNetBackbone(cfg.backbone, cfg.dcn_layers, cfg.dcn_interval, cfg.backbone_width)
