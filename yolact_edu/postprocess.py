"""From raw network outputs to :class:`Detections` (paper §3.2-3.4).

Per image: softmax the class logits, decode the boxes, keep priors whose best
foreground score beats the candidate threshold, run NMS, assemble the masks
from prototypes and coefficients, crop, upsample to the image, threshold.
This mirrors the original's ``Detect`` + ``postprocess`` step for step.
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import torch
import torch.nn.functional as F

from .bench.timing import stage_timer
from .detections import Detections
from .ops.assemble import assemble_masks, masks_to_image, masks_to_image_in_boxes
from .ops.boxes import decode, sanitize_coordinates
from .ops.nms import NMS_FUNCTIONS, batched_fast_nms, standard_nms


def _empty(proto: torch.Tensor, num_protos: int, height: int, width: int,
           rescored: bool, class_names) -> Detections:
    device = proto.device
    return Detections(
        boxes=torch.zeros((0, 4), device=device), scores=torch.zeros(0, device=device),
        labels=torch.zeros(0, dtype=torch.int64, device=device),
        masks=torch.zeros((0, height, width), dtype=torch.bool, device=device),
        coefs=torch.zeros((0, num_protos), device=device), proto=proto,
        mask_scores=torch.zeros(0, device=device) if rescored else None,
        boxes_rel=torch.zeros((0, 4), device=device), class_names=class_names)


def check_fraction(name: str, value) -> None:
    """A ValueError unless ``value`` is a number in [0, 1] (a bool is not one): every threshold of
    every family's post-processing is checked here."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def check_output_cap(top_k) -> None:
    """A ValueError unless ``top_k`` (the cap on detections per image) is None or a whole number >= 1."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, Integral) or top_k < 1):
        raise ValueError(f"top_k must be a whole number >= 1 (or None for the config's), got {top_k!r}")


def check_detect_options(nms: str, top_k: int | None, score_threshold: float, iou_threshold: float,
                         conf_threshold: float, mask_threshold: float) -> None:
    """Refuse settings that make no sense before any work (an unknown NMS name would otherwise
    pass unnoticed on an image without candidates)."""
    if nms not in NMS_FUNCTIONS:
        raise ValueError(f"nms must be one of {', '.join(NMS_FUNCTIONS)}, got {nms!r}")
    check_output_cap(top_k)
    for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold),
                        ("conf_threshold", conf_threshold), ("mask_threshold", mask_threshold)):
        check_fraction(name, value)


def run_nms(boxes: torch.Tensor, scores: torch.Tensor, kind: str, iou_threshold: float,
            nms_top_k: int, conf_threshold: float, max_detections: int | None):
    """Dispatch to one of the NMS variants; returns (keep_idx, classes, scores)."""
    if kind not in NMS_FUNCTIONS:
        raise ValueError(f"nms must be one of {', '.join(NMS_FUNCTIONS)}, got {kind!r}")
    if kind == "standard":
        return standard_nms(boxes, scores, iou_threshold, conf_threshold, max_detections)
    return NMS_FUNCTIONS[kind](boxes, scores, iou_threshold, nms_top_k, max_detections)


@torch.no_grad()
def per_image_sizes(image_sizes, batch: int) -> list[tuple[int, int]]:
    """``detect``'s ``image_sizes``, a (height, width) per image or one pair for all, as one pair
    per image of the batch; a ValueError when the count does not match."""
    if isinstance(image_sizes[0], int):
        image_sizes = [tuple(image_sizes)] * batch
    if len(image_sizes) != batch:
        raise ValueError(f"got {len(image_sizes)} image sizes for a batch of {batch}")
    return list(image_sizes)


def detect(raw: dict, cfg, image_sizes: Sequence[tuple[int, int]] | tuple[int, int], *,
           score_threshold: float = 0.0, top_k: int | None = None, nms: str | None = "fast",
           iou_threshold: float | None = None, crop: bool = True, mask_threshold: float = 0.5,
           conf_threshold: float | None = None, interpolation: str = "bilinear",
           maskiou_net: torch.nn.Module | None = None, num_protos: int | None = None,
           timings: dict | None = None) -> list[Detections]:
    """Turn the raw dict of :meth:`Yolact.forward` into one :class:`Detections` per image.

    raw: "loc" [B,P,4], "conf" [B,P,C+1] logits, "coef" [B,P,k], "proto" [B,Hp,Wp,k],
        "priors" [P,4].
    image_sizes: (height, width) of each original image (one pair for all images).
    score_threshold: keep detections scoring >= this (0 keeps all, as for mAP).
    top_k: keep at most this many per image; None means ``cfg.max_detections``
        (for "cross_class", None means no cap besides ``cfg.nms_top_k``, as the original).
    nms: "fast" (class-specific Fast NMS), "cross_class" or "standard"; None -> "fast".
    iou_threshold / conf_threshold: None means ``cfg.nms_iou_thresh`` / ``cfg.nms_conf_thresh``.
    crop: zero masks outside their (1-px padded) box; mask_threshold: binarisation level.
    maskiou_net: YOLACT++ re-scoring network; fills ``mask_scores``.
    num_protos: assemble masks from the first ``num_protos`` prototypes only (None: all k), to
        see what fewer prototypes can express; ``coefs`` and ``proto`` are cut to match.
    timings: a dict to which the seconds spent in "decode + NMS", "assembly + crop" and
        "upsample + threshold" are added (summed over the batch).
    """
    kind = nms or "fast"
    iou_threshold = cfg.nms_iou_thresh if iou_threshold is None else iou_threshold
    conf_threshold = cfg.nms_conf_thresh if conf_threshold is None else conf_threshold
    check_detect_options(kind, top_k, score_threshold, iou_threshold, conf_threshold, mask_threshold)
    max_detections = top_k if top_k is not None else (
        None if kind == "cross_class" else cfg.max_detections)
    batch = raw["loc"].shape[0]
    image_sizes = per_image_sizes(image_sizes, batch)
    device = raw["priors"].device
    total_protos = raw["proto"].shape[-1]
    if num_protos is not None and not 1 <= num_protos <= total_protos:
        raise ValueError(f"num_protos must be between 1 and {total_protos}, got {num_protos}")
    used = total_protos if num_protos is None else num_protos
    results = []
    for b, (height, width) in enumerate(image_sizes):
        proto = raw["proto"][b, ..., :used].float()
        with stage_timer(timings, "decode + NMS", device):
            boxes, coefs, keep, labels, scores = _candidates_after_nms(
                raw, b, used, kind, iou_threshold, conf_threshold, cfg.nms_top_k, max_detections,
                score_threshold)
        if boxes is None:
            results.append(_empty(proto, used, height, width, maskiou_net is not None, cfg.class_names))
            continue
        with stage_timer(timings, "assembly + crop", device):
            soft_masks = assemble_masks(proto, coefs, boxes, crop_masks=crop)
        mask_scores = None
        if maskiou_net is not None:
            if len(keep):
                predicted_iou = maskiou_net(soft_masks[:, None])
                predicted_iou = predicted_iou.gather(1, labels[:, None]).squeeze(1)
            else:
                predicted_iou = scores.new_zeros(0)
            mask_scores = scores * predicted_iou
        with stage_timer(timings, "upsample + threshold", device):
            masks = masks_to_image(soft_masks, height, width, mask_threshold, interpolation)
        results.append(_detections(boxes, scores, labels, masks, coefs, proto, mask_scores, cfg))
    return results


def _detections(boxes, scores, labels, masks, coefs, proto, mask_scores, cfg) -> Detections:
    """One image's Detections from its kept relative ``boxes`` [n,4] and image-size ``masks`` [n,H,W]."""
    height, width = masks.shape[-2:]
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    # Whole pixels, truncated as the original's postprocess does (``boxes.long()``), so boxes
    # and box AP agree with it exactly; the exact relative boxes stay in ``boxes_rel``.
    pixel_boxes = torch.stack([x1, y1, x2, y2], 1).long().float()
    return Detections(boxes=pixel_boxes, scores=scores, labels=labels, masks=masks, coefs=coefs, proto=proto,
                      mask_scores=mask_scores, boxes_rel=boxes, class_names=cfg.class_names)


