"""FCOS: anchor-free, per-location detection -- the detector under CondInst, CenterMask and BlendMask.

Where YOLACT places 3 anchors on every cell and regresses offsets from them, FCOS lets every
feature-map location that falls inside an object predict that object directly:

    P3..P5 [B,F,S/8..S/32]  (one shared head, run on every level)
      -> class tower (convs + GN) -> class logits  [B,C,H,W]    sigmoid, focal loss
      -> box tower   (convs + GN) -> l, t, r, b    [B,4,H,W]    pixels from the location to the box's sides
                                  -> centerness    [B,1,H,W]    sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))
    flattened over the levels: L = sum of H*W locations, raw "class_logits" [B,L,C],
    "ltrb" [B,L,4] (input pixels, >= 0), "centerness" [B,L] (logit), and any per-instance
    quantity a relative adds on the box tower (3x3 conv, like centerness): CondInst's controller
    "controller" [B,L,P], BlendMask's attention "attention" [B,L,K*M*M].

Targets (:func:`fcos_targets`): a location is positive for a ground-truth box when it lies in
the box's centre region (``center_radius`` strides around the box centre, clipped to the box)
and the largest of its l, t, r, b falls in its level's size range; among several boxes it takes
the smallest. Score at inference: sqrt(sigmoid(class) * sigmoid(centerness)), so the
off-centre locations, whose boxes are worse, rank lower before NMS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, generalized_box_iou_loss, sigmoid_focal_loss

from ..bench.timing import stage_timer
from ..config import ModelConfig
from ..detections import Detections
from ..model.segmenter import DetectOptions, InstanceSegmenter
from ..postprocess import per_image_sizes
from .instance_masks import detections_from_image_masks, detections_from_roi_masks
from .maskrcnn import ResNetFPN

INF = 1e8

# The relatives' teaching recipe: yolact_tiny's input and optimiser family (AdamW, cosine, light
# augmentation; no ImageNet weights can be fetched, so everything trains from scratch), lr 1e-3 with a
# 200-step warm-up for the GroupNorm heads, and 4000 iterations of batch 8.
TINY_RECIPE = dict(max_size=256, optimizer="adamw", lr=1e-3, lr_warmup_init=1e-4, lr_warmup_until=200,
                   lr_schedule="cosine", lr_gamma=0.02, lr_steps=(), max_iter=4000, augmentation="light")


@dataclass(frozen=True)
class FCOSConfig(ModelConfig):
    """What the FCOS-based relatives share: ``yolact_tiny``'s backbone, FPN width and input, an
    FCOS head on P3..P5, and their training recipe. Not a model on its own (no ``family``)."""

    backbone: str = "resnet18"
    backbone_width: int = 32
    selected_layers: tuple[int, ...] = (1, 2, 3)        # C3, C4, C5 -> P3, P4, P5
    fpn_features: int = 64
    fpn_num_downsample: int = 0                          # no P6/P7: at 256 px P5 is already 8x8
    strides: tuple[int, ...] = (8, 16, 32)
    # Largest of l, t, r, b (input pixels) each level answers for; FCOS's 64/128/... at 800 px,
    # scaled to the 256-px input.
    size_ranges: tuple[tuple[float, float], ...] = ((0, 32), (32, 64), (64, INF))
    head_channels: int = 64
    tower_convs: int = 2                                 # FCOS has 4; 2 keep a CPU step short
    center_radius: float = 1.5                           # centre sampling, in strides
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    prior_prob: float = 0.01                             # initial foreground probability
    nms_conf_thresh: float = 0.05                        # sigmoid(class) a candidate needs
    pre_nms_top_n: int = 300                             # candidates per image before NMS
    nms_iou_thresh: float = 0.6                          # class-wise NMS
    mask_train_instances: int = 32                       # positives per image the mask loss samples

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_integers(("backbone_width", 1), ("fpn_features", 1), ("head_channels", 1),
                               ("tower_convs", 0), ("pre_nms_top_n", 1), ("mask_train_instances", 1))
        self._require_fractions("nms_conf_thresh", "nms_iou_thresh", "prior_prob", "focal_alpha")
        levels = len(self.selected_layers) + self.fpn_num_downsample
        if len(self.strides) != levels or len(self.size_ranges) != levels:
            raise ValueError(f"config {self.name!r}: strides and size_ranges need one entry per FPN "
                             f"level ({levels}), got {len(self.strides)} and {len(self.size_ranges)}")
        if self.max_size % max(self.strides):
            raise ValueError(f"config {self.name!r}: max_size must be a multiple of {max(self.strides)} "
                             f"(the coarsest stride), got {self.max_size}")


def conv_gn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv + GroupNorm + ReLU, the unit of FCOS's towers (GroupNorm: batch 8 on a CPU is too
    small a batch for BatchNorm's statistics)."""
    groups = math.gcd(out_channels, 16)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True))


