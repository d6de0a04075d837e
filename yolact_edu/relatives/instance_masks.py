"""From each relative's per-instance masks to :class:`~yolact_edu.detections.Detections`, and the
ground truth its mask losses compare against.

Two kinds of mask come out of the relatives:

* image-wide probabilities [n,h,w] at a fraction of the input (CondInst, SOLOv2: no box in the
  assembly step), resized to the image and thresholded (:func:`detections_from_image_masks`);
* per-RoI probabilities [n,R,R] inside a box (BlendMask, CenterMask, Mask R-CNN), pasted into
  the box at image size (:func:`detections_from_roi_masks`).

Both go to image size a few masks at a time, within YOLACT's float32 budget
(:data:`~yolact_edu.ops.assemble.UPSAMPLE_CHUNK_BYTES`), so that on a 12-megapixel photo only the
bool masks are held whole, never a float32 copy of all of them (48 MB a mask).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import masks_to_boxes, roi_align

from ..detections import Detections
from ..ops.assemble import mask_chunks


def _to_image(boxes: torch.Tensor, input_size: int, height: int, width: int) -> torch.Tensor:
    scale = boxes.new_tensor([width / input_size, height / input_size] * 2)
    image_boxes = boxes * scale
    image_boxes[:, 0::2] = image_boxes[:, 0::2].clamp(0, width)
    image_boxes[:, 1::2] = image_boxes[:, 1::2].clamp(0, height)
    return image_boxes


def detections_from_roi_masks(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                              roi_probs: torch.Tensor, input_size: int, image_size: tuple[int, int],
                              class_names, mask_threshold: float = 0.5) -> Detections:
    """boxes [n,4] xyxy input px (the input is a stretch of the image), scores [n], labels [n]
    0-based, roi_probs [n,R,R] in [0,1] -> Detections with each mask pasted into its box."""
    height, width = (int(v) for v in image_size)
    image_boxes = _to_image(boxes.float(), input_size, height, width)
    masks = torch.zeros((len(boxes), height, width), dtype=torch.bool, device=boxes.device)
    for chunk in mask_chunks(len(boxes), height, width):         # each paste is a float32 image per mask
        masks[chunk] = paste_masks_in_image(roi_probs[chunk, None].float(), image_boxes[chunk],
                                            (height, width))[:, 0] > mask_threshold
    return Detections(boxes=image_boxes, scores=scores.float(), labels=labels, masks=masks,
                      boxes_rel=boxes.float() / input_size, class_names=class_names)


def detections_from_image_masks(scores: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor,
                                input_size: int, image_size: tuple[int, int], class_names,
                                boxes: torch.Tensor | None = None, mask_threshold: float = 0.5,
                                crop: bool = False) -> Detections:
    """probs [n,h,w] in [0,1] covering the whole input -> Detections at image size (bilinear, then
    the threshold). boxes: [n,4] input px from a detector, or None to take each mask's own box
    (SOLOv2 predicts no boxes; an empty mask gets a zero box). crop: zero each mask outside its
    box (needs ``boxes``)."""
    height, width = (int(v) for v in image_size)
    masks = torch.zeros((len(probs), height, width), dtype=torch.bool, device=probs.device)
    for chunk in mask_chunks(len(probs), height, width):        # bilinear, each mask alone, as F.interpolate
        masks[chunk] = F.interpolate(probs[chunk, None].float(), (height, width), mode="bilinear",
                                     align_corners=False)[:, 0] > mask_threshold
    if boxes is None:
        image_boxes = torch.zeros((len(masks), 4), device=masks.device)
        filled = masks.flatten(1).any(1)
        if filled.any():
            found = masks_to_boxes(masks[filled])
            found[:, 2:] += 1                                   # exclusive right/bottom edge, as pixels
            image_boxes[filled] = found
        boxes_rel = image_boxes / image_boxes.new_tensor([width, height, width, height])
    else:
        image_boxes = _to_image(boxes.float(), input_size, height, width)
        boxes_rel = boxes.float() / input_size
        if crop:
            masks &= box_windows(image_boxes, height, width)
    return Detections(boxes=image_boxes, scores=scores.float(), labels=labels, masks=masks,
                      boxes_rel=boxes_rel, class_names=class_names)


def box_windows(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """boxes [n,4] xyxy image px -> [n,height,width] bool, True on the pixels whose centre lies in the box."""
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5
    inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])        # [n,H]
    inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])        # [n,W]
    return inside_y[:, :, None] & inside_x[:, None, :]


def roi_mask_targets(masks: torch.Tensor, boxes: torch.Tensor, resolution: int) -> torch.Tensor:
    """The ground truth inside boxes: masks [n,S,S] {0,1}, boxes [n,4] xyxy px on that grid ->
    [n,R,R] in {0,1} (RoIAlign, then >= 0.5, as Mask R-CNN builds its targets)."""
    if len(boxes) == 0:
        return masks.new_zeros((0, resolution, resolution))
    index = torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None]
    crops = roi_align(masks[:, None].float(), torch.cat([index, boxes], 1), resolution, 1.0, 2, aligned=True)
    return (crops[:, 0] >= 0.5).float()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """logits [n,H,W], targets [n,H,W] in [0,1] -> [n]: 1 - 2|p t| / (|p|^2 + |t|^2), the mask
    loss of CondInst and SOLOv2 (indifferent to how much of the image is background)."""
    probs = torch.sigmoid(logits).flatten(1)
    targets = targets.flatten(1)
    return 1 - 2 * (probs * targets).sum(1) / ((probs ** 2).sum(1) + (targets ** 2).sum(1) + eps)


__all__ = ["detections_from_roi_masks", "detections_from_image_masks", "roi_mask_targets", "dice_loss"]
