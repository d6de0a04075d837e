"""Notebook 02 §3 "Write the assembly yourself": the learner writes ``assemble(P, C)`` (paper eq. 1,
M = σ(P Cᵀ)) and ``crop(masks, boxes)``; the checks run them on a detection set of the shipped
model (its real prototypes, coefficients and boxes) and compare with the library's own
:func:`~yolact_edu.ops.assemble.assemble_masks` and :func:`~yolact_edu.ops.boxes.crop`.

Each typical mistake gets its own hint: the product taken the wrong way round, the sigmoid
forgotten or applied to the prototypes before the sum, the crop done at image size (after
upsampling), boxes used as pixels or scaled by the image size, x and y swapped, the inside zeroed
instead of the outside.

    >>> check_assemble(assemble, detections)      # detections = model.predict(image)
    ✓ right: ...
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..ops.assemble import linear_combination, masks_to_image
from ..ops.boxes import crop as library_crop
from ..ops.mask_iou import paired_mask_iou
from .exercises import Check, run_learner_code

ATOL = 1e-4       # float32 sums of k products in another order differ by ~1e-6; this is far above that
NEAR_SHARE = 0.02  # a wrong crop "is" a known mistake when at most this share of cells differs from it


def _inputs(detections) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if detections.proto is None or len(detections) == 0:
        raise ValueError("the check needs a YOLACT detection set with at least one detection "
                         "(prototypes and coefficients); lower score_threshold or pick another image")
    return detections.proto.float(), detections.coefs.float(), detections.boxes_rel.float()


def _run(function: Callable, *args) -> tuple[torch.Tensor | None, Check | None]:
    """The learner's result as a float tensor, or a Check saying why there is none."""
    result, error = run_learner_code(function, *args)
    if error is not None:
        return None, Check(False, f"your function raised {error}")
    if result is None or result is ...:
        name = getattr(function, "__name__", "the function")
        return None, Check(False, f"write the body of `{name}` (replace `...`), return the result, then run this "
                                  "cell again")
    try:
        return torch.as_tensor(np.asarray(result) if not torch.is_tensor(result) else result).float(), None
    except (TypeError, ValueError) as error:
        return None, Check(False, f"return a tensor (or an array), not {type(result).__name__}: {error}")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=ATOL))


def check_assemble(assemble: Callable, detections) -> Check:
    """Notebook 02: ``assemble(P, C)`` with P [Hp,Wp,k] (>= 0) and C [N,k] in [-1,1] must return
    σ(P Cᵀ) as [N,Hp,Wp] in (0,1) — the library's ``assemble_masks(..., crop_masks=False)``."""
    proto, coefs, _ = _inputs(detections)
    result, failed = _run(assemble, proto, coefs)
    if failed is not None:
        if failed.message.startswith("your function raised RuntimeError"):
            return Check(False, f"{failed.message.rstrip('.')}. The product must run over the k prototypes: "
                                "P is [Hp,Wp,k] and C is [N,k], so P @ C.T (or torch.einsum('hwk,nk->nhw', P, C))")
        return failed
    logits = linear_combination(proto, coefs).permute(2, 0, 1)           # [N,Hp,Wp]
    expected = torch.sigmoid(logits)
    n, hp, wp = expected.shape
    if _same(result, expected):
        return Check(True, f"σ(P Cᵀ) for {n} detections: each is a weighted sum of the {proto.shape[-1]} "
                           f"shared prototypes, squashed to (0,1) — a [{n},{hp},{wp}] stack, no mask head per box")
    if result.shape == (hp, wp, n) and hp * wp > 0:
        return Check(False, f"shape {tuple(result.shape)} is [Hp,Wp,N]: P @ C.T puts the detections last; move them "
                            "first (.permute(2, 0, 1)) so mask i is result[i]")
    if result.shape != expected.shape:
        return Check(False, f"shape {tuple(result.shape)}, expected [N,Hp,Wp] = {tuple(expected.shape)}: one "
                            "Hp x Wp mask per detection, from P [Hp,Wp,k] and C [N,k] (sum over k)")
    if _same(result, expected.transpose(1, 2)):
        return Check(False, "rows and columns are swapped: P is [Hp,Wp,k], so keep its first two axes in order "
                            "(result[i] = σ(P @ C[i]), not its transpose)")
    if _same(result, logits):
        return Check(False, "these are the logits P Cᵀ: values run outside (0,1). Squash them with torch.sigmoid")
    if _same(result, (torch.sigmoid(proto) @ coefs.t()).permute(2, 0, 1)):
        return Check(False, "the sigmoid comes after the sum: σ(P Cᵀ), not σ(P) Cᵀ. Summing first lets a negative "
                            "coefficient subtract a prototype before the squashing")
    if _same(result, torch.tanh(logits)) or _same(result, torch.relu(logits)):
        return Check(False, "a mask is a probability in (0,1): use torch.sigmoid, not tanh or relu")
    worst = float((result - expected).abs().max())
    return Check(False, f"the right shape, but values differ from σ(P Cᵀ) by up to {worst:.3g}: mask i is "
                        "sigmoid(sum over j of C[i,j] * P[:,:,j])")


