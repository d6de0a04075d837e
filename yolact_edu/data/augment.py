"""The original YOLACT training augmentation (its ``SSDAugmentation``; reference §4).

In order: photometric distortion, expand (zoom out onto a mean-coloured canvas), random
sample crop, horizontal mirror, stretch resize to ``max_size`` x ``max_size``; then boxes are
tightened to what is left of their masks and degenerate ones dropped. Image, boxes and masks
travel together as ``torchvision`` tv_tensors, so the geometric steps are torchvision's own
(``RandomZoomOut``, ``RandomHorizontalFlip``, ``functional.crop`` and ``functional.resize``)
wherever they do what the original does; the photometric distortion and the sample crop have
quirks torchvision does not reproduce (additive brightness, no clipping to 0..255, a crop
whose IoU test never fires) and are written out here.

Randomness comes from torch's generator (numpy draws are seeded from it), so
``torch.manual_seed`` and DataLoader worker seeding make a run reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..config import AUGMENTATIONS
from ..ops.preprocess import RGB_MEAN


@dataclass
class Sample:
    """One image with its objects, all in pixels of the current image.

    image   [3,H,W] float32, 0..255 RGB (may leave that range after photometric distortion)
    boxes   [n,4] float32 (x1, y1, x2, y2) pixels
    masks   [n,H,W] uint8 {0,1}
    labels  [n] int64 0-based class; iscrowd [n] bool
    """

    image: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    iscrowd: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, keep: torch.Tensor) -> Sample:
        return Sample(self.image, self.boxes[keep], self.masks[keep], self.labels[keep], self.iscrowd[keep])

    def as_tv(self) -> dict:
        """The torchvision v2 view: tv_tensors that geometric transforms move together."""
        height, width = self.image.shape[-2:]
        return {"image": tv_tensors.Image(self.image),
                "boxes": tv_tensors.BoundingBoxes(self.boxes, format="XYXY", canvas_size=(height, width)),
                "masks": tv_tensors.Mask(self.masks), "labels": self.labels, "iscrowd": self.iscrowd}

    @staticmethod
    def from_tv(out: dict) -> Sample:
        return Sample(out["image"].as_subclass(torch.Tensor), out["boxes"].as_subclass(torch.Tensor),
                      out["masks"].as_subclass(torch.Tensor), out["labels"], out["iscrowd"])


def _rng() -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2 ** 62, ())))


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The original's PhotometricDistort on an HxWx3 float32 RGB image (0..255), no clipping.

    Brightness +U(-32, 32) (p 1/2); then, in one of two orders chosen by a coin, contrast
    x U(0.5, 1.5) (p 1/2) before or after the HSV steps: saturation x U(0.5, 1.5) (p 1/2) and
    hue + U(-18, 18) degrees with wrap-around (p 1/2).
    """
    image = image.astype(np.float32, copy=True)
    if rng.integers(2):
        image += rng.uniform(-32, 32)

    def contrast(img):
        return img * rng.uniform(0.5, 1.5) if rng.integers(2) else img

    contrast_first = bool(rng.integers(2))
    if contrast_first:
        image = contrast(image)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)     # float input: H in degrees 0..360
    if rng.integers(2):
        hsv[:, :, 1] *= rng.uniform(0.5, 1.5)
    if rng.integers(2):
        hue = hsv[:, :, 0] + rng.uniform(-18, 18)
        hue[hue > 360.0] -= 360.0
        hue[hue < 0.0] += 360.0
        hsv[:, :, 0] = hue
    image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first:
        image = contrast(image)
    return image


def random_sample_crop(sample: Sample, rng: np.random.Generator, max_modes: int = 20) -> Sample:
    """The original's RandomSampleCrop.

    A mode is drawn uniformly from six: keep the image (1/6) or crop. For a crop, up to 50
    trials draw w, h ~ U(0.3, 1) x size with h/w in [0.5, 2] and a random position; objects
    whose box centre lies strictly inside are kept, and a trial needs at least one non-crowd
    object. Boxes are clipped to the crop, masks cropped. The five crop modes carry minimum
    IoUs of 0.1..0.9 in the original, but its test of them never fires (a known SSD bug kept
    on purpose: fixing it halved mAP), so they all behave alike and no IoU is checked here.
    After ``max_modes`` fruitless modes the image is kept as it is.
    """
    height, width = sample.image.shape[-2:]
    centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
    for _ in range(max_modes):
        if rng.integers(6) == 0:
            return sample
        for _ in range(50):
            w = rng.uniform(0.3 * width, width)
            h = rng.uniform(0.3 * height, height)
            if h / w < 0.5 or h / w > 2:
                continue
            left = rng.uniform(0, width - w)
            top = rng.uniform(0, height - h)
            x1, y1, x2, y2 = int(left), int(top), int(left + w), int(top + h)
            inside = ((centres[:, 0] > x1) & (centres[:, 1] > y1)
                      & (centres[:, 0] < x2) & (centres[:, 1] < y2))
            if not bool((inside & ~sample.iscrowd).any()):
                continue
            kept = sample.select(inside).as_tv()
            cropped = {key: TF.crop(value, y1, x1, y2 - y1, x2 - x1) if key in ("image", "boxes", "masks")
                       else value for key, value in kept.items()}     # boxes are clipped to the crop
            return Sample.from_tv(cropped)
    return sample


