"""Notebook 03 §3, written by the learner: the box encoding and decoding (SSD, with variances),
checked on real inputs against :func:`yolact_edu.ops.boxes.encode` / :func:`~yolact_edu.ops.boxes.decode`.

The learner writes two functions::

    def encode(gt_xyxy, priors):   # [n,4] (x1,y1,x2,y2), [n,4] (cx,cy,w,h), relative -> loc [n,4] (dx,dy,dw,dh)
    def decode(loc, priors):       # loc [n,4], priors [n,4] (cx,cy,w,h) -> boxes [n,4] (x1,y1,x2,y2)

and :func:`check_box_coding` runs them on the image's ground truth against its positive priors and on
the trained network's regressions for every prior, and again on the same priors stretched to aspect
ratio 2 (YOLACT++'s non-square priors), where a swapped width and height shows. A wrong answer is
compared with the usual mistakes, each with its own hint.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..ops.boxes import VARIANCES, center_size, decode, encode
from .exercises import Check, run_learner_code

CENTRE, SIZE = VARIANCES


def _split(priors: torch.Tensor):
    return priors[:, :2], priors[:, 2:]


# -- the usual mistakes, written out so that a learner's wrong answer can be recognised -----------
def _encode_mistakes(gt: torch.Tensor, priors: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    centre, size = center_size(gt)[:, :2], center_size(gt)[:, 2:]
    p_centre, p_size = _split(priors)
    swapped = p_size.flip(-1)
    log_ratio = torch.log(size / p_size)
    return [
        (torch.cat([(centre - p_centre) / p_size, log_ratio], 1),
         "the variances are missing: divide the centre offsets by 0.1 and the log size ratios by 0.2"),
        (torch.cat([(centre - p_centre) / (SIZE * p_size), log_ratio / CENTRE], 1),
         "the variances are swapped: 0.1 scales the centre offsets, 0.2 the log size ratios"),
        (torch.cat([(centre - p_centre) / (CENTRE * p_size), size / p_size / SIZE], 1),
         "dw, dh need the log of the size ratio: log(gw / pw) / 0.2 (twice as wide gives +log 2, half as wide -log 2)"),
        (torch.cat([(centre - p_centre) / (CENTRE * p_size), (size / p_size - 1) / SIZE], 1),
         "dw, dh need the log of the size ratio: log(gw / pw) / 0.2, not (gw / pw - 1) / 0.2"),
        (torch.cat([(gt[:, :2] - p_centre) / (CENTRE * p_size), log_ratio / SIZE], 1),
         "dx, dy start from the box's centre ((x1 + x2) / 2, (y1 + y2) / 2), not its top-left corner"),
        (torch.cat([(gt[:, :2] - (p_centre - p_size / 2)) / (CENTRE * p_size), log_ratio / SIZE], 1),
         "dx, dy compare the two centres, not the two top-left corners"),
        (torch.cat([(centre - p_centre) / (CENTRE * size), log_ratio / SIZE], 1),
         "divide the centre offset by the prior's side (pw, ph), not the ground truth's"),
        (torch.cat([(centre - p_centre) / (CENTRE * swapped), torch.log(size / swapped) / SIZE], 1),
         "x goes with the width and y with the height: dx = (gcx - pcx) / (0.1 pw), dy = (gcy - pcy) / (0.1 ph)"),
    ]


def _decode_mistakes(loc: torch.Tensor, priors: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    p_centre, p_size = _split(priors)
    swapped = p_size.flip(-1)

    def corners(centre, size):
        return torch.cat([centre - size / 2, centre + size / 2], 1)

    centre = p_centre + loc[:, :2] * CENTRE * p_size
    size = p_size * torch.exp(loc[:, 2:] * SIZE)
    return [
        (corners(p_centre + loc[:, :2] * p_size, p_size * torch.exp(loc[:, 2:])),
         "the variances are missing: the centre moves by dx·0.1·pw, the size scales by exp(dw·0.2)"),
        (corners(p_centre + loc[:, :2] / CENTRE * p_size, p_size * torch.exp(loc[:, 2:] / SIZE)),
         "decode multiplies by the variances (encode divided by them)"),
        (corners(centre, p_size * loc[:, 2:] * SIZE),
         "the size needs exp: w = pw · exp(dw · 0.2), the inverse of encode's log"),
        (corners(centre, p_size * (1 + loc[:, 2:] * SIZE)),
         "the size needs exp: w = pw · exp(dw · 0.2), the inverse of encode's log"),
        (torch.cat([centre, size], 1),
         "return corners (x1, y1, x2, y2): x1 = cx - w/2, x2 = cx + w/2; this is (cx, cy, w, h)"),
        (torch.cat([centre - size / 2, size], 1),
         "return corners (x1, y1, x2, y2): x2 = x1 + w; this is (x1, y1, w, h)"),
        (corners(p_centre + loc[:, :2] * CENTRE * swapped, swapped * torch.exp(loc[:, 2:] * SIZE)),
         "x goes with the width and y with the height: cx = pcx + dx·0.1·pw, cy = pcy + dy·0.1·ph"),
    ]


def stretched(priors: torch.Tensor, aspect: float = 2.0) -> torch.Tensor:
    """The same priors [n,4] (cx,cy,w,h) made non-square: w·√aspect, h/√aspect (as YOLACT++'s)."""
    factor = priors.new_tensor([1.0, 1.0, aspect ** 0.5, aspect ** -0.5])
    return priors * factor


def _close(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and bool(
        torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5))


ROUND_TRIP = ("decode must undo encode, so decode(encode(box)) gives the box back: reverse encode's steps "
              "(times the variances, exp of the size terms, then centre and size to corners)")


def _diagnose(name: str, out, reference: torch.Tensor, mistakes, parts: tuple[str, str],
              fallback: str = "compare it with the formula above") -> Check | None:
    """None when ``out`` matches ``reference``; otherwise a failing Check with the best hint."""
    if out is None or out is ...:
        return Check(False, f"write `{name}` (its body is still `...`), then run this cell again")
    if not isinstance(out, torch.Tensor):
        return Check(False, f"`{name}` must return a tensor [n,4], it returned {type(out).__name__}")
    if out.shape != reference.shape:
        return Check(False, f"`{name}` must return [n,4] like its inputs, it returned {list(out.shape)}")
    if _close(out, reference):
        return None
    for wrong, hint in mistakes:
        if _close(out, wrong):
            return Check(False, hint)
    first = _close(out[:, :2], reference[:, :2])
    second = _close(out[:, 2:], reference[:, 2:])
    if first and not second:
        return Check(False, f"{parts[0]} are right; {parts[1]} are not")
    if second and not first:
        return Check(False, f"{parts[1]} are right; {parts[0]} are not")
    worst = float((out.double() - reference.double()).abs().max())
    return Check(False, f"`{name}` differs from the library's by up to {worst:.3g}: {fallback}")


def check_box_coding(encode_fn: Callable, decode_fn: Callable, gt_xyxy: torch.Tensor, priors: torch.Tensor,
                     loc: torch.Tensor, all_priors: torch.Tensor) -> Check:
    """Check the learner's ``encode_fn(gt_xyxy, priors)`` and ``decode_fn(loc, priors)``.

    gt_xyxy [n,4]: ground-truth boxes, each repeated for its positive priors ``priors`` [n,4] (cx,cy,w,h);
    loc [P,4]: the trained network's regressions at ``all_priors`` [P,4]. Each function is run on these
    and on the priors :func:`stretched`; then ``decode_fn(encode_fn(gt))`` must give the boxes back."""
    for pri in (priors, stretched(priors)):
        out, error = run_learner_code(encode_fn, gt_xyxy, pri)
        if error:
            return Check(False, f"`encode` raised {error}")
        verdict = _diagnose("encode", out, encode(gt_xyxy, pri), _encode_mistakes(gt_xyxy, pri),
                            ("dx, dy", "dw, dh"))
        if verdict is not None:
            return verdict
    for pri in (all_priors, stretched(all_priors)):
        out, error = run_learner_code(decode_fn, loc, pri)
        if error:
            return Check(False, f"`decode` raised {error}")
        verdict = _diagnose("decode", out, decode(loc, pri), _decode_mistakes(loc, pri), ("x1, y1", "x2, y2"),
                            ROUND_TRIP)
        if verdict is not None:
            return verdict
    round_trip, _ = run_learner_code(decode_fn, encode_fn(gt_xyxy.clone(), priors.clone()), priors)
    error = float((round_trip.double() - gt_xyxy.double()).abs().max())
    return Check(True, f"encode matches the library on {len(gt_xyxy)} (box, positive prior) pairs and decode on the "
                       f"network's {len(loc)} regressions, square and stretched priors alike; decode(encode(box)) "
                       f"gives the boxes back within {error:.1e}")


__all__ = ["ROUND_TRIP", "stretched", "check_box_coding"]
