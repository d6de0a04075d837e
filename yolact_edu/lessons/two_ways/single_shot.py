"""YOLACT's single shot, stage by stage, for a side-by-side look with Mask R-CNN (notebook 01 §3).

No proposals and no per-object feature crops: one network pass gives, for every prior, a box,
class scores and k mask coefficients, and for the whole image k prototypes. After NMS each
detection's mask is ``sigmoid(prototypes @ coefficients)`` (one matrix multiply for all of
them), cropped to its box at prototype resolution, upsampled and thresholded
(:mod:`yolact_edu.ops.assemble`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...bench.timing import clock, record_modules
from ...detections import Detections
from ...ops.assemble import assemble_masks, masks_to_image
from .maskrcnn import model_device


@dataclass
class YolactStages:
    """What each stage of YOLACT produced for one image (N detections kept).

    image_size (H, W) original; input_shape [1,3,S,S]; pyramid_shapes FPN levels [1,256,hl,wl];
    num_priors P; proto [Hp,Wp,k] >= 0; detections the :class:`Detections` (boxes, scores, coefs
    [N,k] in [-1,1], masks [N,H,W] bool); combined [N,Hp,Wp] sigmoid(P C^T) before the crop, in
    [0,1]; cropped [N,Hp,Wp] the same after the crop; times_ms per stage.
    """

    image_size: tuple[int, int]
    input_shape: tuple[int, ...]
    pyramid_shapes: list[tuple[int, ...]]
    num_priors: int
    proto: torch.Tensor
    detections: Detections
    combined: torch.Tensor
    cropped: torch.Tensor
    times_ms: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, float | None]]:
        """(stage, output, ms) rows for a table, in pipeline order."""
        t = self.times_ms
        n = len(self.detections)
        k = self.proto.shape[-1]
        levels = ", ".join(f"{s[-2]}x{s[-1]}" for s in self.pyramid_shapes)
        return [
            ("input", f"{self.image_size[0]}x{self.image_size[1]} image", None),
            ("resize + normalise", f"{list(self.input_shape)} (stretched, not padded)", t["preprocess"]),
            ("backbone + FPN + protonet + head", f"FPN {levels}; {self.num_priors} priors x (4 box, "
             f"{self.detections.coefs.shape[-1] if n else k} coefs, classes); prototypes "
             f"{list(self.proto.shape)}", t["network"]),
            ("NMS + assemble + crop + upsample", f"{n} detections: coefs [{n},{k}] @ prototypes -> "
             f"{list(self.cropped.shape)} -> {list(self.detections.masks.shape)}", t["detect"]),
        ]


@torch.no_grad()
def yolact_stages(model, image, **detect_kwargs) -> YolactStages:
    """Run a :class:`~yolact_edu.Yolact` on one HxWx3 uint8 RGB image, keeping every stage
    (timed on the model's device; the tensors returned are on the CPU).

    detect_kwargs go to :meth:`Yolact.detect` (e.g. ``score_threshold=0.3, top_k=10``). The
    pre-crop and cropped soft masks are recomputed from the kept detections with the library's
    own :func:`~yolact_edu.ops.assemble.assemble_masks`.
    """
    model.eval()
    device = model_device(model)
    height, width = int(image.shape[0]), int(image.shape[1])
    with record_modules({"fpn": model.fpn}, device) as record:
        start = clock(device)
        x = model.preprocess(image)
        t_pre = clock(device)
        raw = model(x)
        t_net = clock(device)
        detections = model.detect(raw, (height, width), **detect_kwargs)[0].cpu()
        t_detect = clock(device)
    proto = raw["proto"][0].float().cpu()
    combined = assemble_masks(proto, detections.coefs, detections.boxes_rel, crop_masks=False)   # [N,Hp,Wp]
    cropped = assemble_masks(proto, detections.coefs, detections.boxes_rel,
                             crop_masks=detect_kwargs.get("crop", True))
    return YolactStages(
        image_size=(height, width), input_shape=tuple(x.shape),
        pyramid_shapes=[tuple(level.shape) for level in record["outputs"]["fpn"]],
        num_priors=int(raw["priors"].shape[0]), proto=proto, detections=detections,
        combined=combined, cropped=cropped,
        times_ms={"preprocess": (t_pre - start) * 1e3, "network": (t_net - t_pre) * 1e3,
                  "detect": (t_detect - t_net) * 1e3})


def final_masks(stages: YolactStages, threshold: float = 0.5) -> torch.Tensor:
    """The cropped soft masks upsampled to the image and thresholded: [N,H,W] bool (what
    ``detections.masks`` holds, recomputed here to show the last step on its own)."""
    return masks_to_image(stages.cropped, *stages.image_size, threshold=threshold)


__all__ = ["YolactStages", "yolact_stages", "final_masks"]
