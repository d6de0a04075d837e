"""``condinst_tiny``: CondInst (Tian et al., 2020) -- a mask head generated for each instance.

FCOS (:mod:`.fcos`) finds the instances; a controller on FCOS's box tower predicts, at every
location, the P weights of a tiny 3-layer network of 1x1 convs; that network, run on the shared
mask features plus the coordinates relative to the location, is the instance's mask. There is no
box and no crop in the assembly step: locality comes from the relative coordinates.

Assembly for n instances of one image (C = ``mask_channels``, h = ``dynamic_hidden``)::

    mask features  [C,S/8,S/8]        mask branch on P3..P5 (shared by the image's instances)
    rel. coords    [n,2,S/8,S/8]      (location_i - pixel) / size of interest of i's level
    params         [n,P]              controller at location_i, P = (C+2)h+h + h*h+h + h+1 (169 for C=8, h=8)
    x = concat(coords, features)      [n,C+2,S/8,S/8]
      -> 1x1 (C+2 -> h) ReLU -> 1x1 (h -> h) ReLU -> 1x1 (h -> 1)     weights and biases from params
      -> logits [n,S/8,S/8] -> x2 bilinear -> [n,S/4,S/4] -> sigmoid -> mask

Loss: FCOS's three parts plus the dice loss of the dynamic masks against the ground truth at
1/4 of the input, for at most ``mask_train_instances`` positive locations per image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .fcos import TINY_RECIPE, FCOSConfig, FCOSSegmenter
from .instance_masks import dice_loss
from .mask_branch import MaskBranch


def condinst_num_params(in_channels: int, hidden: int = 8, num_layers: int = 3) -> int:
    """Parameters of one instance's dynamic mask head: ``num_layers`` 1x1 convs over
    ``in_channels`` + 2 coordinate channels, ``hidden`` channels wide, 1 output (169 for
    CondInst's 8 feature channels)."""
    sizes = [in_channels + 2] + [hidden] * (num_layers - 1) + [1]
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


def split_dynamic_params(params: torch.Tensor, in_channels: int, hidden: int = 8, num_layers: int = 3):
    """params [n,P] -> (weights: list of [n,out,in], biases: list of [n,out]). CondInst's layout:
    all layers' weights first (row-major [out,in]), then all biases."""
    sizes = [in_channels + 2] + [hidden] * (num_layers - 1) + [1]
    if params.shape[1] != condinst_num_params(in_channels, hidden, num_layers):
        raise ValueError(f"expected {condinst_num_params(in_channels, hidden, num_layers)} params per "
                         f"instance, got {params.shape[1]}")
    counts = [i * o for i, o in zip(sizes[:-1], sizes[1:])] + sizes[1:]
    chunks = list(torch.split(params, counts, dim=1))
    weights = [w.reshape(-1, o, i) for w, i, o in zip(chunks[:num_layers], sizes[:-1], sizes[1:])]
    return weights, chunks[num_layers:]


def relative_coordinates(locations: torch.Tensor, height: int, width: int, scale=1.0) -> torch.Tensor:
    """locations [n,2] (x, y) in pixels of an H x W map -> [n,2,H,W]: (location - pixel centre) /
    scale, channels (x, y). ``scale``: a number or [n] (CondInst divides by the size of interest of
    the instance's level, which keeps the values near [-1, 1])."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=locations.device) + 0.5,
                            torch.arange(width, dtype=torch.float32, device=locations.device) + 0.5,
                            indexing="ij")
    pixels = torch.stack([xs, ys])                                                    # [2,H,W]
    scale = torch.as_tensor(scale, dtype=torch.float32, device=locations.device).reshape(-1, 1, 1, 1)
    return (locations.float()[:, :, None, None] - pixels[None]) / scale


def dynamic_mask_logits(features: torch.Tensor, coords: torch.Tensor, params: torch.Tensor,
                        hidden: int = 8, num_layers: int = 3) -> torch.Tensor:
    """The instances' own networks: features [n,C,H,W] (each instance's image's mask features),
    coords [n,2,H,W], params [n,P] -> mask logits [n,H,W]."""
    x = torch.cat([coords.to(features.dtype), features], 1)
    weights, biases = split_dynamic_params(params, features.shape[1], hidden, num_layers)
    for layer, (weight, bias) in enumerate(zip(weights, biases)):
        x = torch.einsum("noc,nchw->nohw", weight, x) + bias[:, :, None, None]
        if layer < num_layers - 1:
            x = F.relu(x)
    return x[:, 0]


@dataclass(frozen=True)
class CondInstConfig(FCOSConfig):
    family: ClassVar[str] = "condinst"

    mask_channels: int = 8                     # C: the mask branch's output
    mask_branch_channels: int = 64
    dynamic_hidden: int = 8
    dynamic_layers: int = 3
    sizes_of_interest: tuple[float, ...] = (32, 64, 128)   # per level: divides the relative coordinates
    mask_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_integers(("mask_channels", 1), ("mask_branch_channels", 1), ("dynamic_hidden", 1),
                               ("dynamic_layers", 2))
        if len(self.sizes_of_interest) != len(self.strides):
            raise ValueError(f"config {self.name!r}: sizes_of_interest needs one entry per level")

    @property
    def num_params(self) -> int:
        return condinst_num_params(self.mask_channels, self.dynamic_hidden, self.dynamic_layers)


class CondInstTiny(FCOSSegmenter):
    """forward(x [B,3,S,S]) -> raw dict: FCOS's outputs, "controller" [B,L,P] and
    "mask_features" [B,C,S/8,S/8]."""

    roi_masks = False          # its masks cover the whole input: not cropped unless crop=True asks
    crop_default = False
    crop_refusals = {}         # crop=True zeroes them outside the FCOS box

    def __init__(self, cfg: CondInstConfig | str = "condinst_tiny"):
        cfg = CONDINST_CONFIGS[cfg] if isinstance(cfg, str) else cfg
        super().__init__(cfg, extra={"controller": cfg.num_params})
        self.mask_branch = MaskBranch(cfg.fpn_features, cfg.mask_branch_channels, cfg.mask_channels,
                                      levels=len(cfg.strides))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pyramid = self.pyramid(x)
        return {**self.fcos(pyramid), "mask_features": self.mask_branch(pyramid)}

    def instance_coordinates(self, location: torch.Tensor, feature_size: tuple[int, int]) -> torch.Tensor:
        """Relative coordinates [n,2,h,w] of the instances at ``location`` [n] (indices into L) on
        the h x w mask-feature grid, divided by the size of interest of each instance's level."""
        cfg = self.cfg
        stride = cfg.max_size / feature_size[-1]
        points, levels = self.locations(location.device)
        soi = torch.tensor(cfg.sizes_of_interest, device=location.device)[levels[location]]
        return relative_coordinates(points[location] / stride, *feature_size, soi / stride)

    def instance_mask_logits(self, raw: dict, image: torch.Tensor, location: torch.Tensor,
                             params: torch.Tensor | None = None) -> torch.Tensor:
        """Assembly for instances at ``location`` [n] (indices into L) of images ``image`` [n]
        -> mask logits [n,S/4,S/4] (see the module docstring). ``params`` [n,P]: filters to use
        instead of the controller's at those locations (e.g. one instance's filter moved to
        another's location)."""
        cfg = self.cfg
        features = raw["mask_features"][image]                                    # [n,C,h,w]
        coords = self.instance_coordinates(location, tuple(features.shape[-2:]))
        params = raw["controller"][image, location] if params is None else params
        logits = dynamic_mask_logits(features, coords, params, cfg.dynamic_hidden, cfg.dynamic_layers)
        return F.interpolate(logits[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0]

    def instance_mask_probs(self, raw: dict, image: int, found: dict[str, torch.Tensor]) -> torch.Tensor:
        """The dynamic masks of one image's detections, [n,S/4,S/4] over the whole input."""
        location = found["location"]
        return torch.sigmoid(self.instance_mask_logits(raw, torch.full_like(location, image), location))

    def criterion(self):
        """``(raw, targets) -> dict``: class, box, centerness (FCOS) and mask (dice)."""
        def loss(raw: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
            parts, assignment = self.fcos_loss(raw, targets)
            chosen = assignment.sample(self.cfg.mask_train_instances)
            if len(chosen.image) == 0:
                parts["mask"] = raw["controller"].sum() * 0 + raw["mask_features"].sum() * 0
                return parts
            logits = self.instance_mask_logits(raw, chosen.image, chosen.location)
            side = logits.shape[-1]
            truth = F.adaptive_avg_pool2d(chosen.truth(targets, "masks").float(), side)
            parts["mask"] = self.cfg.mask_loss_weight * dice_loss(logits, truth).mean()
            return parts
        return loss


CONDINST_CONFIGS: dict[str, CondInstConfig] = {
    "condinst_tiny": CondInstConfig(name="condinst_tiny", **TINY_RECIPE),
}

__all__ = ["CondInstConfig", "CondInstTiny", "CONDINST_CONFIGS", "condinst_num_params", "split_dynamic_params",
           "relative_coordinates", "dynamic_mask_logits"]
