"""BatchNorm folded into the convolution before it, for inference (issue 16's fast path).

In eval mode a BatchNorm2d is a fixed per-channel affine map, y = (x - mean) / sqrt(var + eps) * gamma
+ beta, so it can be merged into the preceding convolution's weights and bias: one kernel instead of
two, and one fewer pass over every feature map. The outputs are the same up to float rounding.

    >>> model.eval()
    >>> fold_batchnorm(model)        # -> the number of BatchNorm layers folded
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _foldable(conv, bn) -> bool:
    return (type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.num_features == conv.out_channels)


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d into it, in place; the BatchNorm becomes
    an Identity. Two layouts are recognised, the ones the package's backbones use: consecutive
    (Conv2d, BatchNorm2d) entries of an ``nn.Sequential`` (ResNet's downsample, DarkNet's convs), and
    sibling attributes ``convN`` / ``bnN`` of one module (torchvision's ResNet blocks and stem), whose
    forward applies ``bnN`` right after ``convN``. Deformable convolutions are left as they are.

    Returns the number folded. A ValueError if ``module`` is in training mode (the batch statistics
    a training BatchNorm uses cannot be folded)."""
    if module.training:
        raise ValueError("fold_batchnorm needs eval mode (call .eval() first): in training BatchNorm uses "
                         "the batch's statistics, which no fixed weights can reproduce")
    folded = 0
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            for i in range(len(parent) - 1):
                if _foldable(parent[i], parent[i + 1]):
                    parent[i] = fuse_conv_bn_eval(parent[i], parent[i + 1])
                    parent[i + 1] = nn.Identity()
                    folded += 1
        for name, child in list(parent.named_children()):
            if name.startswith("bn") and hasattr(parent, "conv" + name[2:]):
                conv = getattr(parent, "conv" + name[2:])
                if _foldable(conv, child):
                    setattr(parent, "conv" + name[2:], fuse_conv_bn_eval(conv, child))
                    setattr(parent, name, nn.Identity())
                    folded += 1
    return folded


__all__ = ["fold_batchnorm"]
