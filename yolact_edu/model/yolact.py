"""The YOLACT model: image -> preprocess -> backbone -> FPN -> {protonet, head} -> raw dict
-> detect -> :class:`~yolact_edu.detections.Detections` (paper fig. 2)."""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..config import YolactConfig, get_config
from ..detections import Detections
from ..ops.anchors import make_priors
from ..ops.preprocess import preprocess_images
from ..postprocess import detect as run_detect
from .backbone import build_backbone
from .fpn import FPN
from .head import PredictionHead
from .maskiou import MaskIoUNet
from .protonet import ProtoNet

AUTOCAST_DTYPES = {"fp16": torch.float16, "float16": torch.float16,
                   "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


class Yolact(nn.Module):
    """YOLACT / YOLACT++ for a :class:`~yolact_edu.config.YolactConfig`.

    Children (names = checkpoint keys): ``backbone``, ``proto_net``, ``maskiou_net``
    (YOLACT++ only), ``fpn``, ``prediction_layers`` (one shared head), ``semantic_seg_conv``.
    """

    def __init__(self, cfg: YolactConfig | str = "yolact_base"):
        super().__init__()
        self.cfg = get_config(cfg) if isinstance(cfg, str) else cfg
        cfg = self.cfg
        self.backbone = build_backbone(cfg)
        in_channels = [self.backbone.channels[i] for i in cfg.selected_layers]
        self.proto_net = ProtoNet(cfg.fpn_features, cfg.proto_channels, cfg.num_protos)
        if cfg.use_maskiou:
            self.maskiou_net = MaskIoUNet(cfg.num_classes)
        self.fpn = FPN(in_channels, cfg.fpn_features, cfg.fpn_num_downsample)
        self.prediction_layers = nn.ModuleList([PredictionHead(
            cfg.fpn_features, cfg.num_classes, cfg.num_anchors, cfg.num_protos, cfg.head_channels)])
        self.semantic_seg_conv = nn.Conv2d(cfg.fpn_features, cfg.num_classes, kernel_size=1)
        self._prior_cache: dict = {}
        self.init_weights()

    # -- construction ---------------------------------------------------------------------
    def init_weights(self) -> None:
        """Xavier-uniform weights and zero biases for every conv outside the backbone
        (the original's init); the backbone keeps torchvision's init (or pretrained weights)."""
        for name, module in self.named_modules():
            if name.startswith("backbone") or not isinstance(module, nn.Conv2d):
                continue
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # -- preprocessing --------------------------------------------------------------------
    def preprocess(self, images) -> torch.Tensor:
        """Images -> normalised float tensor [B,3,S,S] (S = ``cfg.max_size``) on the model's device.

        images: an HxWx3 uint8 RGB numpy array, a list of them, or a uint8 tensor
        [3,H,W] / [B,3,H,W]; float arrays or tensors with values in [0, 1] are scaled by 255,
        other values refused (:func:`~yolact_edu.ops.preprocess.image_to_tensor`). Stretch-resize
        (bilinear, align_corners=False) on the float image, then (x - mean) / std in RGB
        (mean 123.68, 116.78, 103.94; std 58.40, 57.12, 57.38), or x / 255 for DarkNet.
        Output values roughly in [-2.2, 2.7].
        See :mod:`yolact_edu.ops.preprocess`.
        """
        return preprocess_images(self._as_list(images), self.cfg.max_size, self.cfg.normalization,
                                 self._device())

    @staticmethod
    def _as_list(images) -> list:
        if isinstance(images, (list, tuple)):
            return list(images)
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            return list(images)
        return [images]

    @staticmethod
    def image_size(image) -> tuple[int, int]:
        """(height, width) of an HxWx3 array or a [3,H,W] tensor."""
        if isinstance(image, np.ndarray):
            return int(image.shape[0]), int(image.shape[1])
        return int(image.shape[-2]), int(image.shape[-1])

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # -- network --------------------------------------------------------------------------
    def priors(self, feature_sizes: Sequence[tuple[int, int]], device) -> torch.Tensor:
        """Priors [P,4] for these FPN sizes, cached (they depend only on the sizes)."""
        key = (tuple(feature_sizes), str(device))
        if key not in self._prior_cache:
            self._prior_cache[key] = make_priors(feature_sizes, self.cfg, device)
        return self._prior_cache[key]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B,3,H,W] (normally S x S, from :meth:`preprocess`) -> raw outputs:

        loc [B,P,4] SSD regressions; conf [B,P,C+1] logits (column 0 = background);
        coef [B,P,k] in [-1,1]; proto [B,Hp,Wp,k] >= 0; priors [P,4] (cx,cy,w,h);
        segm [B,C,H3,W3] semantic logits (training mode only).
        """
        features = self.backbone(x)
        pyramid = self.fpn([features[i] for i in self.cfg.selected_layers])
        proto = self.proto_net(pyramid[0]).permute(0, 2, 3, 1).contiguous()
        head = self.prediction_layers[0]
        locs, confs, coefs = zip(*(head(level) for level in pyramid))
        out = {"loc": torch.cat(locs, 1), "conf": torch.cat(confs, 1), "coef": torch.cat(coefs, 1),
               "proto": proto,
               "priors": self.priors([tuple(p.shape[-2:]) for p in pyramid], x.device)}
        if self.training:
            out["segm"] = self.semantic_seg_conv(pyramid[0])
        return out

    # -- inference ------------------------------------------------------------------------
    def detect(self, raw: dict, image_sizes, score_threshold: float = 0.0,
               top_k: int | None = None, nms: str | None = "fast",
               iou_threshold: float | None = None, crop: bool = True,
               mask_threshold: float = 0.5, **kwargs) -> list[Detections]:
        """Raw outputs -> one :class:`Detections` per image; see :func:`yolact_edu.postprocess.detect`.

        image_sizes: (height, width) per image, or one pair for all.
        """
        return run_detect(raw, self.cfg, image_sizes, score_threshold=score_threshold,
                          top_k=top_k, nms=nms, iou_threshold=iou_threshold, crop=crop,
                          mask_threshold=mask_threshold,
                          maskiou_net=getattr(self, "maskiou_net", None), **kwargs)

    @torch.no_grad()
    def predict(self, images, autocast: str | None = None, **detect_kwargs):
        """One-line inference: images (as :meth:`preprocess`) -> Detections, or a list of
        them when ``images`` is a list or a 4-D tensor.

        autocast: None (fp32), "fp16" or "bf16" — run the network under
        ``torch.autocast`` (post-processing stays fp32).
        """
        single = not isinstance(images, (list, tuple)) and not (
            isinstance(images, torch.Tensor) and images.dim() == 4)
        image_list = self._as_list(images)
        was_training = self.training
        self.eval()  # BatchNorm must use its running statistics for inference
        try:
            x = self.preprocess(image_list)
            with self.autocast_context(autocast, x.device):
                raw = self(x)
        finally:
            self.train(was_training)
        results = self.detect(raw, [self.image_size(img) for img in image_list], **detect_kwargs)
        return results[0] if single else results

    @staticmethod
    def autocast_context(autocast: str | None, device: torch.device):
        """A ``torch.autocast`` context for "fp16"/"bf16", or a no-op for None."""
        if autocast is None:
            return contextlib.nullcontext()
        if autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be None, 'fp16' or 'bf16', got {autocast!r}")
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[autocast])
