"""``solov2_tiny``: SOLOv2 (Wang et al., 2020) -- box-free: the grid cell of an object's centre
owns its category and its mask.

Each pyramid level is resized to a G x G grid; every cell predicts a category and a 1x1 dynamic
kernel; the kernel, applied to unified mask features of the whole image, is the mask of the
object centred in that cell. No boxes at all (the boxes a :class:`Detections` needs are those of
the masks), and duplicates are removed by Matrix NMS on the masks.

Shapes for one image (E = ``mask_feature_channels``, G_l = ``grids``, T = sum of G_l^2 cells)::

    P3..P5 [F,S/8..S/32] -> resize to G_l x G_l -> category tower -> category logits [G_l*G_l,C]
                          + x, y coordinates   -> kernel tower   -> kernels          [G_l*G_l,E]
    mask features [E,S/4,S/4]   (P3..P5 fused at 1/8 with coordinate channels, then x2)
    mask of cell i = sigmoid(kernel_i . features)   [S/4,S/4]          (a 1x1 conv per instance)
    score = category probability x maskness (mean probability inside the mask) -> Matrix NMS

Training: an object of size sqrt(w h) in a level's ``scale_ranges`` makes the cells of its
centre region (:func:`solo_center_cells`) positive on that level; category loss: focal, summed
over cells / positives; mask loss: dice of the positive cells' masks against the object's mask,
weighted ``mask_loss_weight`` (3, as SOLOv2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from ..bench.timing import stage_timer
from ..config import ModelConfig
from ..detections import Detections
from ..model.segmenter import DetectOptions, InstanceSegmenter
from ..postprocess import per_image_sizes
from .fcos import INF, TINY_RECIPE, conv_gn_relu
from .instance_masks import detections_from_image_masks, dice_loss
from .mask_branch import MaskBranch, coordinate_channels
from .maskrcnn import ResNetFPN


def solo_center_cells(mask: torch.Tensor, grid: int, epsilon: float = 0.2) -> torch.Tensor:
    """The positive cells of one object [H,W] {0,1}: the cells overlapping its "centre region"
    (centre of mass +- epsilon x half its box), at most one cell away from the centre's cell,
    as SOLO assigns them. Returns sorted int64 cell indices (1 to 9 of them)."""
    height, width = mask.shape
    ys, xs = torch.nonzero(mask > 0, as_tuple=True)
    if len(ys) == 0:
        return torch.zeros(0, dtype=torch.long, device=mask.device)
    cy, cx = ys.float().mean() + 0.5, xs.float().mean() + 0.5
    half_h = 0.5 * (ys.max() - ys.min() + 1).float() * epsilon
    half_w = 0.5 * (xs.max() - xs.min() + 1).float() * epsilon

    def cell(value, size):
        return int((value / size * grid).floor().clamp(0, grid - 1))
    row, col = cell(cy, height), cell(cx, width)
    top, down = max(cell(cy - half_h, height), row - 1), min(cell(cy + half_h, height), row + 1)
    left, right = max(cell(cx - half_w, width), col - 1), min(cell(cx + half_w, width), col + 1)
    return torch.tensor([r * grid + c for r in range(top, down + 1) for c in range(left, right + 1)],
                        device=mask.device)


def matrix_nms(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, kernel: str = "gaussian",
               sigma: float = 2.0) -> torch.Tensor:
    """SOLOv2's Matrix NMS: masks [n,H,W] {0,1}, labels [n], scores [n] sorted descending ->
    decayed scores [n]. Each mask's score is multiplied by min over higher-scored masks j of the
    same class of f(IoU_ij) / f(max IoU of j to masks above it) -- one matrix operation, no loop;
    f(x) = exp(-sigma x^2) ("gaussian") or 1 - x ("linear")."""
    n = len(scores)
    if n == 0:
        return scores
    flat = masks.reshape(n, -1).float()
    inter = flat @ flat.t()
    areas = flat.sum(dim=1).expand(n, n)
    iou = (inter / (areas + areas.t() - inter).clamp(min=1e-6)).triu(diagonal=1)   # [i,j]: i above j
    same_class = (labels[:, None] == labels[None, :]).float().triu(diagonal=1)
    decay_iou = iou * same_class
    compensate_iou = decay_iou.max(dim=0).values.expand(n, n).t()                  # row i: i's own max
    if kernel == "gaussian":
        decay = torch.exp(-sigma * decay_iou ** 2) / torch.exp(-sigma * compensate_iou ** 2)
    elif kernel == "linear":
        decay = (1 - decay_iou) / (1 - compensate_iou).clamp(min=1e-6)
    else:
        raise ValueError(f"kernel must be 'gaussian' or 'linear', got {kernel!r}")
    return scores * decay.min(dim=0).values


@dataclass(frozen=True)
class SOLOv2Config(ModelConfig):
    """SOLOv2 on ``yolact_tiny``'s backbone, FPN width and input."""

    family: ClassVar[str] = "solov2"

    backbone: str = "resnet18"
    backbone_width: int = 32
    selected_layers: tuple[int, ...] = (1, 2, 3)
    fpn_features: int = 64
    fpn_num_downsample: int = 0
    grids: tuple[int, ...] = (24, 16, 8)                  # G per level P3, P4, P5
    # sqrt(w h) of an object in input pixels each level answers for (they overlap, as SOLO's do)
    scale_ranges: tuple[tuple[float, float], ...] = ((0, 48), (24, 96), (48, INF))
    center_epsilon: float = 0.2
    head_channels: int = 64
    tower_convs: int = 2
    mask_feature_channels: int = 16                       # E: the length of each dynamic kernel
    mask_branch_channels: int = 64
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    prior_prob: float = 0.01
    mask_loss_weight: float = 3.0
    nms_conf_thresh: float = 0.1                          # sigmoid(class) a grid cell needs
    pre_nms_top_n: int = 300
    matrix_nms_kernel: str = "gaussian"
    matrix_nms_sigma: float = 2.0
    update_threshold: float = 0.05                        # score after Matrix NMS a mask needs

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_integers(("backbone_width", 1), ("fpn_features", 1), ("head_channels", 1),
                               ("tower_convs", 1), ("mask_feature_channels", 1), ("pre_nms_top_n", 1))
        self._require_fractions("nms_conf_thresh", "update_threshold", "prior_prob", "focal_alpha",
                                "center_epsilon")
        levels = len(self.selected_layers) + self.fpn_num_downsample
        if len(self.grids) != levels or len(self.scale_ranges) != levels:
            raise ValueError(f"config {self.name!r}: grids and scale_ranges need one entry per FPN level "
                             f"({levels}), got {len(self.grids)} and {len(self.scale_ranges)}")
        if self.max_size % 32:
            raise ValueError(f"config {self.name!r}: max_size must be a multiple of 32, got {self.max_size}")


