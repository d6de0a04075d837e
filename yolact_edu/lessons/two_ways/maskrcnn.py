"""Mask R-CNN, the two-stage way to segment instances, run stage by stage (notebook 01 §2).

Detect, then segment: a region proposal network (RPN) suggests ~1000 boxes; RoIAlign cuts a
7x7 feature patch out of the FPN for each one and a box head classifies and refines it; after
NMS, RoIAlign cuts a 14x14 patch for every *detection*, a small conv head turns it into a
28x28 mask logit per class, and each 28x28 mask is resized into its box in the image.

Two models run through the same stages: the package's ``maskrcnn_tiny``
(:class:`~yolact_edu.relatives.maskrcnn.MaskRCNNTiny`, trained on the shapes set and shipped,
so its proposals and masks are real), and torchvision's ``maskrcnn_resnet50_fpn`` at the
paper's scale. Nothing is downloaded: the R50's COCO weights are used only when they already
sit in the torch hub cache; otherwise it is built with random weights, and then its boxes and
masks mean nothing — but its structure, tensor shapes and cost are exactly those of the
trained model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn
from torchvision.ops import roi_align

from ...bench.timing import clock, record_modules
from ...config import COCO_CATEGORY_IDS, COCO_CLASSES
from ...detections import Detections
from ...model.segmenter import image_size

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


def roi_crop(image, box, size: int = 14) -> np.ndarray:
    """What RoIAlign cuts out for a box, shown on the image itself: HxWx3 uint8 ``image`` and an
    xyxy ``box`` in its pixels -> ``size`` x ``size`` x 3 uint8 (bilinear samples, 2x2 per bin,
    as ``MultiScaleRoIAlign`` takes them from a feature map)."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    boxes = torch.tensor([[0.0, *[float(v) for v in box]]])
    crop = roi_align(pixels, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=False)
    return crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def coco_maskrcnn_predict(model: MaskRCNN, image, score_threshold: float = 0.5) -> Detections:
    """torchvision's COCO Mask R-CNN on one HxWx3 uint8 image as :class:`~yolact_edu.Detections`
    (0-based labels into the 80 COCO class names; masks thresholded at 0.5; no prototypes)."""
    model.eval()
    result = model([model_input(model, image)])[0]
    # torchvision labels are COCO category ids (1..90, ten of them unused; only untrained weights give those)
    position = {category: index for index, category in enumerate(COCO_CATEGORY_IDS)}
    keep = [i for i, (score, category) in enumerate(zip(result["scores"].tolist(), result["labels"].tolist()))
            if score >= score_threshold and category in position]
    keep = torch.tensor(keep, dtype=torch.int64, device=result["scores"].device)
    labels = torch.tensor([position[int(c)] for c in result["labels"][keep]], dtype=torch.int64)
    return Detections(boxes=result["boxes"][keep].cpu(), scores=result["scores"][keep].cpu(), labels=labels,
                      masks=result["masks"][keep, 0].cpu() > 0.5, class_names=COCO_CLASSES)


def model_input(model: torch.nn.Module, image) -> torch.Tensor:
    """One image as ``model.transform`` takes it, on the model's device: the package's models
    prepare their own input ([3,S,S], normalised, :meth:`preprocess`); torchvision's take
    [3,H,W] in [0,1] (:func:`image_tensor`) and normalise it themselves."""
    if hasattr(model, "preprocess"):
        return model.preprocess(image)[0]
    return image_tensor(image).to(model_device(model))


def _watched(model: MaskRCNN) -> dict[str, torch.nn.Module]:
    heads = model.roi_heads
    return {"anchors": model.rpn.anchor_generator, "box_roi_pool": heads.box_roi_pool,
            "box_head": heads.box_head, "mask_roi_pool": heads.mask_roi_pool,
            "mask_head": heads.mask_head, "mask_predictor": heads.mask_predictor}


@torch.no_grad()
def run_maskrcnn(model: MaskRCNN, image, record_outputs: bool = False) -> tuple[dict, dict]:
    """One image through a Mask R-CNN (torchvision's or ``maskrcnn_tiny``) exactly as
    ``GeneralizedRCNN.forward`` does in eval mode, one stage at a time, timing each (on the
    model's device).

    Returns (result, info): result is torchvision's dict for the image ("boxes" [N,4] xyxy
    original pixels, "labels" [N] int64 class index (0 = background), "scores" [N],
    "masks" [N,1,H,W] float in [0,1]); info holds "times_ms" per stage, "images" (the
    resized, padded ImageList), "features" (FPN dict), "proposals" [R,4] (resized-image
    pixels) and, with ``record_outputs``, "outputs" of the RPN/RoI submodules.
    """
    model.eval()
    device = model_device(model)
    x = model_input(model, image)
    original_size = image_size(image)
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
        channels = next(iter(self.feature_shapes.values()))[1]
        mask_logit_shape = tuple(self.mask_logits.shape)
        return [
            ("input", f"{self.image_size[0]}x{self.image_size[1]} image", None),
            ("resize + normalise", f"{list(self.batch_shape)} (resized {self.resized_size[0]}x"
                                   f"{self.resized_size[1]}, padded)", t.get("resize + normalise")),
            ("backbone + FPN", f"{channels} channels at {features}", t.get("backbone + FPN")),
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


__all__ = ["COCO_WEIGHTS", "coco_weights_path", "coco_maskrcnn_predict", "model_device", "model_input",
           "roi_crop", "maskrcnn_model", "image_tensor", "run_maskrcnn", "MaskRCNNStages",
           "maskrcnn_stages"]
