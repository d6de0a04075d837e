"""Image preprocessing shared by the model (:meth:`Yolact.preprocess`) and the datasets.

The official weights expect a stretch resize to S x S (aspect ratio not kept) and the
Caffe-style normalisation of the original: RGB mean (123.68, 116.78, 103.94), std
(58.40, 57.12, 57.38) on 0..255 values, or plain x / 255 for the DarkNet backbone.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Normalisation the official weights were trained with (Caffe BGR means/std, here in RGB order).
RGB_MEAN = (123.68, 116.78, 103.94)
RGB_STD = (58.40, 57.12, 57.38)
LARGE_IMAGE_PIXELS = 2**22   # from about 4 megapixels on, images are resized a channel at a time


def checked_pixels(image) -> torch.Tensor:
    """An image as a [3,H,W] tensor of its own pixels (a view where possible, nothing converted),
    after checking that it is one: uint8 (0..255), or floating point with values in [0, 1].

    image: an HxWx3 RGB numpy array or a [3,H,W] tensor. Anything else (float values outside
    [0, 1], NaN, 16-bit or bool pixels, other shapes) is refused with a ValueError rather than
    read as something it is not."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB image array, got shape {image.shape}")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a [3,H,W] image tensor, got shape {tuple(image.shape)}")
    else:
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(image).__name__}")
    if image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"image has no pixels (shape {tuple(image.shape)})")
    if image.dtype == torch.uint8:
        return image
    if not image.is_floating_point():
        raise ValueError(f"image pixels must be uint8 (0..255) or float in [0, 1], got {image.dtype}; "
                         "convert it, e.g. yolact_edu.data.images.read_image reads 16-bit files as uint8")
    low, high = float(image.min()), float(image.max())
    if not (0.0 <= low and high <= 1.0):       # also False for NaN
        raise ValueError(f"a float image must hold values in [0, 1], got min {low:g}, max {high:g}; "
                         "pass uint8 pixels (0..255) or divide by 255")
    return image


def _to_0_255(pixels: torch.Tensor, device) -> torch.Tensor:
    """Checked pixels (uint8, or float in [0, 1]) -> float32 on ``device`` with values 0..255.

    Moved first, converted on the device: a copy to a GPU then carries one byte per uint8 pixel
    instead of four (``.to(device, dtype)`` converts on the host for host-to-GPU copies)."""
    if pixels.dtype == torch.uint8:
        return pixels.to(device).to(torch.float32)
    return pixels.to(device).to(torch.float32) * 255.0


def image_to_tensor(image, device: torch.device | str = "cpu") -> torch.Tensor:
    """One image -> float32 [3,H,W] on ``device``, values 0..255.

    image: an HxWx3 RGB numpy array or a [3,H,W] tensor, either uint8 (0..255) or floating
    point with values in [0, 1] (the torchvision convention; scaled by 255 here); anything else
    is refused (:func:`checked_pixels`).
    """
    return _to_0_255(checked_pixels(image), device)


def resize_image(image, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One image (as :func:`image_to_tensor` takes) -> float32 [1,3,size,size], values 0..255:
    the stretch resize (bilinear, align_corners=False) on the float image.

    Bilinear resizing treats the channels independently, so a large photo is converted and
    resized one channel at a time: a third of the float32 copy (48 MB instead of 144 MB for 12
    megapixels), and the same numbers to within 2 ulp (torch chooses its kernel by channel and
    thread count: with one thread a 3-channel image takes a vectorised one that rounds differently)."""
    pixels = checked_pixels(image)
    if pixels[0].numel() < LARGE_IMAGE_PIXELS:
        channels = [pixels]
    else:
        channels = [pixels[c:c + 1] for c in range(3)]
    return torch.cat([F.interpolate(_to_0_255(part, device)[None], (size, size), mode="bilinear",
                                    align_corners=False) for part in channels], dim=1)


def normalize(images: torch.Tensor, normalization: str = "mean_std") -> torch.Tensor:
    """Float images [B,3,H,W] with values 0..255 -> network input.

    "mean_std": (x - mean) / std per RGB channel, values roughly in [-2.2, 2.7];
    "unit": x / 255 in [0, 1] (DarkNet).
    """
    if normalization == "unit":
        return images / 255.0
    if normalization != "mean_std":
        raise ValueError(f"normalization must be 'mean_std' or 'unit', got {normalization!r}")
    mean = torch.tensor(RGB_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(RGB_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def preprocess_images(images: list, max_size: int, normalization: str = "mean_std",
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """Images (see :func:`image_to_tensor`) -> normalised float tensor [B,3,S,S], S = ``max_size``.

    Each image is stretch-resized on its float values (bilinear, align_corners=False),
    exactly as the original's ``FastBaseTransform``, then normalised.
    """
    resized = torch.cat([resize_image(img, max_size, device) for img in images])
    return normalize(resized, normalization)