def detect_batched(raw: dict, cfg, image_sizes: Sequence[tuple[int, int]] | tuple[int, int], *,
                   score_threshold: float = 0.0, top_k: int | None = None, iou_threshold: float | None = None,
                   crop: bool = True, mask_threshold: float = 0.5, conf_threshold: float | None = None,
                   interpolation: str = "bilinear", maskiou_net: torch.nn.Module | None = None,
                   timings: dict | None = None) -> list[Detections]:
    """:func:`detect` with class-specific Fast NMS, the whole batch at once (the fast path's
    post-processing, :meth:`InstanceSegmenter.optimize`).

    Softmax, decoding, Fast NMS (:func:`~yolact_edu.ops.nms.batched_fast_nms`), gathering the kept
    boxes and coefficients, mask assembly and crop all run on fixed-size [B,D,...] tensors, so a GPU
    never waits for the host; the one synchronisation is reading how many detections each image
    kept, after which only those masks are upsampled to the image, each only inside its box's window
    (:func:`~yolact_edu.ops.assemble.masks_to_image_in_boxes`). Same arguments and results as
    :func:`detect` with ``nms="fast"`` (raw tensors may be fp16/bf16: they are read as float32).
    """
    iou_threshold = cfg.nms_iou_thresh if iou_threshold is None else iou_threshold
    conf_threshold = cfg.nms_conf_thresh if conf_threshold is None else conf_threshold
    check_detect_options("fast", top_k, score_threshold, iou_threshold, conf_threshold, mask_threshold)
    max_detections = cfg.max_detections if top_k is None else top_k
    batch = raw["loc"].shape[0]
    image_sizes = per_image_sizes(image_sizes, batch)
    device = raw["priors"].device
    with stage_timer(timings, "decode + NMS", device):
        class_scores = F.softmax(raw["conf"].float(), dim=-1)[..., 1:]                  # [B,P,C]
        candidates = class_scores.max(dim=-1).values > conf_threshold                  # [B,P]
        boxes = decode(raw["loc"].float(), raw["priors"].float())                      # [B,P,4]
        prior_idx, labels, scores, valid = batched_fast_nms(
            boxes, class_scores.transpose(1, 2), candidates, iou_threshold, cfg.nms_top_k, max_detections)
        if score_threshold > 0:
            valid &= scores >= score_threshold
        kept_boxes = boxes.gather(1, prior_idx[..., None].expand(-1, -1, 4))           # [B,D,4]
        coef = raw["coef"].float()
        kept_coefs = coef.gather(1, prior_idx[..., None].expand(-1, -1, coef.shape[-1]))
    proto = raw["proto"].float()
    with stage_timer(timings, "assembly + crop", device):
        soft = torch.stack([assemble_masks(proto[b], kept_coefs[b], kept_boxes[b], crop_masks=crop)
                            for b in range(batch)])                                    # [B,D,Hp,Wp]
    mask_scores = None
    if maskiou_net is not None:       # YOLACT++: score x predicted mask IoU (D >= 1 always)
        predicted_iou = maskiou_net(soft.flatten(0, 1)[:, None]).view(batch, soft.shape[1], -1)
        mask_scores = scores * predicted_iou.gather(2, labels[..., None]).squeeze(2)
    counts = valid.sum(dim=1).tolist()      # the only host synchronisation; valid entries come first
    results = []
    for b, ((height, width), n) in enumerate(zip(image_sizes, counts)):
        with stage_timer(timings, "upsample + threshold", device):
            if crop and interpolation == "bilinear":    # the same masks, computed only inside the boxes
                masks = masks_to_image_in_boxes(soft[b, :n], kept_boxes[b, :n], height, width, mask_threshold)
            else:
                masks = masks_to_image(soft[b, :n], height, width, mask_threshold, interpolation)
        results.append(_detections(kept_boxes[b, :n], scores[b, :n], labels[b, :n], masks, kept_coefs[b, :n],
                                   proto[b], None if mask_scores is None else mask_scores[b, :n], cfg))
    return results