def _reference_crop(masks: torch.Tensor, boxes: torch.Tensor, padding: float = 1) -> torch.Tensor:
    """The library's crop on [N,Hp,Wp] masks (it works on [Hp,Wp,N])."""
    return library_crop(masks.permute(1, 2, 0), boxes, padding).permute(2, 0, 1)


def _inside(boxes: torch.Tensor, size: tuple[int, int], padding: float) -> torch.Tensor:
    """[N,Hp,Wp] bool: the cells the crop keeps with ``padding`` proto pixels of margin (may be negative)."""
    return _reference_crop(torch.ones(len(boxes), *size), boxes, padding) > 0


def check_crop(crop: Callable, detections) -> Check:
    """Notebook 02: ``crop(masks, boxes)`` with masks [N,Hp,Wp] in [0,1] (uncropped, from the shipped
    model) and boxes [N,4] relative (x1, y1, x2, y2) in [0,1] must return [N,Hp,Wp]: each mask
    zeroed outside its box, at prototype resolution.

    The library keeps column c when ``x1*Wp - 1 <= c < x2*Wp + 1`` (the original's one-pixel margin),
    rows likewise. Any edge convention within one cell of that is accepted (the message says how
    many cells differ): which border cell to keep is a convention; where the box is, is not."""
    proto, coefs, boxes = _inputs(detections)
    masks = torch.sigmoid(linear_combination(proto, coefs)).permute(2, 0, 1).contiguous()   # [N,Hp,Wp]
    result, failed = _run(crop, masks, boxes)
    if failed is not None:
        return failed
    n, hp, wp = masks.shape
    height, width = detections.image_size
    if result.shape[-2:] == (height, width) and (height, width) != (hp, wp):
        return Check(False, f"your masks are {height}x{width}, the image size: crop at prototype resolution "
                            f"({hp}x{wp}), BEFORE upsampling — the mask at image size is made from the cropped one")
    if result.shape != masks.shape:
        return Check(False, f"shape {tuple(result.shape)}, expected the masks' own shape {tuple(masks.shape)} "
                            "[N,Hp,Wp]: the crop only sets cells to 0")
    expected = _reference_crop(masks, boxes)
    loose, tight = _inside(boxes, (hp, wp), 2), _inside(boxes, (hp, wp), -1)
    kept_outside = (result.abs() > ATOL) & ~loose            # non-zero beyond one cell outside the margin
    changed_inside = tight & ((result - masks).abs() > ATOL)  # altered well inside the box
    if not kept_outside.any() and not changed_inside.any():
        on_edge = int(((result - expected).abs() > ATOL).sum())
        edge = ("exactly the library's convention" if on_edge == 0 else
                f"{on_edge} border cells differ from the library, which keeps one more cell on each side "
                "(x1*Wp - 1 <= c < x2*Wp + 1): an edge convention, not a mistake")
        iou = float(paired_mask_iou(masks_to_image(result, height, width), detections.masks).mean())
        return Check(True, f"{n} masks zeroed outside their boxes at {hp}x{wp}, before upsampling ({edge}); "
                           f"upsampled to {height}x{width} they match the model's own masks with mean IoU {iou:.2f}")
    if _same(result, masks):
        return Check(False, "the masks come back unchanged: set every cell outside box i to 0 in mask i")
    if torch.allclose(result, masks * ~_inside(boxes, (hp, wp), 1), atol=ATOL):
        return Check(False, "you zeroed the inside of the boxes: keep the inside, zero the outside")
    scale = (f"boxes are relative (0..1): box column x1 * Wp = x1 * {wp} is the prototype cell (rows: y * {hp}), "
             f"not x1 itself and not x1 times the image size ({width} x {height})")
    mistakes = [(scale, _reference_crop(masks, boxes / torch.tensor([wp, hp, wp, hp]))),       # boxes as cells
                (scale, _reference_crop(masks, boxes * torch.tensor([width / wp, height / hp] * 2))),  # image size
                ("x goes with columns (the last axis) and y with rows: you swapped them",
                 _reference_crop(masks, boxes[:, [1, 0, 3, 2]]))]
    # the known mistake the result is closest to, up to the one-cell edge convention
    share, hint = min((float(((result - wrong).abs() > ATOL).float().mean()), hint) for hint, wrong in mistakes)
    if share <= NEAR_SHARE:
        return Check(False, hint)
    outside, inside = int(kept_outside.sum()), int(changed_inside.sum())
    return Check(False, f"{outside} cells outside the boxes are not 0 and {inside} cells inside were changed: "
                        f"keep column c of mask i when x1*{wp} - 1 <= c < x2*{wp} + 1 (rows likewise with {hp}), "
                        "and zero the rest")


__all__ = ["check_assemble", "check_crop", "ATOL"]