class SOLOv2Tiny(InstanceSegmenter, nn.Module):
    """forward(x [B,3,S,S]) -> raw dict: "category_logits" [B,T,C], "kernels" [B,T,E] and
    "mask_features" [B,E,S/4,S/4] (T = sum of the grids' cells, finest level first)."""

    def __init__(self, cfg: SOLOv2Config | str = "solov2_tiny"):
        super().__init__()
        cfg = SOLOV2_CONFIGS[cfg] if isinstance(cfg, str) else cfg
        self.cfg = cfg
        self.trunk = ResNetFPN(cfg)
        channels = cfg.head_channels
        self.category_tower = nn.Sequential(*[conv_gn_relu(cfg.fpn_features if i == 0 else channels, channels)
                                              for i in range(cfg.tower_convs)])
        self.kernel_tower = nn.Sequential(*[conv_gn_relu(cfg.fpn_features + 2 if i == 0 else channels, channels)
                                            for i in range(cfg.tower_convs)])
        self.category = nn.Conv2d(channels, cfg.num_classes, 3, padding=1)
        self.kernel = nn.Conv2d(channels, cfg.mask_feature_channels, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and not any(module is m for m in self.trunk.modules()):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.category.bias, -torch.log(torch.tensor((1 - cfg.prior_prob) / cfg.prior_prob)).item())
        self.mask_branch = MaskBranch(cfg.fpn_features, cfg.mask_branch_channels, cfg.mask_feature_channels,
                                      levels=len(cfg.grids), upsample=True, coordinates=True)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pyramid = list(self.trunk(x).values())
        categories, kernels = [], []
        for feature, grid in zip(pyramid, self.cfg.grids):
            with_coords = torch.cat([feature, coordinate_channels(feature.shape[0], *feature.shape[-2:], feature)], 1)
            cells = F.interpolate(with_coords, (grid, grid), mode="bilinear", align_corners=False)
            categories.append(self.category(self.category_tower(cells[:, :-2])).flatten(2).transpose(1, 2))
            kernels.append(self.kernel(self.kernel_tower(cells)).flatten(2).transpose(1, 2))
        return {"category_logits": torch.cat(categories, 1), "kernels": torch.cat(kernels, 1),
                "mask_features": self.mask_branch(pyramid)}

    @staticmethod
    def instance_mask_logits(raw: dict, image: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Assembly: the kernels of cells ``cell`` [n] of images ``image`` [n] on their image's mask
        features -> logits [n,S/4,S/4]."""
        return torch.einsum("ne,nehw->nhw", raw["kernels"][image, cell], raw["mask_features"][image])

    # -- training -------------------------------------------------------------------------
    def grid_targets(self, target: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's positives: (cells [P] index into T, objects [P] index into its ground truth).
        Larger objects first, so that a smaller one keeps a cell both claim."""
        cfg, size = self.cfg, float(self.cfg.max_size)
        boxes = target["boxes"] * size
        scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()
        usable = ~target["iscrowd"].bool() if "iscrowd" in target else torch.ones_like(scale, dtype=torch.bool)
        owner: dict[int, int] = {}
        offset = 0
        for (low, high), grid in zip(cfg.scale_ranges, cfg.grids):
            for obj in scale.argsort(descending=True).tolist():
                if usable[obj] and low <= float(scale[obj]) <= high:
                    for cell in solo_center_cells(target["masks"][obj], grid, cfg.center_epsilon).tolist():
                        owner[offset + cell] = obj
            offset += grid * grid
        device = boxes.device
        cells = torch.tensor(list(owner), dtype=torch.long, device=device)
        return cells, torch.tensor(list(owner.values()), dtype=torch.long, device=device)

    def criterion(self):
        """``(raw, targets) -> dict``: category (focal) and mask (dice x ``mask_loss_weight``)."""
        def loss(raw: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
            cfg = self.cfg
            category_targets = torch.zeros_like(raw["category_logits"])
            images, cells, truths = [], [], []
            side = raw["mask_features"].shape[-1]
            for b, target in enumerate(targets):
                cell, obj = self.grid_targets(target)
                category_targets[b, cell, target["labels"][obj]] = 1.0
                images.append(torch.full_like(cell, b))
                cells.append(cell)
                if len(obj):
                    truths.append(F.adaptive_avg_pool2d(target["masks"][obj].float(), side))
            image, cell = torch.cat(images), torch.cat(cells)
            category = sigmoid_focal_loss(raw["category_logits"], category_targets, alpha=cfg.focal_alpha,
                                          gamma=cfg.focal_gamma, reduction="sum") / (len(cell) + 1)
            if len(cell) == 0:
                return {"category": category, "mask": raw["kernels"].sum() * 0 + raw["mask_features"].sum() * 0}
            logits = self.instance_mask_logits(raw, image, cell)
            return {"category": category, "mask": cfg.mask_loss_weight * dice_loss(logits, torch.cat(truths)).mean()}
        return loss

    # -- inference ------------------------------------------------------------------------
    def point_nms(self, probs: torch.Tensor) -> torch.Tensor:
        """probs [T,C] -> the same with every cell that is not a 2x2 local maximum of its class map
        set to 0 (SOLO's "points NMS": neighbouring cells of one object give one candidate)."""
        out, offset = [], 0
        for grid in self.cfg.grids:
            level = probs[offset:offset + grid * grid].t().reshape(1, -1, grid, grid)
            peak = F.max_pool2d(level, 2, stride=1, padding=1)[..., :grid, :grid]
            out.append((level * (peak == level)).reshape(-1, grid * grid).t())
            offset += grid * grid
        return torch.cat(out)

    def forced_output_count(self, count: int):
        """A context in which :meth:`detect` keeps up to ``count`` masks whatever their scores (no
        candidate or update threshold); cells whose mask is empty still drop out, so fewer may come."""
        return self.settings(nms_conf_thresh=0.0, update_threshold=0.0, max_detections=int(count),
                             pre_nms_top_n=max(self.cfg.pre_nms_top_n, int(count)))

    nms_kinds = ("matrix",)
    iou_refusal = ("its Matrix NMS decays each mask's score by its overlap with better ones instead of cutting at "
                   "an IoU (matrix_nms_kernel and matrix_nms_sigma in its config set how)")
    _NO_BOXES = ("SOLOv2 predicts no boxes (each mask is the object; its box is read off the mask), "
                 "so crop has no meaning")
    crop_default = None
    crop_refusals = {True: _NO_BOXES, False: _NO_BOXES}

    detect_extras = ("conf_threshold", "timings")

    def detections(self, raw: dict, image_sizes, options: DetectOptions, conf_threshold: float | None = None,
                   timings: dict | None = None) -> list[Detections]:
        """Raw outputs -> one :class:`Detections` per image (masks resized to the image; boxes
        are the masks' own). ``conf_threshold``: what sigmoid(class) a grid cell needs to be a
        candidate (None: ``cfg.nms_conf_thresh``)."""
        cfg = self.cfg
        image_sizes = per_image_sizes(image_sizes, raw["kernels"].shape[0])
        results, device = [], raw["kernels"].device
        for b, size in enumerate(image_sizes):
            with stage_timer(timings, "decode + NMS", device):      # masks are assembled before Matrix NMS
                found = self.grid_detect(raw, b, options.mask_threshold, options.top_k, conf_threshold)
                keep = torch.nonzero(found["scores"] >= options.score_threshold).flatten()
            with stage_timer(timings, "upsample + threshold", device):
                results.append(detections_from_image_masks(found["scores"][keep], found["labels"][keep],
                                                           found["probs"][keep], cfg.max_size, size, cfg.class_names,
                                                           mask_threshold=options.mask_threshold))
        return results

    def backbone_parameters(self):
        return self.trunk.body.parameters()

    def backbone_modules(self):
        return [self.trunk.body]

    def grid_detect(self, raw: dict, image: int, mask_threshold: float = 0.5, top_k: int | None = None,
                    conf_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """One image: "cell" [N] (index into T), "labels" [N], "scores" [N] (after Matrix NMS,
        sorted), "probs" [N,S/4,S/4] and "scores_before" [N] (category x maskness); at most
        ``top_k`` (None: ``cfg.max_detections``), from the cells whose sigmoid(class) is >
        ``conf_threshold`` (None: ``cfg.nms_conf_thresh``)."""
        cfg = self.cfg
        conf_threshold = cfg.nms_conf_thresh if conf_threshold is None else conf_threshold
        probs = self.point_nms(torch.sigmoid(raw["category_logits"][image].float()))
        cell, label = torch.nonzero(probs > conf_threshold, as_tuple=True)
        scores = probs[cell, label]
        top = scores.topk(min(cfg.pre_nms_top_n, len(scores))).indices
        cell, label, scores = cell[top], label[top], scores[top]
        mask_probs = torch.sigmoid(self.instance_mask_logits(
            raw, torch.full_like(cell, image), cell).float())
        masks = mask_probs > mask_threshold
        area = masks.flatten(1).sum(1).float()
        filled = area > 0
        cell, label, scores, mask_probs, masks, area = (v[filled] for v in (cell, label, scores, mask_probs,
                                                                           masks, area))
        maskness = (mask_probs * masks).flatten(1).sum(1) / area
        scores = scores * maskness
        order = scores.argsort(descending=True)
        cell, label, scores, mask_probs, masks = (v[order] for v in (cell, label, scores, mask_probs, masks))
        decayed = matrix_nms(masks, label, scores, cfg.matrix_nms_kernel, cfg.matrix_nms_sigma)
        keep = torch.nonzero(decayed >= cfg.update_threshold).flatten()
        keep = keep[decayed[keep].argsort(descending=True)][:cfg.max_detections if top_k is None else top_k]
        return {"cell": cell[keep], "labels": label[keep], "scores": decayed[keep], "probs": mask_probs[keep],
                "scores_before": scores[keep]}


SOLOV2_CONFIGS: dict[str, SOLOv2Config] = {
    "solov2_tiny": SOLOv2Config(name="solov2_tiny", **TINY_RECIPE),
}

__all__ = ["SOLOv2Config", "SOLOv2Tiny", "SOLOV2_CONFIGS", "solo_center_cells", "matrix_nms"]
