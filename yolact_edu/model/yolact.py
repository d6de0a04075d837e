"""The YOLACT model: image -> preprocess -> backbone -> FPN -> {protonet, head} -> raw dict
-> detect -> :class:`~yolact_edu.detections.Detections` (paper fig. 2)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config import YolactConfig, get_config
from ..detections import Detections
from ..loss import YolactLoss
from ..ops.anchors import make_priors
from ..postprocess import detect as run_detect
from .backbone import build_backbone
from .fpn import FPN
from .head import PredictionHead
from .maskiou import MaskIoUNet
from .protonet import ProtoNet
from .segmenter import DetectOptions, InstanceSegmenter


class Yolact(InstanceSegmenter, nn.Module):
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

    def criterion(self):
        """The training loss, ``(raw, targets) -> dict of scalar parts``: :class:`YolactLoss`,
        with this model's mask re-scoring net for YOLACT++."""
        loss = YolactLoss(self.cfg)
        maskiou_net = getattr(self, "maskiou_net", None)
        return lambda raw, targets: loss(raw, targets, maskiou_net=maskiou_net)

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
    nms_kinds = ("fast", "cross_class", "standard")
    detect_extras = ("conf_threshold", "interpolation", "num_protos", "timings")

    def forced_output_count(self, count: int):
        """Every prior a candidate, ``count`` detections kept (with ``score_threshold=0.0``)."""
        return self.settings(nms_conf_thresh=0.0, max_detections=int(count))

    def detections(self, raw: dict, image_sizes, options: DetectOptions, **extra) -> list[Detections]:
        """Raw outputs -> one :class:`Detections` per image; see :func:`yolact_edu.postprocess.detect`
        (the whole batch at once, on the model's device).

        Its own options: conf_threshold (a prior is a candidate when its best class scores above
        it; None: ``cfg.nms_conf_thresh``), interpolation, num_protos and timings.
        """
        return run_detect(raw, self.cfg, image_sizes, score_threshold=options.score_threshold, top_k=options.top_k,
                          nms=options.nms, iou_threshold=options.iou_threshold, crop=options.crop,
                          mask_threshold=options.mask_threshold, maskiou_net=getattr(self, "maskiou_net", None),
                          **extra)
