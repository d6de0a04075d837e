"""The result of running an instance segmenter (YOLACT, Mask R-CNN, ...) on one image."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch


@dataclass
class Detections:
    """Detections of one image, sorted by score (descending).

    boxes       [N,4] float32, (x1, y1, x2, y2) in original-image pixels, clipped to the image;
                YOLACT's are truncated to whole pixels (as the original's ``postprocess``, so box AP
                matches it), the other families' keep their fractions
    scores      [N]   float32 class confidence in [0, 1]
    labels      [N]   int64, 0-based foreground class (index into ``class_names``)
    masks       [N,H,W] bool at the original image size
    coefs       [N,k] float32 mask coefficients in [-1, 1]; None for models without prototypes
    proto       [Hp,Wp,k] float32 prototypes of the image (>= 0), shared by all detections;
                None for models without prototypes (Mask R-CNN)
    mask_scores [N] float32 (YOLACT++: score x predicted mask IoU) or None
    boxes_rel   [N,4] float32 boxes relative to the input (0..1, unclipped), as used for the crop
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    coefs: torch.Tensor | None = None
    proto: torch.Tensor | None = None
    mask_scores: torch.Tensor | None = None
    boxes_rel: torch.Tensor | None = None
    class_names: tuple[str, ...] = ()

    _PER_DETECTION = ("boxes", "scores", "labels", "masks", "coefs", "mask_scores", "boxes_rel")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image the masks and boxes refer to."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def class_labels(self) -> list[str]:
        """Class names of the detections, in order."""
        return [self.class_names[i] if i < len(self.class_names) else str(i)
                for i in self.labels.tolist()]

    def __getitem__(self, index) -> Detections:
        """Select detections with an int, slice, index tensor or bool tensor [N]."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._PER_DETECTION:
            if values[name] is not None:
                values[name] = values[name][index]
        return Detections(**values)

    def filter(self, min_score: float = 0.0, top_k: int | None = None) -> Detections:
        """Detections with score >= ``min_score``, at most ``top_k`` of them."""
        keep = self.scores >= min_score
        scores = self.scores
        if bool((scores[:-1] >= scores[1:]).all()):
            # Sorted, as detect returns them: the kept ones are a prefix, and a slice is a view
            # (boolean indexing would copy every mask, 12 MB each on a 12-megapixel photo).
            count = int(keep.sum())
            return self[:count if top_k is None else min(count, top_k)]
        kept = self[keep]
        return kept[:top_k] if top_k is not None else kept

    def to(self, device) -> Detections:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                values[name] = value.to(device)
        return Detections(**values)

    def cpu(self) -> Detections:
        return self.to("cpu")

    def numpy(self) -> dict[str, np.ndarray | None]:
        """Plain numpy arrays (for drawing, saving or COCO export)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                out[f.name] = value.detach().cpu().numpy()
            elif f.name != "class_names":
                out[f.name] = value
        return out

    def __repr__(self) -> str:
        height, width = self.image_size
        top = ", ".join(f"{name} {score:.2f}" for name, score in
                        zip(self.class_labels[:5], self.scores[:5].tolist()))
        more = ", ..." if len(self) > 5 else ""
        return f"Detections({len(self)} in {width}x{height} image: [{top}{more}])"
