"""Mask R-CNN, the two-stage way to segment instances, run stage by stage (notebook 01 §2).

Detect, then segment: a region proposal network (RPN) suggests ~1000 boxes; RoIAlign cuts a
7x7 feature patch out of the FPN for each one and a box head classifies and refines it; after
NMS, RoIAlign cuts a 14x14 patch for every *detection*, a small conv head turns it into a
28x28 mask logit per class, and each 28x28 mask is resized into its box in the image.

The model is torchvision's ``maskrcnn_resnet50_fpn``. Nothing is downloaded: its COCO weights
are used only when they already sit in the torch hub cache; otherwise the network is built
with random weights, and then its boxes and masks mean nothing — but its structure, tensor
shapes and cost are exactly those of the trained model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn

from ...bench.timing import clock, record_modules

COCO_WEIGHTS = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
WEIGHT_CHOICES = ("auto", "coco", "none")


def coco_weights_path() -> Path:
    """Where torchvision keeps the COCO Mask R-CNN weights once downloaded:
    ``<torch hub dir>/checkpoints/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`` (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(COCO_WEIGHTS.url).name


def maskrcnn_model(weights: str = "auto", min_size: int = 800, max_size: int = 1333,
                   verbose: bool = True, **kwargs) -> MaskRCNN:
    """torchvision's Mask R-CNN (ResNet-50 FPN, 91 COCO classes incl. background) in eval mode.

    weights: "coco" uses the COCO weights from the torch hub cache (FileNotFoundError if they are
        not there; this function never downloads); "none" builds the network with random weights
        (no ImageNet backbone either); "auto" is "coco" when the file is cached, else "none".
    min_size / max_size: the resize of :class:`GeneralizedRCNNTransform` (short side to
        ``min_size``, long side at most ``max_size``; 800/1333 is the COCO setting).
    kwargs: passed on (e.g. ``box_score_thresh``, ``box_detections_per_img``).

    The returned model carries ``weights_source`` ("coco" or "untrained") and ``is_trained``;
    with ``verbose`` a line saying which was used is printed.
    """
    if weights not in WEIGHT_CHOICES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_CHOICES)}, got {weights!r}")
    path = coco_weights_path()
    if weights == "coco" and not path.is_file():
        raise FileNotFoundError(f"COCO Mask R-CNN weights are not cached at {path}; "
                                "this library never downloads them (use weights='none' or 'auto')")
    use_coco = weights == "coco" or (weights == "auto" and path.is_file())
    if use_coco:
        # The file is already on disk, so torchvision's loader reads it instead of downloading.
        model = maskrcnn_resnet50_fpn(weights=COCO_WEIGHTS, progress=False, min_size=min_size,
                                      max_size=max_size, **kwargs)
    else:
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=min_size,
                                      max_size=max_size, **kwargs)
    model.weights_source = "coco" if use_coco else "untrained"
    model.is_trained = use_coco
    if verbose:
        shown = f"~/{path.relative_to(Path.home())}" if path.is_relative_to(Path.home()) else str(path)
        if use_coco:
            print(f"Mask R-CNN: COCO weights from {shown}")
        else:
            print(f"Mask R-CNN: UNTRAINED (random weights; COCO weights not cached at {shown}). "
                  "Its boxes and masks are meaningless; its shapes and cost are real.")
    return model.eval()


