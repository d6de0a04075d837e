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

import numpy as np
import torch

from ..bench.cpu import refuse_emulated_bf16
from ..ops.preprocess import preprocess_images

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


class InstanceSegmenter:
    """Mixin for an ``nn.Module`` with a ``cfg`` (:class:`~yolact_edu.config.ModelConfig`) and a
    ``detect(raw, image_sizes, **kwargs)``: gives it ``preprocess`` and ``predict``."""

    forward_takes_targets = False
    fast_path = None     # a FastPath on copies made by optimize(); None on a model as built

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
    @torch.no_grad()
    def predict(self, images, autocast: str | None = None, **detect_kwargs):
        """One-line inference: images (as :meth:`preprocess`) -> Detections, or a list of
        them when ``images`` is a list or a 4-D tensor.

        autocast: None (fp32), "fp16" or "bf16" — run the network under
        ``torch.autocast`` (post-processing stays fp32); "bf16" on a CPU without native bf16 is
        refused (:func:`~yolact_edu.bench.cpu.refuse_emulated_bf16`).
        """
        image_list, batch = as_image_list(images)
        was_training = self.training
        self.eval()  # BatchNorm must use its running statistics for inference
        try:
            x = self.preprocess(image_list)
            raw = self.network(x, autocast)
        finally:
            self.train(was_training)
        results = self.detect(raw, [self.image_size(img) for img in image_list], **detect_kwargs)
        return results if batch else results[0]

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
        """Run with some config fields changed (``with model.settings(max_detections=5): ...``);
        the config is restored afterwards, also after an error. Only inference-time fields make
        sense here: the weights stay those of the original config."""
        saved = self.cfg
        self.cfg = saved.replace(**changes)
        try:
            yield self
        finally:
            self.cfg = saved

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


__all__ = ["InstanceSegmenter", "image_size", "as_image_list", "AUTOCAST_DTYPES"]