def shrink_boxes_to_masks(sample: Sample) -> Sample:
    """Shrink each box to the part of its mask that is left, and drop objects with no mask left.

    A crop through an irregular (occluded, ring-shaped) object leaves a clipped box much larger
    than the mask inside it, and the nearest-neighbour resize can thin a mask further; the
    original keeps such boxes, which trains the box and the mask crop on different extents.
    Applied after the final resize, box and mask describe the same pixels (within 1 px).
    """
    masks = sample.masks.bool()
    rows, cols = masks.any(2), masks.any(1)                          # [n,H], [n,W]
    present = rows.any(1)
    sample = Sample(sample.image, sample.boxes[present], sample.masks[present], sample.labels[present],
                    sample.iscrowd[present])
    rows, cols = rows[present], cols[present]
    if not len(sample):
        return sample
    height, width = rows.shape[1], cols.shape[1]
    x_first = cols.float().argmax(1)
    x_last = width - cols.flip(1).float().argmax(1)                  # exclusive
    y_first = rows.float().argmax(1)
    y_last = height - rows.flip(1).float().argmax(1)
    mask_boxes = torch.stack([x_first, y_first, x_last, y_last], 1).float()
    boxes = torch.cat([torch.maximum(sample.boxes[:, :2], mask_boxes[:, :2]),
                       torch.minimum(sample.boxes[:, 2:], mask_boxes[:, 2:])], 1)
    return Sample(sample.image, boxes, sample.masks, sample.labels, sample.iscrowd)


class SSDAugmentation:
    """Training augmentation of the original, ending in a ``max_size`` x ``max_size`` sample.

    ``min_box_pixels``: boxes narrower or shorter than this many pixels of the final input
    are dropped with their masks. (The original meant 4 px at 550 but compared pixels with a
    relative threshold, which removes only degenerate boxes; 1 px keeps that spirit while
    guarding the box encoder's log against near-zero sizes.)
    """

    def __init__(self, max_size: int, mean: tuple[float, float, float] = RGB_MEAN,
                 min_box_pixels: float = 1.0, redraws: int = 10, zoom_out: float = 4.0,
                 sample_crop: bool = True):
        self.max_size = max_size
        self.min_box_pixels = min_box_pixels
        self.redraws = redraws
        self.sample_crop = sample_crop
        # zoom_out / sample_crop: the original's expand (up to 4x) and random crop. Both make
        # objects smaller or cut them; a schedule of minutes learns faster without them
        # (zoom_out=1, sample_crop=False leaves photometric distortion and the mirror).
        self.expand = v2.RandomZoomOut(fill={tv_tensors.Image: list(mean), tv_tensors.Mask: 0},
                                       side_range=(1.0, max(zoom_out, 1.0)), p=0.5 if zoom_out > 1 else 0.0)
        self.mirror = v2.RandomHorizontalFlip(p=0.5)

    def resize(self, sample: Sample) -> Sample:
        """Stretch to max_size x max_size: bilinear image (as ``Yolact.preprocess``), nearest masks."""
        size = [self.max_size, self.max_size]
        out = Sample.from_tv({key: TF.resize(value, size, antialias=False)
                              if key in ("image", "boxes", "masks") else value
                              for key, value in sample.as_tv().items()})
        out.boxes = out.boxes.clamp(0, self.max_size)   # scaling can overshoot the edge by an ulp
        return out

    def drop_degenerate(self, sample: Sample) -> Sample:
        """Tighten boxes to their masks (:func:`shrink_boxes_to_masks`), then drop boxes below
        ``min_box_pixels`` in width or height."""
        sample = shrink_boxes_to_masks(sample)
        sizes = sample.boxes[:, 2:] - sample.boxes[:, :2]
        return sample.select((sizes >= self.min_box_pixels).all(1))

    def augment_once(self, sample: Sample) -> Sample:
        rng = _rng()
        image = photometric_distort(sample.image.permute(1, 2, 0).numpy(), rng)
        sample = Sample(torch.from_numpy(image).permute(2, 0, 1), sample.boxes, sample.masks,
                        sample.labels, sample.iscrowd)
        sample = Sample.from_tv(self.expand(sample.as_tv()))
        if self.sample_crop:
            sample = random_sample_crop(sample, rng)
        sample = Sample.from_tv(self.mirror(sample.as_tv()))
        return self.drop_degenerate(self.resize(sample))

    def __call__(self, sample: Sample) -> Sample:
        """A sample in image pixels -> an augmented sample at max_size x max_size.

        A draw that loses every object is re-drawn (the original draws another image); after
        ``redraws`` failures the plain resize is returned, which keeps every valid object.
        """
        for _ in range(self.redraws):
            out = self.augment_once(sample)
            if len(out) and bool((~out.iscrowd).any()):
                return out
        return self.drop_degenerate(self.resize(sample))



def augmentation(name: str, max_size: int) -> SSDAugmentation | None:
    """A training augmentation by name, as configs carry it (``cfg.augmentation``):

    - ``"original"``: the paper's: photometric distortion, zoom-out (up to 4x), random crop, mirror;
    - ``"light"``: photometric distortion and mirror only. Zoom-out and crop shrink and cut the
      objects, which a schedule of minutes cannot afford (docs/benchmarks.md compares the two
      on the shapes set);
    - ``"none"``: None, the plain resize of evaluation.
    """
    if name == "original":
        return SSDAugmentation(max_size)
    if name == "light":
        return SSDAugmentation(max_size, zoom_out=1.0, sample_crop=False)
    if name == "none":
        return None
    raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {name!r}")
