"""Mask assembly, paper §3.2 eq. 1:  M = sigmoid(P C^T), then crop, upsample, threshold.

Each step is its own function so notebooks and widgets can show the stages one
by one; :func:`assemble_masks` chains them as inference does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .boxes import crop, sanitize_coordinates


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
WINDOW_SHARE = 0.1   # windows above this share of the image: whole-image interpolation is faster


def mask_chunks(count: int, height: int, width: int) -> list[slice]:
    """Slices over ``count`` masks, each holding few enough that their float32 copies at
    ``height`` x ``width`` stay within ``UPSAMPLE_CHUNK_BYTES`` (at least one mask a slice): how
    every family brings its masks to image size without a float32 copy of all of them."""
    per_step = max(1, UPSAMPLE_CHUNK_BYTES // (4 * height * width))
    return [slice(start, start + per_step) for start in range(0, count, per_step)]


def masks_to_image(masks: torch.Tensor, height: int, width: int, threshold: float = 0.5,
                   mode: str = "bilinear") -> torch.Tensor:
    """Soft masks [n,Hp,Wp] -> bool masks [n,height,width]: upsample, then ``> threshold``.

    Upsampled a few masks at a time, so the float32 intermediate stays near 64 MB whatever the
    image size (a 12-megapixel photo needs 48 MB per mask); only the bool result is held whole.
    """
    out = torch.empty((masks.shape[0], height, width), dtype=torch.bool, device=masks.device)
    for chunk in mask_chunks(masks.shape[0], height, width):
        out[chunk] = upsample_masks(masks[chunk], height, width, mode) > threshold
    return out


def _bilinear_sources(out_size: int, in_size: int, device) -> tuple[torch.Tensor, ...]:
    """For each output row of a bilinear resize (align_corners=False) from ``in_size`` to ``out_size``:
    its two source rows and their weights (i0, i1, w0, w1), computed as PyTorch's kernel does (float32
    scale, source position clamped at 0), so the values below match ``F.interpolate``'s."""
    scale = torch.tensor(in_size, dtype=torch.float32) / out_size
    real = ((torch.arange(out_size, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_(min=0)
    i0 = real.long()
    i1 = (i0 + 1).clamp_(max=in_size - 1)
    w1 = (real - i0).clamp_(0, 1)
    return tuple(t.to(device) for t in (i0, i1, 1 - w1, w1))


def _box_windows(boxes: torch.Tensor, proto_size: tuple[int, int], image_size: tuple[int, int], padding: float):
    """Per mask, the image rows [r0, r1) and columns [c0, c1) outside which a mask cropped to its box
    (:func:`~yolact_edu.ops.boxes.crop`) upsamples to exactly 0: the crop's proto-pixel range, widened by
    the one source pixel bilinear reads on each side, mapped to image pixels, plus a pixel of margin."""
    (hp, wp), (height, width) = proto_size, image_size
    edges = []
    for lo_rel, hi_rel, size, out in ((boxes[:, 1], boxes[:, 3], hp, height), (boxes[:, 0], boxes[:, 2], wp, width)):
        lo, hi = sanitize_coordinates(lo_rel, hi_rel, size, padding)
        step = out / size
        start = ((lo.floor() - 0.5) * step - 0.5).floor().long() - 1
        stop = ((hi.ceil() + 0.5) * step - 0.5).ceil().long() + 2
        edges += [start.clamp(0, out), stop.clamp(0, out)]
    return edges


def masks_to_image_in_boxes(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int,
                            threshold: float = 0.5, padding: float = 1) -> torch.Tensor:
    """:func:`masks_to_image` (bilinear) for masks already cropped to their boxes: the same bool masks
    [n,height,width], computed only inside each box's window, where a mask can be non-zero.

    masks [n,Hp,Wp] in [0,1], zero outside the (``padding``-padded) ``boxes`` [n,4] (relative point
    form), as :func:`assemble_masks` makes them with ``crop_masks=True``. The interpolation is
    written out (two source rows, then two source columns, PyTorch's weights), so its cost follows
    the boxes' area instead of n x height x width. Masks go a few at a time, as in :func:`masks_to_image`."""
    count, hp, wp = masks.shape
    if count == 0:
        return torch.zeros((0, height, width), dtype=torch.bool, device=masks.device)
    r0, r1, c0, c1 = _box_windows(boxes, (hp, wp), (height, width), padding)
    i0, i1, a0, a1 = _bilinear_sources(height, hp, masks.device)
    j0, j1, b0, b1 = _bilinear_sources(width, wp, masks.device)
    spans = torch.stack([r0, r1 - r0, c0, c1 - c0], 1).tolist()
    # smallest windows first; windows above WINDOW_SHARE of the image go to whole-image interpolation,
    # which is faster there
    order = sorted(range(count), key=lambda k: spans[k][1] * spans[k][3])
    small = [k for k in order if spans[k][1] * spans[k][3] <= WINDOW_SHARE * height * width]
    large = order[len(small):]
    if not small:
        return masks_to_image(masks, height, width, threshold)
    out = torch.zeros((count, height, width), dtype=torch.bool, device=masks.device)
    if large:
        index = torch.tensor(large, device=masks.device)
        out[index] = masks_to_image(masks[index], height, width, threshold)
    start = 0
    while start < len(small):
        stop, rows_max, cols_max = start, 1, 1
        smallest = max(1, spans[small[start]][1] * spans[small[start]][3])
        while stop < len(small):
            # masks of similar window size (within 2x of the group's smallest area), as many as fit
            # the memory budget at the group's largest window
            span = spans[small[stop]]
            rows_next, cols_next = max(rows_max, span[1]), max(cols_max, span[3])
            if stop > start and (rows_next * cols_next > 2 * smallest
                                 or (stop - start + 1) * rows_next * max(cols_next, wp) * 4 > UPSAMPLE_CHUNK_BYTES):
                break
            rows_max, cols_max, stop = rows_next, cols_next, stop + 1
        chosen = small[start:stop]
        index = torch.tensor(chosen, device=masks.device)
        part, n = masks[index], len(chosen)
        rows = (r0[index, None] + torch.arange(rows_max, device=masks.device)).clamp_(max=height - 1)
        cols = (c0[index, None] + torch.arange(cols_max, device=masks.device)).clamp_(max=width - 1)
        top = part.gather(1, i0[rows][:, :, None].expand(n, rows_max, wp))            # [n,rows,Wp]
        bottom = part.gather(1, i1[rows][:, :, None].expand(n, rows_max, wp))
        left = j0[cols][:, None, :].expand(n, rows_max, cols_max)
        right = j1[cols][:, None, :].expand(n, rows_max, cols_max)
        w_left, w_right = b0[cols][:, None, :], b1[cols][:, None, :]
        top = top.gather(2, left) * w_left + top.gather(2, right) * w_right             # [n,rows,cols]
        bottom = bottom.gather(2, left) * w_left + bottom.gather(2, right) * w_right
        window = (top * a0[rows][:, :, None] + bottom * a1[rows][:, :, None]) > threshold
        for k, mask_index in enumerate(chosen):
            row, rows_here, col, cols_here = spans[mask_index]
            out[mask_index, row:row + rows_here, col:col + cols_here] = window[k, :rows_here, :cols_here]
        start = stop
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