def prior_candidates(raw: dict, b: int, conf_threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What NMS sees for image ``b``: softmax the class logits, keep the priors whose best
    foreground score is > ``conf_threshold``, decode their boxes.

    Returns (candidates [P] bool, boxes [n,4] point form relative to the input (unclamped),
    class_scores [C,n] in [0,1], background dropped), n = candidates.sum()."""
    class_scores = F.softmax(raw["conf"][b].float(), dim=-1)[:, 1:].t()   # [C,P]
    candidates = class_scores.max(dim=0).values > conf_threshold
    boxes = decode(raw["loc"][b].float()[candidates], raw["priors"].float()[candidates])
    return candidates, boxes, class_scores[:, candidates]


def _candidates_after_nms(raw: dict, b: int, num_protos: int, kind: str,
                          iou_threshold: float, conf_threshold: float, nms_top_k: int,
                          max_detections: int | None, score_threshold: float):
    """Image ``b``'s surviving (boxes, coefs, keep, labels, scores), boxes and coefs already indexed
    by ``keep``; all None when no prior beats ``conf_threshold``."""
    candidates, boxes, class_scores = prior_candidates(raw, b, conf_threshold)
    if len(boxes) == 0:
        return None, None, None, None, None
    coefs = raw["coef"][b, :, :num_protos].float()[candidates]
    keep, labels, scores = run_nms(boxes, class_scores, kind, iou_threshold,
                                   nms_top_k, conf_threshold, max_detections)
    if score_threshold > 0:
        above = scores >= score_threshold
        keep, labels, scores = keep[above], labels[above], scores[above]
    return boxes[keep], coefs[keep], keep, labels, scores
