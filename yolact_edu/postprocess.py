"""From raw network outputs to :class:`Detections` (paper §3.2-3.4).

Softmax the class logits, decode the boxes, keep priors whose best foreground score beats the
candidate threshold, run NMS, assemble the masks from prototypes and coefficients, crop, upsample
to the image, threshold: the original's ``Detect`` + ``postprocess``, step for step, with the same
results. One path serves every setting and runs the whole batch at once (:func:`detect`); the
lessons show the same steps on one image (:func:`prior_candidates`, :func:`~yolact_edu.ops.nms.run_nms`).
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
from .ops.nms import NMS_KINDS, batched_fast_nms, run_nms


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
    if nms not in NMS_KINDS:
        raise ValueError(f"nms must be one of {', '.join(NMS_KINDS)}, got {nms!r}")
    check_output_cap(top_k)
    for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold),
                        ("conf_threshold", conf_threshold), ("mask_threshold", mask_threshold)):
        check_fraction(name, value)


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
        "priors" [P,4] (fp16/bf16 tensors are read as float32).
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

    One path for every setting, the whole batch at once: :func:`kept_after_nms` (softmax, decode,
    NMS) gives fixed-size [B,D] tensors, which are gathered and assembled on the device (for
    class-specific Fast NMS no step waits for the host, so a GPU runs it without a pause); the one
    synchronisation is reading how many detections each image kept, after which only those masks
    are upsampled to the image, each only inside its box's window when cropped
    (:func:`~yolact_edu.ops.assemble.masks_to_image_in_boxes`: the same masks as upsampling all).
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
    with stage_timer(timings, "decode + NMS", device):
        boxes, prior_idx, labels, scores, valid = kept_after_nms(raw, kind, iou_threshold, cfg.nms_top_k,
                                                                 conf_threshold, max_detections)
        if score_threshold > 0:
            valid &= scores >= score_threshold           # scores are sorted: the valid ones stay first
        kept_boxes = boxes.gather(1, prior_idx[..., None].expand(-1, -1, 4))           # [B,D,4]
        coef = raw["coef"][..., :used].float()
        kept_coefs = coef.gather(1, prior_idx[..., None].expand(-1, -1, used))         # [B,D,used]
    proto = raw["proto"][..., :used].float()
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


def candidate_priors(raw: dict, conf_threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What NMS sees, for the whole batch: softmax the class logits, decode every prior's box, and
    mark the priors whose best foreground score is > ``conf_threshold``.

    Returns (candidates [B,P] bool, boxes [B,P,4] point form relative to the input (unclamped),
    class_scores [B,P,C] in [0,1], background dropped)."""
    class_scores = F.softmax(raw["conf"].float(), dim=-1)[..., 1:]                      # [B,P,C]
    candidates = class_scores.max(dim=-1).values > conf_threshold                      # [B,P]
    boxes = decode(raw["loc"].float(), raw["priors"].float())                          # [B,P,4]
    return candidates, boxes, class_scores


def prior_candidates(raw: dict, b: int, conf_threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`candidate_priors` for image ``b`` alone, the candidates picked out (what the lessons
    show NMS). Returns (candidates [P] bool, boxes [n,4], class_scores [C,n]), n = candidates.sum()."""
    one = {key: raw[key][b:b + 1] for key in ("conf", "loc")}
    candidates, boxes, class_scores = candidate_priors({**one, "priors": raw["priors"]}, conf_threshold)
    candidates = candidates[0]
    return candidates, boxes[0, candidates], class_scores[0, candidates].t()


def kept_after_nms(raw: dict, kind: str, iou_threshold: float, nms_top_k: int, conf_threshold: float,
                   max_detections: int | None):
    """Softmax, decode and NMS for the whole batch, as fixed-size tensors.

    Returns (boxes [B,P,4] every prior's decoded box, prior_idx [B,D] int64, labels [B,D] 0-based,
    scores [B,D], valid [B,D] bool), each image's kept detections first, sorted by score, D >= 1.
    Class-specific Fast NMS runs on the batch at once (:func:`~yolact_edu.ops.nms.batched_fast_nms`);
    the other kinds run image by image (:func:`~yolact_edu.ops.nms.run_nms`) and are padded to D.
    """
    candidates, boxes, class_scores = candidate_priors(raw, conf_threshold)
    if kind == "fast":
        prior_idx, labels, scores, valid = batched_fast_nms(boxes, class_scores.transpose(1, 2), candidates,
                                                            iou_threshold, nms_top_k, max_detections)
        return boxes, prior_idx, labels, scores, valid
    # run_nms picks each image's candidates itself, by the same conf_threshold
    per_image = [run_nms(kind, boxes[b], class_scores[b].t(), iou_threshold=iou_threshold, nms_top_k=nms_top_k,
                         conf_threshold=conf_threshold, max_detections=max_detections)
                 for b in range(boxes.shape[0])]
    width = max([1] + [len(keep) for keep, _, _ in per_image])
    prior_idx, labels, scores, valid = (torch.zeros((len(per_image), width), dtype=dtype, device=boxes.device)
                                        for dtype in (torch.int64, torch.int64, torch.float32, torch.bool))
    for b, (keep, kept_labels, kept_scores) in enumerate(per_image):
        n = len(keep)
        prior_idx[b, :n], labels[b, :n], scores[b, :n], valid[b, :n] = keep, kept_labels, kept_scores, True
    return boxes, prior_idx, labels, scores, valid