def location_grid(feature_sizes, strides, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The locations of every level's cells: ([L,2] (x, y) in input pixels, at the centre
    stride//2 + i*stride of each cell; [L] int64 level index), levels in order."""
    points, levels = [], []
    for level, ((height, width), stride) in enumerate(zip(feature_sizes, strides)):
        ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device),
                                indexing="ij")
        points.append(torch.stack([xs.flatten(), ys.flatten()], 1).float() * stride + stride // 2)
        levels.append(torch.full((height * width,), level, dtype=torch.long, device=device))
    return torch.cat(points), torch.cat(levels)


class FCOSHead(nn.Module):
    """One head shared by all levels: pyramid [B,F,H_l,W_l] -> dense predictions flattened
    over the levels (see the module docstring), with a learnt scale per level on l, t, r, b.
    ``extra``: name -> channels of further per-location outputs on the box tower."""

    def __init__(self, cfg: FCOSConfig, extra: dict[str, int] | None = None):
        super().__init__()
        channels = cfg.head_channels
        self.class_tower = nn.Sequential(*[conv_gn_relu(cfg.fpn_features if i == 0 else channels, channels)
                                           for i in range(cfg.tower_convs)])
        self.box_tower = nn.Sequential(*[conv_gn_relu(cfg.fpn_features if i == 0 else channels, channels)
                                         for i in range(cfg.tower_convs)])
        self.class_logits = nn.Conv2d(channels, cfg.num_classes, 3, padding=1)
        self.ltrb = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.extra = nn.ModuleDict({name: nn.Conv2d(channels, out, 3, padding=1)
                                    for name, out in (extra or {}).items()})
        self.scales = nn.Parameter(torch.ones(len(cfg.strides)))
        self.strides = cfg.strides
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        # Start every class at prior_prob foreground, so the focal loss is not swamped at step 0.
        nn.init.constant_(self.class_logits.bias, -math.log((1 - cfg.prior_prob) / cfg.prior_prob))

    def forward(self, pyramid: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {name: [] for name in ("class_logits", "ltrb", "centerness", *self.extra)}
        for level, feature in enumerate(pyramid):
            class_features, box_features = self.class_tower(feature), self.box_tower(feature)
            ltrb = F.relu(self.ltrb(box_features) * self.scales[level]) * self.strides[level]
            outputs = {"class_logits": self.class_logits(class_features), "ltrb": ltrb,
                       "centerness": self.centerness(box_features)}
            outputs.update((name, conv(box_features)) for name, conv in self.extra.items())
            for key, value in outputs.items():
                out[key].append(value.flatten(2).transpose(1, 2))          # [B,H*W,c]
        flat = {key: torch.cat(values, 1) for key, values in out.items()}
        flat["centerness"] = flat["centerness"][..., 0]
        return flat


def fcos_targets(locations: torch.Tensor, levels: torch.Tensor, boxes: torch.Tensor, cfg: FCOSConfig
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's assignment: locations [L,2] px, levels [L], ground-truth boxes [n,4] xyxy px
    -> (matched [L] int64: index of the box a location answers for, -1 = background;
    ltrb [L,4] px: its distances to that box's sides, 0 for background)."""
    num_locations = len(locations)
    if len(boxes) == 0:
        return locations.new_full((num_locations,), -1, dtype=torch.long), locations.new_zeros((num_locations, 4))
    x, y = locations[:, 0, None], locations[:, 1, None]                          # [L,1]
    ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], 2)   # [L,n,4]
    # Centre sampling: only locations within center_radius strides of the box centre (and inside it).
    stride = torch.tensor(cfg.strides, device=locations.device, dtype=locations.dtype)[levels][:, None]
    radius = stride * cfg.center_radius
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    near = torch.stack([x - torch.maximum(cx - radius, boxes[:, 0]), y - torch.maximum(cy - radius, boxes[:, 1]),
                        torch.minimum(cx + radius, boxes[:, 2]) - x, torch.minimum(cy + radius, boxes[:, 3]) - y], 2)
    in_centre = near.amin(2) > 0
    ranges = torch.tensor(cfg.size_ranges, device=locations.device, dtype=locations.dtype)[levels]   # [L,2]
    reach = ltrb.amax(2)
    in_range = (reach >= ranges[:, 0, None]) & (reach <= ranges[:, 1, None])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(num_locations, -1)
    area = torch.where(in_centre & in_range, area, torch.full_like(area, INF))
    smallest, matched = area.min(1)
    matched = torch.where(smallest < INF, matched, torch.full_like(matched, -1))
    chosen = ltrb[torch.arange(num_locations, device=locations.device), matched.clamp(min=0)]
    return matched, torch.where(matched[:, None] >= 0, chosen, torch.zeros_like(chosen))


def centerness_target(ltrb: torch.Tensor) -> torch.Tensor:
    """[n,4] positive distances -> [n] in [0,1]: 1 at the box centre, 0 on an edge."""
    left_right, top_bottom = ltrb[:, 0::2], ltrb[:, 1::2]
    ratio = (left_right.amin(1) / left_right.amax(1).clamp(min=1e-6)) * \
            (top_bottom.amin(1) / top_bottom.amax(1).clamp(min=1e-6))
    return ratio.clamp(min=0).sqrt()


def ltrb_to_boxes(locations: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """locations [...,2] (x, y), ltrb [...,4] -> boxes [...,4] xyxy (same units)."""
    return torch.cat([locations - ltrb[..., :2], locations + ltrb[..., 2:]], -1)


@dataclass
class Assignment:
    """The batch's positives after :meth:`FCOSSegmenter.fcos_loss`: for each positive location,
    its image, its index in L, the ground truth it answers for and that box (input px)."""

    image: torch.Tensor      # [P] int64
    location: torch.Tensor   # [P] int64 index into L
    target: torch.Tensor     # [P] int64 index into that image's ground truth
    boxes: torch.Tensor      # [P,4] the ground-truth box, xyxy input px

    def sample(self, per_image: int, generator: torch.Generator | None = None) -> Assignment:
        """At most ``per_image`` positives of each image, drawn at random (the mask losses of
        CondInst, BlendMask and CenterMask are computed on a sample, as AdelaiDet's max_proposals)."""
        keep = []
        for image in self.image.unique():
            where = torch.nonzero(self.image == image).flatten()
            order = torch.randperm(len(where), generator=generator)[:per_image].to(where.device)
            keep.append(where[order])
        if not keep:
            return self
        keep = torch.cat(keep)
        return Assignment(self.image[keep], self.location[keep], self.target[keep], self.boxes[keep])

    def truth(self, targets: list[dict], key: str) -> torch.Tensor:
        """The ground truth ``key`` ("masks" [P,S,S], "labels" [P]) of the object each positive answers for."""
        return torch.stack([targets[int(b)][key][int(t)] for b, t in zip(self.image, self.target)])


class FCOSSegmenter(InstanceSegmenter, nn.Module):
    """Backbone + FPN + :class:`FCOSHead` with FCOS's loss and decoding; CondInst, CenterMask and
    BlendMask add their mask parts on top (``forward`` -> their own raw dict, which includes
    FCOS's ``class_logits``, ``ltrb`` and ``centerness``). ``extra``: as :class:`FCOSHead`'s."""

    def __init__(self, cfg: FCOSConfig, extra: dict[str, int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.trunk = ResNetFPN(cfg)
        self.fcos = FCOSHead(cfg, extra)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B,3,S,S] -> P3..P5 [B,F,S/8..S/32]."""
        return list(self.trunk(x).values())

    def locations(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(locations [L,2] px, levels [L]) for the S x S input (S = ``cfg.max_size``)."""
        size = self.cfg.max_size
        sizes = [(math.ceil(size / s), math.ceil(size / s)) for s in self.cfg.strides]
        return location_grid(sizes, self.cfg.strides, device)

    # -- training -------------------------------------------------------------------------
    def fcos_loss(self, raw: dict, targets: list[dict]) -> tuple[dict, Assignment]:
        """FCOS's three losses (class: focal, summed over locations / positives; box: GIoU of
        the positives weighted by their centerness target; centerness: BCE) and the assignment
        the mask losses build on. Crowd regions are left out of the targets."""
        cfg, device = self.cfg, raw["ltrb"].device
        locations, levels = self.locations(device)
        size = float(cfg.max_size)
        class_targets = torch.zeros_like(raw["class_logits"])
        images, places, matched_ids, gt_boxes, gt_ltrb = [], [], [], [], []
        for b, target in enumerate(targets):
            boxes = target["boxes"] * size
            usable = ~target["iscrowd"].bool() if "iscrowd" in target else torch.ones(len(boxes), dtype=torch.bool,
                                                                                    device=device)
            index = torch.nonzero(usable).flatten()
            matched, ltrb = fcos_targets(locations, levels, boxes[index], cfg)
            positive = torch.nonzero(matched >= 0).flatten()
            original = index[matched[positive]]                  # back to the target's own numbering
            class_targets[b, positive, target["labels"][original]] = 1.0
            images.append(torch.full_like(positive, b))
            places.append(positive)
            matched_ids.append(original)
            gt_boxes.append(boxes[original])
            gt_ltrb.append(ltrb[positive])
        assignment = Assignment(torch.cat(images), torch.cat(places), torch.cat(matched_ids), torch.cat(gt_boxes))
        num_positive = max(len(assignment.image), 1)
        class_loss = sigmoid_focal_loss(raw["class_logits"], class_targets, alpha=cfg.focal_alpha,
                                        gamma=cfg.focal_gamma, reduction="sum") / num_positive
        if len(assignment.image) == 0:
            zero = raw["ltrb"].sum() * 0 + raw["centerness"].sum() * 0
            return {"class": class_loss, "box": zero, "centerness": zero}, assignment
        ltrb_target = torch.cat(gt_ltrb)
        centre = centerness_target(ltrb_target)
        where = locations[assignment.location]
        predicted = ltrb_to_boxes(where, raw["ltrb"][assignment.image, assignment.location])
        giou = generalized_box_iou_loss(predicted, ltrb_to_boxes(where, ltrb_target), reduction="none")
        box_loss = (giou * centre).sum() / centre.sum().clamp(min=1e-6)
        centerness_loss = F.binary_cross_entropy_with_logits(
            raw["centerness"][assignment.image, assignment.location], centre)
        return {"class": class_loss, "box": box_loss, "centerness": centerness_loss}, assignment

    # -- inference ------------------------------------------------------------------------
    roi_masks: bool = True        # the mask parts give [n,R,R] masks inside the boxes (else image-wide ones)

    def instance_mask_probs(self, raw: dict, image: int, found: dict[str, torch.Tensor]) -> torch.Tensor:
        """The family's assembly step for one image's detections (``found``: :meth:`fcos_detect`'s
        dict) -> mask probabilities in [0,1]: [n,R,R] in the boxes when ``roi_masks``, else [n,h,w]
        over the whole input."""
        raise NotImplementedError

    nms_kinds = ("standard",)           # class-wise NMS (torchvision's batched_nms), as FCOS
    crop_refusals = {False: "its masks are predicted inside each box (RoIAlign): nothing outside the box exists "
                            "to keep"}

    detect_extras = ("conf_threshold", "timings")

    def detections(self, raw: dict, image_sizes, options: DetectOptions, conf_threshold: float | None = None,
                   timings: dict | None = None) -> list[Detections]:
        """Raw outputs -> one :class:`Detections` per image: FCOS's boxes and scores, the family's
        masks pasted into the boxes (``roi_masks``) or resized from the whole input, thresholded.
        ``iou_threshold`` None: ``cfg.nms_iou_thresh``; ``conf_threshold`` (what sigmoid(class) a
        location needs to be a candidate) None: ``cfg.nms_conf_thresh``; ``timings`` as YOLACT's."""
        image_sizes = per_image_sizes(image_sizes, raw["ltrb"].shape[0])
        cfg, results, device = self.cfg, [], raw["ltrb"].device
        for b, size in enumerate(image_sizes):
            with stage_timer(timings, "decode + NMS", device):
                found = self.fcos_detect(raw, b, options.score_threshold, options.iou_threshold, options.top_k,
                                         conf_threshold)
            with stage_timer(timings, "assembly + crop", device):
                probs = self.instance_mask_probs(raw, b, found).float()
            with stage_timer(timings, "upsample + threshold", device):
                if self.roi_masks:
                    results.append(detections_from_roi_masks(found["boxes"], found["scores"], found["labels"],
                                                             probs, cfg.max_size, size, cfg.class_names,
                                                             options.mask_threshold))
                else:
                    results.append(detections_from_image_masks(found["scores"], found["labels"], probs, cfg.max_size,
                                                               size, cfg.class_names, boxes=found["boxes"],
                                                               mask_threshold=options.mask_threshold,
                                                               crop=options.crop))
        return results

    def backbone_parameters(self):
        return self.trunk.body.parameters()

    def backbone_modules(self):
        return [self.trunk.body]

    def forced_output_count(self, count: int):
        """A context in which :meth:`detect` returns ``count`` detections whatever the scores (no
        candidate threshold, no suppression), so a timing pays for exactly that many masks."""
        return self.settings(nms_conf_thresh=0.0, nms_iou_thresh=1.0, max_detections=int(count),
                             pre_nms_top_n=max(self.cfg.pre_nms_top_n, int(count)))

    def fcos_detect(self, raw: dict, image: int, score_threshold: float = 0.0, iou_threshold: float | None = None,
                    top_k: int | None = None, conf_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """One image's detections in input pixels: "location" [N] (index into L, for the mask
        parts), "boxes" [N,4] xyxy clipped to the input, "scores" [N] in [0,1] (>= ``score_threshold``),
        "labels" [N] 0-based; by score, after class-wise NMS at ``iou_threshold`` (None:
        ``cfg.nms_iou_thresh``), at most ``top_k`` (None: ``cfg.max_detections``), from the locations
        whose sigmoid(class) is > ``conf_threshold`` (None: ``cfg.nms_conf_thresh``)."""
        cfg = self.cfg
        probs = torch.sigmoid(raw["class_logits"][image].float())                      # [L,C]
        centre = torch.sigmoid(raw["centerness"][image].float())                      # [L]
        conf_threshold = cfg.nms_conf_thresh if conf_threshold is None else conf_threshold
        location, label = torch.nonzero(probs > conf_threshold, as_tuple=True)
        scores = torch.sqrt(probs[location, label] * centre[location])
        top = scores.topk(min(cfg.pre_nms_top_n, len(scores))).indices
        location, label, scores = location[top], label[top], scores[top]
        points, _ = self.locations(probs.device)
        boxes = ltrb_to_boxes(points[location], raw["ltrb"][image, location].float()).clamp(0, cfg.max_size)
        keep = batched_nms(boxes, scores, label, cfg.nms_iou_thresh if iou_threshold is None else iou_threshold)
        keep = keep[scores[keep] >= score_threshold][:cfg.max_detections if top_k is None else top_k]
        return {"location": location[keep], "boxes": boxes[keep], "scores": scores[keep], "labels": label[keep]}


__all__ = ["FCOSConfig", "FCOSHead", "FCOSSegmenter", "Assignment", "fcos_targets", "centerness_target",
           "location_grid", "ltrb_to_boxes", "conv_gn_relu", "INF", "TINY_RECIPE"]
