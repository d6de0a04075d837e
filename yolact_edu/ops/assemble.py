"""Mask assembly, paper §3.2 eq. 1:  M = sigmoid(P C^T), then crop, upsample, threshold.

Each step is its own function so notebooks and widgets can show the stages one
by one; :func:`assemble_masks` chains them as inference does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .boxes import crop


def linear_combination(proto: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
    """Prototypes [Hp,Wp,k] (>= 0) times coefficients [n,k] (in [-1,1]) -> logits [Hp,Wp,n]."""
    return proto @ coefs.t()


def upsample_masks(masks: torch.Tensor, height: int, width: int,
                   mode: str = "bilinear") -> torch.Tensor:
    """Soft masks [n,Hp,Wp] -> [n,height,width] by interpolation (align_corners=False)."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, height, width))
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(masks[None], (height, width), mode=mode, **kwargs)[0]


def assemble_masks(proto: torch.Tensor, coefs: torch.Tensor, boxes: torch.Tensor,
                   crop_masks: bool = True) -> torch.Tensor:
    """Soft instance masks at prototype resolution.

    proto [Hp,Wp,k]; coefs [n,k]; boxes [n,4] relative point form (used for the
    crop, padded by 1 proto pixel). Returns [n,Hp,Wp] in [0,1], zero outside the
    box when ``crop_masks``. Cropping happens before upsampling, as the original.
    """
    masks = torch.sigmoid(linear_combination(proto, coefs))
    if crop_masks:
        masks = crop(masks, boxes)
    return masks.permute(2, 0, 1).contiguous()


UPSAMPLE_CHUNK_BYTES = 64 * 2**20   # float32 working memory of one upsampling step


def masks_to_image(masks: torch.Tensor, height: int, width: int, threshold: float = 0.5,
                   mode: str = "bilinear") -> torch.Tensor:
    """Soft masks [n,Hp,Wp] -> bool masks [n,height,width]: upsample, then ``> threshold``.

    Upsampled a few masks at a time, so the float32 intermediate stays near 64 MB whatever the
    image size (a 12-megapixel photo needs 48 MB per mask); only the bool result is held whole.
    """
    out = torch.empty((masks.shape[0], height, width), dtype=torch.bool, device=masks.device)
    per_step = max(1, UPSAMPLE_CHUNK_BYTES // (4 * height * width))
    for start in range(0, masks.shape[0], per_step):
        out[start:start + per_step] = upsample_masks(masks[start:start + per_step], height, width, mode) > threshold
    return out


def mask_stages(proto: torch.Tensor, coefs: torch.Tensor, box: torch.Tensor, *,
                enabled: torch.Tensor | None = None, crop_mask: bool = True,
                threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Every intermediate of eq. 1 for ONE detection, for showing the assembly step by step
    (notebook 02 and :class:`yolact_edu.widgets.PrototypeExplorer`).

    proto [Hp,Wp,k] (>= 0); coefs [k] in [-1,1]; box [4] relative (x1,y1,x2,y2), as
    ``Detections.boxes_rel``; enabled [k] bool, False switches a prototype off (default: all on).

    Returns a dict of float tensors:
      "contributions" [k,Hp,Wp]  c_i * P_i (zero for switched-off prototypes), signed
      "running_sum"   [k,Hp,Wp]  sum of the first i+1 contributions; the last one is the logits
      "logits"        [Hp,Wp]    P c, unbounded
      "sigmoid"       [Hp,Wp]    in (0,1)
      "cropped"       [Hp,Wp]    in [0,1], zero outside the (1-px padded) box when ``crop_mask``
      "mask"          [Hp,Wp]    bool, cropped > threshold
    With all prototypes on, "cropped" equals :func:`assemble_masks` for that detection.
    """
    proto, coefs = proto.float(), coefs.float()
    k = proto.shape[-1]
    if coefs.shape != (k,):
        raise ValueError(f"coefs must have shape ({k},) to match {k} prototypes, got {tuple(coefs.shape)}")
    if enabled is not None:
        enabled = torch.as_tensor(enabled, dtype=torch.bool, device=coefs.device)
        if enabled.shape != (k,):
            raise ValueError(f"enabled must have shape ({k},), got {tuple(enabled.shape)}")
        coefs = coefs * enabled
    contributions = proto.permute(2, 0, 1) * coefs[:, None, None]
    running_sum = contributions.cumsum(0)
    logits = running_sum[-1] if k else proto.new_zeros(proto.shape[:2])
    sigmoid = torch.sigmoid(logits)
    cropped = crop(sigmoid[..., None], box.float()[None])[..., 0] if crop_mask else sigmoid
    return {"contributions": contributions, "running_sum": running_sum, "logits": logits,
            "sigmoid": sigmoid, "cropped": cropped, "mask": cropped > threshold}


def reassemble(detections, coefs: torch.Tensor | None = None, *, crop: bool = True,
               threshold: float = 0.5) -> torch.Tensor:
    """A :class:`~yolact_edu.Detections`' masks [N,H,W] bool rebuilt from its prototypes with
    ``coefs`` [N,k] (default: its own) — e.g. ``coefs.clamp(min=0)`` to see what a mask would be
    if prototypes could only be added, never subtracted."""
    coefs = detections.coefs if coefs is None else coefs
    height, width = detections.image_size
    soft = assemble_masks(detections.proto, coefs.float(), detections.boxes_rel, crop_masks=crop)
    return masks_to_image(soft, height, width, threshold)


def crop_removes(proto: torch.Tensor, coefs: torch.Tensor, boxes: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """How much the crop does for each detection: [n] int, the prototype-grid cells whose
    assembled mask exceeds ``threshold`` outside the detection's box (they would be mask
    without the crop). proto [Hp,Wp,k]; coefs [n,k]; boxes [n,4] relative point form."""
    whole = assemble_masks(proto, coefs, boxes, crop_masks=False) > threshold
    cropped = assemble_masks(proto, coefs, boxes, crop_masks=True) > threshold
    return (whole & ~cropped).flatten(1).sum(1)

