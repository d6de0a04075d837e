"""Drawing detections (and reading/writing images) for figures, the CLI and widgets."""
from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np

from .detections import Detections


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a class index (golden-ratio hue walk)."""
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; raises ValueError naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image {path} (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an HxWx3 uint8 RGB image (format from the suffix); creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path}")
    return path


def draw_detections(image: np.ndarray, detections: Detections, score_threshold: float = 0.0,
                    top_k: int | None = None, alpha: float = 0.45, show_boxes: bool = True,
                    show_labels: bool = True) -> np.ndarray:
    """Overlay masks, boxes and "class score" labels on a copy of ``image`` (HxWx3 uint8 RGB).

    The best-scoring detection is painted last so it stays on top.
    """
    dets = detections.cpu().filter(score_threshold, top_k)
    canvas = image.astype(np.float32).copy()
    masks = dets.masks.numpy()
    for i in reversed(range(len(dets))):
        color = np.array(class_color(int(dets.labels[i])), np.float32)
        mask = masks[i]
        canvas[mask] = canvas[mask] * (1 - alpha) + color * alpha
    out = canvas.clip(0, 255).astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for i in reversed(range(len(dets))):
        color = class_color(int(dets.labels[i]))
        x1, y1, x2, y2 = (int(v) for v in dets.boxes[i].tolist())
        if show_boxes:
            cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        if show_labels:
            text = f"{dets.class_labels[i]} {float(dets.scores[i]):.2f}"
            scale = 0.4 * thickness
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            top = max(0, y1 - th - base - 2)
            cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), color, -1)
            cv2.putText(out, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return out


def sample_image() -> np.ndarray:
    """The bundled 640x480 sample picture (procedurally painted shapes), HxWx3 uint8 RGB."""
    return read_image(Path(__file__).parent / "assets" / "sample.jpg")
