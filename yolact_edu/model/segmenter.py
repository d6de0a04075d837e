"""The faces every instance segmenter of the package shows (YOLACT, the teaching Mask R-CNN, the
relatives), so that one Trainer, one ``evaluate``, one CLI and one benchmark serve them all::

    x = model.preprocess(images)          # uint8 RGB images -> [B,3,S,S] normalised, on the device
    raw = model(x)                         # dict of raw tensors (what the network itself computes)
    parts = model.criterion()(raw, targets)    # training: dict of scalar loss parts
    found = model.detect(raw, image_sizes)     # list of Detections at each image's size
    found = model.predict(images)              # all of the above in one call (eval mode, no grad)

A two-stage model samples its proposals against the ground truth, so its training forward
needs the targets as well: such a model sets ``forward_takes_targets = True`` and the Trainer
calls ``model(x, targets)``.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..bench.cpu import refuse_emulated_bf16
from ..ops.preprocess import preprocess_images
from ..postprocess import check_fraction, check_output_cap

# What predict and detect keep by default, for every family: a detection scoring at least this.
# Evaluation passes 0.0 (mAP wants every detection); 0.05 is where the relatives' own candidate
# thresholds already stop, so one default means one thing everywhere.
DEFAULT_SCORE_THRESHOLD = 0.05

# settings() overrides, per model and per thread (a ContextVar: a new thread starts without any), so
# a widget's ``with model.settings(...)`` never changes the config a training thread reads.
_CONFIG_OVERRIDES: contextvars.ContextVar[tuple] = contextvars.ContextVar("yolact_edu_config_overrides",
                                                                         default=())

AUTOCAST_DTYPES = {"fp16": torch.float16, "float16": torch.float16,
                   "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def image_size(image) -> tuple[int, int]:
    """(height, width) of an HxWx3 array or a [3,H,W] tensor."""
    if isinstance(image, np.ndarray):
        return int(image.shape[0]), int(image.shape[1])
    return int(image.shape[-2]), int(image.shape[-1])


def as_image_list(images) -> tuple[list, bool]:
    """(the images as a list, whether they came as a batch): a list or tuple of images, or a 4-D
    tensor [B,3,H,W], is a batch; one HxWx3 array or [3,H,W] tensor is a single image."""
    if isinstance(images, (list, tuple)) or (isinstance(images, torch.Tensor) and images.dim() == 4):
        return list(images), True
    return [images], False


@dataclass(frozen=True)
class DetectOptions:
    """The post-processing options every family takes, checked, with one meaning everywhere.

    score_threshold  keep detections scoring >= this, in [0, 1]
    top_k            keep at most this many per image (the output cap); None: ``cfg.max_detections``
    mask_threshold   a mask pixel is on where its probability is > this, in [0, 1]
    nms              the suppression, one of the family's ``nms_kinds`` (its first by default)
    iou_threshold    the NMS IoU above which a box is suppressed; None: the config's
    crop             zero each mask outside its box (YOLACT's crop); asked as None, the family's own
                     way (``crop_default``: True for YOLACT and the RoI families, False for CondInst,
                     None for SOLOv2, which has no boxes)
    """

    score_threshold: float
    top_k: int | None
    mask_threshold: float
    nms: str
    iou_threshold: float | None
    crop: bool | None


class InstanceSegmenter:
    """Mixin for an ``nn.Module`` with a ``cfg`` (:class:`~yolact_edu.config.ModelConfig`) and a
    ``detections(raw, image_sizes, options, **extra)``: gives it ``preprocess``, ``detect`` (one set
    of options for every family, :class:`DetectOptions`), ``predict``, ``settings`` and ``optimize``.

    A family says what its post-processing can honour: ``nms_kinds`` (the first is its default),
    ``iou_refusal`` (why ``iou_threshold`` has no meaning for it, or None), ``crop_default`` and
    ``crop_refusals`` (the ``crop`` values it cannot honour and why), ``detect_extras`` (its own
    further options), and ``backbone_parameters()`` (what ``Trainer(freeze_backbone=True)`` freezes).
    """

    forward_takes_targets = False
    fast_path = None     # a FastPath on copies made by optimize(); None on a model as built
    nms_kinds: tuple[str, ...] = ("standard",)
    iou_refusal: str | None = None
    crop_default: bool | None = True
    crop_refusals: dict = {}
    detect_extras: tuple[str, ...] = ("timings",)

    # -- the config, safe to change from one thread while another reads it ------------------
    @property
    def cfg(self):
        for model, cfg in _CONFIG_OVERRIDES.get():
            if model is self:
                return cfg
        return self.__dict__["_base_cfg"]

    @cfg.setter
    def cfg(self, value) -> None:
        self.__dict__["_base_cfg"] = value

    @property
    def config_name(self) -> str:
        """The name messages give the model: its config's (e.g. "condinst_tiny"; ``cfg.family`` is
        the family, "condinst")."""
        return self.cfg.name

    def backbone_parameters(self):
        """The parameters ``Trainer(freeze_backbone=True)`` freezes: the ResNet/DarkNet body,
        never the FPN or the heads."""
        return self.backbone.parameters()

    def backbone_modules(self):
        """The modules holding :meth:`backbone_parameters` (kept in eval mode while frozen)."""
        return [self.backbone]

    def train(self, mode: bool = True):
        if mode and self.fast_path is not None:
            raise RuntimeError("this is an optimize()d copy for inference (its BatchNorm is folded away); "
                               "train the model it was made from")
        return super().train(mode)

    def optimize(self, autocast: str = "auto", channels_last: bool = True, compile: bool = False):
        """The fast path: a copy of this model for fast inference, same ``predict``, same detections
        (within rounding: boxes within a pixel, masks at IoU >= 0.95; ``tests/test_fast_path.py``).

        autocast: "auto" (fp16 on CUDA, bf16 on a CPU with native bf16, else fp32), "fp32", "fp16"
        or "bf16" (refused on a CPU without native bf16); channels_last: convolve in channels-last
        memory format; compile: ``torch.compile`` the network (meant for GPUs; no gain measured on a
        2-core CPU). BatchNorm is always
        folded into the convolutions. Call it after moving the model to its device:
        ``fast = model.to("cuda").optimize()``. See :mod:`yolact_edu.model.fast_path`.
        """
        from .fast_path import optimized_copy
        return optimized_copy(self, autocast=autocast, channels_last=channels_last, compile=compile)

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
        return preprocess_images(as_image_list(images)[0], self.cfg.max_size, self.cfg.normalization,
                                 self._device())

    image_size = staticmethod(image_size)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # -- inference ------------------------------------------------------------------------
    def detect_options(self, score_threshold=DEFAULT_SCORE_THRESHOLD, top_k=None, mask_threshold=0.5,
                       nms=None, iou_threshold=None, crop=None, **extra) -> DetectOptions:
        """The options checked against what this family can honour: a ValueError naming the
        family and the reason for a value out of range or an option it cannot honour. ``extra``:
        the family's own options (only their values are checked here: ``conf_threshold``, the score
        a candidate needs before NMS, in the families that take it)."""
        try:                # the same value checks as the post-processing's own, named for this model
            check_fraction("score_threshold", score_threshold)
            check_fraction("mask_threshold", mask_threshold)
            check_output_cap(top_k)
            if iou_threshold is not None and self.iou_refusal is None:
                check_fraction("iou_threshold", iou_threshold)
            if extra.get("conf_threshold") is not None:
                check_fraction("conf_threshold", extra["conf_threshold"])
        except ValueError as exc:
            raise ValueError(f"{self.config_name}: {exc}") from None
        kind = self.nms_kinds[0] if nms is None else nms
        if kind not in self.nms_kinds:
            raise ValueError(f"{self.config_name}: nms must be one of {', '.join(self.nms_kinds)}, got {nms!r}")
        if iou_threshold is not None and self.iou_refusal is not None:
            raise ValueError(f"{self.config_name} cannot honour iou_threshold: {self.iou_refusal}")
        if crop is not None:
            if not isinstance(crop, bool):
                raise ValueError(f"{self.config_name}: crop must be True, False or None, got {crop!r}")
            if crop in self.crop_refusals:
                raise ValueError(f"{self.config_name} cannot honour crop={crop}: {self.crop_refusals[crop]}")
        return DetectOptions(float(score_threshold), None if top_k is None else int(top_k), float(mask_threshold),
                             kind, None if iou_threshold is None else float(iou_threshold),
                             self.crop_default if crop is None else crop)

    def checked_options(self, score_threshold: float = DEFAULT_SCORE_THRESHOLD, top_k: int | None = None,
                        mask_threshold: float = 0.5, nms: str | None = None, iou_threshold: float | None = None,
                        crop: bool | None = None, **extra) -> tuple[DetectOptions, dict]:
        """(:class:`DetectOptions`, the family's own ``extra`` options), all checked; anything the
        family does not take is refused in one line naming it."""
        unknown = sorted(set(extra) - set(self.detect_extras))
        if unknown:
            takes = ", ".join(self.detect_extras)
            raise ValueError(f"{self.config_name}: detect does not take {', '.join(unknown)} "
                             f"(its own options: {takes})")
        return self.detect_options(score_threshold, top_k, mask_threshold, nms, iou_threshold, crop, **extra), extra

    def detect(self, raw: dict, image_sizes, **options) -> list:
        """Raw outputs (``self(x)`` in eval mode) -> one :class:`~yolact_edu.detections.Detections`
        per image, sorted by score. image_sizes: (height, width) per image, or one pair for all.

        options: :class:`DetectOptions`' fields (the same names, defaults and meaning in every
        family: score_threshold=0.05, top_k=None, mask_threshold=0.5, nms=None, iou_threshold=None,
        crop=None) and the family's own (``detect_extras``); anything else is refused."""
        checked, extra = self.checked_options(**options)
        return self.detections(raw, image_sizes, checked, **extra)

    def detections(self, raw: dict, image_sizes, options: DetectOptions, **extra) -> list:
        """The family's post-processing with checked ``options`` (see :meth:`detect`)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images, autocast: str | None = None, **detect_kwargs):
        """One-line inference: images (as :meth:`preprocess`) -> Detections, or a list of
        them when ``images`` is a list or a 4-D tensor. ``detect_kwargs``: :meth:`detect`'s options.

        autocast: None (fp32), "fp16" or "bf16" — run the network under
        ``torch.autocast`` (post-processing stays fp32); "bf16" on a CPU without native bf16 is
        refused (:func:`~yolact_edu.bench.cpu.refuse_emulated_bf16`).

        The model's mode is never changed (a training thread may be using it): a model in
        training mode predicts through an eval-mode copy of its current weights.
        """
        self.checked_options(**detect_kwargs)       # a wrong option is refused before the network runs
        image_list, batch = as_image_list(images)
        model = self.eval_copy() if self.training else self
        x = model.preprocess(image_list)
        raw = model.network(x, autocast)
        results = model.detect(raw, [self.image_size(img) for img in image_list], **detect_kwargs)
        return results if batch else results[0]

    def forced_output_count(self, count: int):
        """A context in which ``predict(image, score_threshold=0.0)`` returns ``count`` detections
        whatever the scores (no candidate threshold, no suppression where the family can lift it),
        so a timing pays for exactly that many masks. Each family knows which of its settings do it."""
        raise NotImplementedError

    def eval_copy(self):
        """An eval-mode copy of this model with its current weights (what :meth:`predict` runs on
        a model in training mode, so that the model's own mode, and any frozen BatchNorm, stay as
        they are). Its config is the one in force here (``settings`` included)."""
        copied = copy.deepcopy(self)
        copied.cfg = self.cfg
        return copied.eval()

    def network(self, x: torch.Tensor, autocast: str | None = None) -> dict:
        """The raw outputs for a preprocessed batch ``x`` [B,3,S,S], as ``self(x)``, under ``autocast``
        (None, "fp16" or "bf16"). On an :meth:`optimize`d copy: in channels-last, under the copy's
        autocast unless one is given, through its compiled network if it has one."""
        fast = self.fast_path
        if fast is None:
            with self.autocast_context(autocast, x.device):
                return self(x)
        if fast.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        forward = fast.compiled if fast.compiled is not None else self
        with torch.inference_mode(), self.autocast_context(autocast or fast.autocast, x.device):
            return forward(x)

    @contextlib.contextmanager
    def settings(self, **changes):
        """Run with some config fields changed (``with model.settings(max_detections=5): ...``).
        The change is seen only inside the block and only by this thread: ``model.cfg`` itself is
        never replaced, so a training thread or a widget sharing the model reads its own config.
        Only inference-time fields make sense here: the weights stay those of the original config."""
        token = _CONFIG_OVERRIDES.set(((self, self.cfg.replace(**changes)),) + _CONFIG_OVERRIDES.get())
        try:
            yield self
        finally:
            _CONFIG_OVERRIDES.reset(token)

    @staticmethod
    def autocast_context(autocast: str | None, device: torch.device):
        """A ``torch.autocast`` context for "fp16"/"bf16", or a no-op for None; bf16 only on a
        device that computes it natively."""
        if autocast is None:
            return contextlib.nullcontext()
        if autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be None, 'fp16' or 'bf16', got {autocast!r}")
        if AUTOCAST_DTYPES[autocast] == torch.bfloat16:
            refuse_emulated_bf16(device)
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[autocast])


__all__ = ["InstanceSegmenter", "DetectOptions", "DEFAULT_SCORE_THRESHOLD", "image_size", "as_image_list",
           "AUTOCAST_DTYPES"]