def image_tensor(image) -> torch.Tensor:
    """HxWx3 uint8 RGB array (or [3,H,W] tensor, 0..255) -> float [3,H,W] in [0,1], as torchvision
    detection models take it (they normalise with ImageNet mean/std themselves)."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB image array, got shape {image.shape}")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return image.float() / 255.0


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _watched(model: MaskRCNN) -> dict[str, torch.nn.Module]:
    heads = model.roi_heads
    return {"anchors": model.rpn.anchor_generator, "box_roi_pool": heads.box_roi_pool,
            "box_head": heads.box_head, "mask_roi_pool": heads.mask_roi_pool,
            "mask_head": heads.mask_head, "mask_predictor": heads.mask_predictor}


@torch.no_grad()
def run_maskrcnn(model: MaskRCNN, image, record_outputs: bool = False) -> tuple[dict, dict]:
    """One image through the model exactly as ``GeneralizedRCNN.forward`` does in eval mode, one
    stage at a time, timing each (on the model's device).

    Returns (result, info): result is torchvision's dict for the image ("boxes" [N,4] xyxy
    original pixels, "labels" [N] int64 COCO index (0 = background), "scores" [N],
    "masks" [N,1,H,W] float in [0,1]); info holds "times_ms" per stage, "images" (the
    resized, padded ImageList), "features" (FPN dict), "proposals" [R,4] (resized-image
    pixels) and, with ``record_outputs``, "outputs" of the RPN/RoI submodules.
    """
    model.eval()
    device = model_device(model)
    x = image_tensor(image).to(device)
    original_size = (int(x.shape[-2]), int(x.shape[-1]))
    times = {}
    with record_modules(_watched(model), device) as record:
        start = clock(device)
        images, _ = model.transform([x])
        t_transform = clock(device)
        features = model.backbone(images.tensors)
        t_backbone = clock(device)
        proposals, _ = model.rpn(images, features)
        t_rpn = clock(device)
        detections, _ = model.roi_heads(features, proposals, images.image_sizes)
        t_heads = clock(device)
        detections = model.transform.postprocess(detections, images.image_sizes, [original_size])
        t_paste = clock(device)
    mask_start = record["start"].get("mask_roi_pool", t_heads)
    times["resize + normalise"] = (t_transform - start) * 1e3
    times["backbone + FPN"] = (t_backbone - t_transform) * 1e3
    times["RPN (anchors, objectness, NMS)"] = (t_rpn - t_backbone) * 1e3
    times["box branch (RoIAlign 7x7, 2 FC, NMS)"] = (mask_start - t_rpn) * 1e3
    times["mask branch (RoIAlign 14x14, 4 conv, deconv)"] = (t_heads - mask_start) * 1e3
    times["paste masks into image"] = (t_paste - t_heads) * 1e3
    info = {"times_ms": times, "images": images, "features": features, "proposals": proposals[0],
            "original_size": original_size}
    if record_outputs:
        info["outputs"] = record["outputs"]
    return detections[0], info


@dataclass
class MaskRCNNStages:
    """What each stage of Mask R-CNN produced for one image (N detections, R proposals).

    image_size (H, W) original; resized_size (h, w) after the transform; batch_shape the padded
    input [1,3,h',w'] (multiple of 32); feature_shapes FPN level -> [1,256,hl,wl];
    num_anchors over all levels; proposals [R,4] xyxy in original pixels (R <= 1000);
    box_features [R,256,7,7] (RoIAlign); box_head_shape [R,1024]; boxes [N,4] original pixels;
    scores [N] in [0,1]; labels [N] COCO index 1..90; mask_features [N,256,14,14] (RoIAlign);
    mask_logits [N,91,28,28]; roi_masks [N,28,28] sigmoid of the predicted class, in [0,1];
    masks [N,H,W] float in [0,1] pasted into the image; times_ms per stage.
    """

    image_size: tuple[int, int]
    resized_size: tuple[int, int]
    batch_shape: tuple[int, ...]
    feature_shapes: dict[str, tuple[int, ...]]
    num_anchors: int
    proposals: torch.Tensor
    box_features_shape: tuple[int, ...]
    box_head_shape: tuple[int, ...]
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    mask_features: torch.Tensor
    mask_logits: torch.Tensor
    roi_masks: torch.Tensor
    masks: torch.Tensor
    times_ms: dict[str, float] = field(default_factory=dict)
    trained: bool = False

    def cpu(self) -> MaskRCNNStages:
        """The same stages with every tensor on the CPU (for drawing)."""
        values = {name: value.cpu() if isinstance(value, torch.Tensor) else value
                  for name, value in vars(self).items()}
        return MaskRCNNStages(**values)

    def rows(self) -> list[tuple[str, str, float | None]]:
        """(stage, output, ms) rows for a table, in pipeline order."""
        t = self.times_ms
        n, r = len(self.boxes), len(self.proposals)
        features = ", ".join(f"{name}:{s[-2]}x{s[-1]}" for name, s in self.feature_shapes.items())
        mask_logit_shape = tuple(self.mask_logits.shape)
        return [
            ("input", f"{self.image_size[0]}x{self.image_size[1]} image", None),
            ("resize + normalise", f"{list(self.batch_shape)} (resized {self.resized_size[0]}x"
                                   f"{self.resized_size[1]}, padded)", t.get("resize + normalise")),
            ("backbone + FPN", f"256 channels at {features}", t.get("backbone + FPN")),
            ("RPN", f"{self.num_anchors} anchors -> {r} proposals", t.get("RPN (anchors, objectness, NMS)")),
            ("box branch", f"RoIAlign {list(self.box_features_shape)} -> {list(self.box_head_shape)} "
                           f"-> NMS -> {n} detections", t.get("box branch (RoIAlign 7x7, 2 FC, NMS)")),
            ("mask branch", f"RoIAlign {list(self.mask_features.shape)} -> logits {list(mask_logit_shape)}",
             t.get("mask branch (RoIAlign 14x14, 4 conv, deconv)")),
            ("paste", f"{n} x 28x28 -> {list(self.masks.shape)}", t.get("paste masks into image")),
        ]


def maskrcnn_stages(model: MaskRCNN, image) -> MaskRCNNStages:
    """Run :func:`run_maskrcnn` and collect every stage's tensors into :class:`MaskRCNNStages`.

    image: HxWx3 uint8 RGB. Proposals are scaled back to original pixels so they can be
    drawn on the image.
    """
    result, info = run_maskrcnn(model, image, record_outputs=True)
    outputs = info["outputs"]
    height, width = info["original_size"]
    resized = tuple(int(v) for v in info["images"].image_sizes[0])
    scale = torch.tensor([width / resized[1], height / resized[0]] * 2, device=info["proposals"].device)
    labels = result["labels"]
    mask_logits = outputs["mask_predictor"]
    # The mask head predicts one 28x28 mask per class; inference keeps the predicted class's.
    roi_masks = mask_logits[torch.arange(len(labels)), labels].sigmoid()
    stages = MaskRCNNStages(
        image_size=(height, width), resized_size=resized,
        batch_shape=tuple(info["images"].tensors.shape),
        feature_shapes={name: tuple(f.shape) for name, f in info["features"].items()},
        num_anchors=int(sum(a.shape[0] for a in outputs["anchors"])),
        proposals=info["proposals"] * scale,
        box_features_shape=tuple(outputs["box_roi_pool"].shape),
        box_head_shape=tuple(outputs["box_head"].shape),
        boxes=result["boxes"], scores=result["scores"], labels=labels,
        mask_features=outputs["mask_roi_pool"], mask_logits=mask_logits, roi_masks=roi_masks,
        masks=result["masks"][:, 0], times_ms=info["times_ms"],
        trained=bool(getattr(model, "is_trained", False)))
    return stages.cpu()


__all__ = ["COCO_WEIGHTS", "coco_weights_path", "model_device", "maskrcnn_model",
           "image_tensor", "run_maskrcnn", "MaskRCNNStages", "maskrcnn_stages"]
