"""The YOLACT / YOLACT++ training loss (paper §3.1; YOLACT++ §3.2), as the original's ``MultiBoxLoss``.

Three steps, each its own function so a notebook can show them one at a time:

1. :func:`match_priors` labels every prior of one image: positive (a ground-truth
   class), background, or neutral (ignored), and gives it a box target.
2. :func:`hard_negative_mining` keeps only the most confidently wrong background
   priors, 3 per positive (OHEM), for the class loss.
3. :class:`YolactLoss` adds the box, class, mask (linear combination of
   prototypes, paper eq. 1), semantic segmentation and, for YOLACT++, mask-IoU losses.

Normalisation (``shared/reference/yolact_reference.md`` §2.3): box, conf, mask and
maskiou are sums divided by N_pos, the number of positive priors in the whole batch;
segm is divided by the batch size. The numbers agree with the original on batches it
can run (every image with at least one non-crowd object). Where the original has no
answer we choose: N_pos is clamped to >= 1, and an image without positives still mines
``ohem_negpos_ratio`` hard negatives (the original mines none there and divides by 0).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .ops.boxes import crop, encode, jaccard, point_form
from .ops.mask_iou import paired_mask_iou

# Label of a prior that neither counts as object nor as background.
NEUTRAL = -1


class PriorTargets(NamedTuple):
    """What one image asks of each of its P priors.

    labels   [P] int64: -1 neutral (no class loss), 0 background, c+1 for 0-based class c
    gt_index [P] int64: index of the matched ground-truth box (meaningful where labels > 0)
    loc      [P,4] float: SSD regression targets for the matched box (meaningful where labels > 0)
    """

    labels: torch.Tensor
    gt_index: torch.Tensor
    loc: torch.Tensor


def match_priors(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, priors: torch.Tensor,
                 crowd_boxes: torch.Tensor | None = None, pos_threshold: float = 0.5,
                 neg_threshold: float = 0.4, crowd_iou_threshold: float = 0.7) -> PriorTargets:
    """Assign ground truth to the priors of one image (the original's ``match``).

    gt_boxes [G,4] point form, relative (0..1); gt_labels [G] int64 0-based;
    priors [P,4] (cx, cy, w, h); crowd_boxes [K,4] point form or None.

    Each prior takes the box it overlaps most. Overlap >= pos_threshold -> positive,
    < neg_threshold -> background, in between -> neutral. Before thresholding, every
    box claims one prior so that no object goes untrained, however badly the anchors
    fit it ("less greedy" matching): G times, the largest remaining (box, prior)
    overlap wins, and both its row and column leave the contest. Finally background
    and neutral priors lying more than ``crowd_iou_threshold`` inside a crowd region
    (intersection / prior area) turn neutral: a crowd of people is no background.
    """
    num_priors = priors.shape[0]
    prior_boxes = point_form(priors)
    if gt_boxes.shape[0] == 0:
        labels = torch.zeros(num_priors, dtype=torch.long, device=priors.device)
        gt_index = torch.zeros_like(labels)
        loc = priors.new_zeros((num_priors, 4))
    else:
        overlaps = jaccard(gt_boxes, prior_boxes)                    # [G,P]
        best_overlap, gt_index = overlaps.max(0)
        for _ in range(gt_boxes.shape[0]):
            # Same two-step max as the original so ties resolve identically.
            best_prior_overlap, best_prior = overlaps.max(1)
            box = best_prior_overlap.max(0)[1]
            prior = best_prior[box]
            overlaps[:, prior] = -1
            overlaps[box, :] = -1
            best_overlap[prior] = 2                                  # survives any threshold
            gt_index[prior] = box
        labels = gt_labels[gt_index] + 1
        labels[best_overlap < pos_threshold] = NEUTRAL
        labels[best_overlap < neg_threshold] = 0
        loc = encode(gt_boxes[gt_index], priors)
    if crowd_boxes is not None and crowd_boxes.shape[0] > 0 and crowd_iou_threshold < 1:
        inside_crowd = jaccard(prior_boxes, crowd_boxes, iscrowd=True).max(1)[0]
        labels[(labels <= 0) & (inside_crowd > crowd_iou_threshold)] = NEUTRAL
    return PriorTargets(labels, gt_index, loc)


def hard_negative_mining(conf: torch.Tensor, labels: torch.Tensor, negpos_ratio: int = 3) -> torch.Tensor:
    """Online hard example mining: which background priors train the class loss.

    conf [B,P,C+1] logits; labels [B,P] from :func:`match_priors`. Returns a bool
    mask [B,P] of at most ``negpos_ratio * max(num_pos, 1)`` (and <= P-1) background
    priors per image, those with the highest background loss
    ``logsumexp(logits) - logits[0]`` (= -log softmax[0]).
    """
    batch_size, num_priors, num_columns = conf.shape
    with torch.no_grad():
        flat = conf.reshape(-1, num_columns)
        # logsumexp shifted by the max of the whole batch, exactly as the original, so
        # the ranking (and therefore which priors are picked) agrees bit for bit.
        shift = flat.max()
        score = torch.log(torch.sum(torch.exp(flat - shift), 1)) + shift - flat[:, 0]
        score = score.view(batch_size, num_priors)
        pos, neutral = labels > 0, labels < 0
        score[pos | neutral] = 0
        _, order = score.sort(1, descending=True)
        _, rank = order.sort(1)
        # An image without objects has no positives; the original would mine nothing
        # there. We still take negpos_ratio negatives so it learns to stay quiet.
        num_pos = pos.long().sum(1, keepdim=True).clamp(min=1)
        num_neg = torch.clamp(negpos_ratio * num_pos, max=num_priors - 1)
        return (rank < num_neg) & ~pos & ~neutral


class YolactLoss(nn.Module):
    """YOLACT's multi-task loss; ``YolactLoss(cfg)(raw, targets, maskiou_net=None)``.

    raw: the dict of ``Yolact.forward`` in training mode:
        loc [B,P,4] SSD regressions; conf [B,P,C+1] logits (column 0 = background);
        coef [B,P,k] in [-1,1]; proto [B,Hp,Wp,k] >= 0; priors [P,4] (cx,cy,w,h);
        segm [B,C,H3,W3] semantic logits.
    targets: one dict per image: boxes [n,4] xyxy relative (0..1), labels [n] int64
        0-based, masks [n,S,S] {0,1} at input resolution, iscrowd [n] bool (optional).
        Boxes must have positive width and height (the data pipeline drops others).
    maskiou_net: YOLACT++ only (``model.maskiou_net``): soft masks [n,1,Hp,Wp] -> [n,C].

    Returns scalar float32 tensors "box", "conf", "mask", "segm" (+ "maskiou" when
    ``cfg.use_maskiou``), each >= 0 and already weighted and normalised; the total
    is their sum. Computed in float32 even under autocast.
    """

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def forward(self, raw: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]],
                maskiou_net: nn.Module | None = None) -> dict[str, torch.Tensor]:
        if self.cfg.use_maskiou and maskiou_net is None:
            raise ValueError(f"config {self.cfg.name!r} trains YOLACT++ mask re-scoring: pass "
                             "maskiou_net=model.maskiou_net to YolactLoss")
        if len(targets) != raw["loc"].shape[0]:
            raise ValueError(f"got {len(targets)} targets for a batch of {raw['loc'].shape[0]} images")
        device = raw["loc"].device
        # Losses are sums over thousands of terms: float32, whatever the forward pass used.
        with torch.autocast(device.type, enabled=False):
            raw = {key: value.float() for key, value in raw.items()}
            objects, crowds = zip(*(self._split_crowds(t, device) for t in targets))
            matched = [match_priors(o["boxes"], o["labels"], raw["priors"], c,
                                    self.cfg.positive_iou_threshold, self.cfg.negative_iou_threshold,
                                    self.cfg.crowd_iou_threshold) for o, c in zip(objects, crowds)]
            labels = torch.stack([m.labels for m in matched])        # [B,P]
            loc_targets = torch.stack([m.loc for m in matched])      # [B,P,4]
            pos = labels > 0
            num_pos = pos.sum().clamp(min=1).float()

            losses = {
                "box": F.smooth_l1_loss(raw["loc"][pos], loc_targets[pos], reduction="sum") * self.cfg.bbox_alpha,
                "conf": self._conf_loss(raw["conf"], labels),
            }
            losses["mask"], maskiou_samples = self._mask_loss(raw, objects, matched)
            if self.cfg.use_maskiou:
                losses["maskiou"] = self._maskiou_loss(maskiou_net, *maskiou_samples)
            losses = {key: value / num_pos for key, value in losses.items()}
            losses["segm"] = self._semantic_loss(raw["segm"], objects)
        return {key: losses[key] for key in ("box", "conf", "mask", "segm", "maskiou") if key in losses}

    # -- targets ------------------------------------------------------------------------------
    @staticmethod
    def _split_crowds(target: dict[str, torch.Tensor], device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One image's targets -> (non-crowd objects on ``device``, crowd boxes [K,4])."""
        boxes = torch.as_tensor(target["boxes"], dtype=torch.float32, device=device).reshape(-1, 4)
        iscrowd = target.get("iscrowd")
        iscrowd = (torch.zeros(boxes.shape[0], dtype=torch.bool, device=device) if iscrowd is None
                   else torch.as_tensor(iscrowd, device=device).bool().reshape(-1))
        keep = ~iscrowd
        objects = {"boxes": boxes[keep],
                   "labels": torch.as_tensor(target["labels"], device=device).long().reshape(-1)[keep],
                   "masks": torch.as_tensor(target["masks"], device=device).float()[keep]}
        return objects, boxes[iscrowd]

    @staticmethod
    def _downsample(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """GT masks [n,S,S] -> binary float masks [n,h,w]: bilinear (align_corners=False), > 0.5."""
        if masks.shape[0] == 0:
            return masks.new_zeros((0, *size))
        return F.interpolate(masks[None], size, mode="bilinear", align_corners=False)[0].gt(0.5).float()

    # -- losses (sums; the caller normalises) ---------------------------------------------
    def _conf_loss(self, conf: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy summed over positives and mined hard negatives."""
        train = (labels > 0) | hard_negative_mining(conf, labels, self.cfg.ohem_negpos_ratio)
        return F.cross_entropy(conf[train], labels[train], reduction="sum") * self.cfg.conf_alpha

    def _mask_loss(self, raw: dict[str, torch.Tensor], objects, matched):
        """Mask loss summed over images, and the samples the mask-IoU head trains on.

        Per positive prior: pred = sigmoid(proto @ coef), cropped to its GT box (the
        paper's "Cropping Masks": the crop is part of training too), BCE per pixel
        against the GT mask at proto resolution, summed and divided by the GT box area
        in proto pixels (so a small object weighs as much as a big one, as RoI pooling
        would make it). The sum over images is weighted by ``mask_alpha``.
        """
        proto = raw["proto"]
        height, width = proto.shape[1:3]
        # Zero that still depends on coef and proto: a batch without objects then gives
        # them zero gradients instead of none (DistributedDataParallel expects every one).
        total = (raw["coef"].sum() + proto.sum()) * 0
        maskiou_inputs, maskiou_targets, maskiou_labels = [], [], []
        for image, (obj, m) in enumerate(zip(objects, matched)):
            pos = m.labels > 0
            gt_index = m.gt_index[pos]
            coef = raw["coef"][image, pos]
            num_pos = gt_index.shape[0]
            if num_pos == 0:
                continue
            if num_pos > self.cfg.masks_to_train:
                # Memory cap: train a random subset and scale it up to stand for all.
                select = torch.randperm(num_pos)[: self.cfg.masks_to_train].to(gt_index.device)
                gt_index, coef = gt_index[select], coef[select]
            gt_masks = self._downsample(obj["masks"], (height, width)).permute(1, 2, 0)[:, :, gt_index]
            gt_boxes = obj["boxes"][gt_index]
            pred = crop(torch.sigmoid(proto[image] @ coef.t()), gt_boxes)   # [Hp,Wp,n]
            # binary_cross_entropy clamps log() at -100, which keeps saturated pixels finite.
            bce = F.binary_cross_entropy(pred.clamp(0, 1), gt_masks, reduction="none").sum((0, 1))
            box_area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * width * ((gt_boxes[:, 3] - gt_boxes[:, 1]) * height)
            total = total + (bce / box_area).sum() * (num_pos / coef.shape[0])

            if self.cfg.use_maskiou:
                keep = slice(None)
                if self.cfg.discard_mask_area > 0:  # tiny masks give too noisy an IoU target
                    keep = gt_masks.sum((0, 1)) > self.cfg.discard_mask_area
                maskiou_inputs.append(pred[:, :, keep].permute(2, 0, 1).unsqueeze(1))
                with torch.no_grad():
                    maskiou_targets.append(paired_mask_iou(pred[:, :, keep].gt(0.5).permute(2, 0, 1),
                                                           gt_masks[:, :, keep].permute(2, 0, 1)))
                maskiou_labels.append(obj["labels"][gt_index][keep])
        return total * self.cfg.mask_alpha, (proto, maskiou_inputs, maskiou_targets, maskiou_labels)

    def _maskiou_loss(self, maskiou_net: nn.Module, proto: torch.Tensor, inputs, targets, labels) -> torch.Tensor:
        """YOLACT++: smooth-L1 between the predicted IoU of each mask (at its GT class)
        and its real IoU with the GT. The input masks are not detached, as in the original."""
        if not inputs:  # still run the head on an empty batch: zero gradients, same graph every step
            inputs = [proto.new_zeros((0, 1, *proto.shape[1:3]))]
            targets, labels = [proto.new_zeros(0)], [torch.zeros(0, dtype=torch.long, device=proto.device)]
        predicted = maskiou_net(torch.cat(inputs)).float()
        predicted = predicted.gather(1, torch.cat(labels)[:, None]).view(-1)
        return F.smooth_l1_loss(predicted, torch.cat(targets), reduction="sum") * self.cfg.maskiou_alpha

    def _semantic_loss(self, segm: torch.Tensor, objects) -> torch.Tensor:
        """Per-pixel multi-label BCE on P3 against the union of each class's (non-crowd)
        GT masks, / (H3*W3) per image, averaged over the batch (paper §5 "Semantic
        Segmentation Loss": richer features at no inference cost)."""
        batch_size, num_classes, height, width = segm.shape
        total = segm.new_zeros(())
        for image, obj in enumerate(objects):
            masks = self._downsample(obj["masks"], (height, width)).flatten(1)        # [n,H3*W3]
            # Pixel-wise max over the instances of each class: the class's union mask.
            target = segm.new_zeros((num_classes, height * width)).scatter_reduce_(
                0, obj["labels"][:, None].expand_as(masks), masks, "amax").view(num_classes, height, width)
            total = total + F.binary_cross_entropy_with_logits(segm[image], target, reduction="sum")
        return total / (height * width) * self.cfg.semantic_segmentation_alpha / batch_size


__all__ = ["YolactLoss", "PriorTargets", "match_priors", "hard_negative_mining", "NEUTRAL"]
