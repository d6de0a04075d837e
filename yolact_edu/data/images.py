"""The one image reader: every image the package reads (datasets, ``predict``, ``data show``,
the bundled sample) goes through :func:`read_image`, so a 16-bit PNG or a grayscale JPEG means
the same pixels everywhere.

    >>> from yolact_edu.data.images import read_image, sample_image
    >>> image = read_image("photo.jpg")        # HxWx3 uint8 RGB
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..files.locations import assets_dir


def decode_image(path: str | Path) -> np.ndarray | None:
    """An image file in any layout as HxWx3 uint8 RGB, or None if it cannot be decoded.

    Grayscale is repeated to 3 channels, alpha dropped, 16-bit scaled to 8-bit (x / 257). EXIF
    orientation is ignored: COCO annotations refer to the pixels as stored.
    """
    return _as_rgb8(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))


def decode_image_bytes(data: bytes | bytearray | memoryview) -> np.ndarray | None:
    """An encoded image held in memory (an upload, a download) as HxWx3 uint8 RGB, or None if the
    bytes are not an image OpenCV can decode. Same conversions as :func:`decode_image`."""
    buffer = np.frombuffer(data, np.uint8)
    if buffer.size == 0:                 # imdecode asserts on an empty buffer instead of returning None
        return None
    return _as_rgb8(cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED))


def _as_rgb8(image: np.ndarray | None) -> np.ndarray | None:
    """OpenCV's decoded BGR(A)/gray array of any depth -> HxWx3 uint8 RGB (None stays None)."""
    if image is None or image.size == 0:
        return None
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


JPEG_START, JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"
TAIL_BYTES = 1 << 16      # where an end marker is looked for: cameras may append data after it


def truncation_problem(path: str | Path) -> str | None:
    """Why a JPEG or PNG file is incomplete, or None: a file cut short (an interrupted download, a
    full disk) still decodes, its missing rows filled in grey, so its end marker is checked instead
    (JPEG's end-of-image, PNG's IEND chunk). Other formats: None."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        size = handle.seek(0, 2)
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read()
    if head.startswith(JPEG_START) and JPEG_END not in tail:
        return "a JPEG without its end-of-image marker: the file is cut short"
    if head.startswith(PNG_START) and PNG_END not in tail:
        return "a PNG without its IEND chunk: the file is cut short"
    return None


def read_image(path: str | Path) -> np.ndarray:
    """:func:`decode_image`, with a FileNotFoundError or ValueError naming the file instead of None;
    a JPEG or PNG cut short is refused too (:func:`truncation_problem`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = decode_image(path)
    if image is None:
        raise ValueError(f"cannot decode image {path} (corrupt or not an image)")
    problem = truncation_problem(path)
    if problem is not None:
        raise ValueError(f"image {path} is incomplete ({problem})")
    return image


def sample_image() -> np.ndarray:
    """The bundled 640x480 sample picture (procedurally painted shapes), HxWx3 uint8 RGB."""
    return read_image(assets_dir() / "sample.jpg")


__all__ = ["decode_image", "decode_image_bytes", "read_image", "sample_image", "truncation_problem"]
