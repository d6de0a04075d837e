"""Drawing detections (and reading/writing images) for figures, the CLI and widgets."""
from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np

from ..detections import Detections
from ..files.atomic_write import write_atomically


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a class index (golden-ratio hue walk)."""
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def encode_image(image: np.ndarray, suffix: str = ".png") -> bytes:
    """An HxWx3 uint8 RGB image encoded as a file of type ``suffix`` (".png", ".jpg", ...)."""
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as {suffix!r}")
    return encoded.tobytes()


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an HxWx3 uint8 RGB image (format from the suffix) atomically; creates parent folders.

    An OSError (full disk, no permission) names the path and the cause."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, encode_image(image, path.suffix or ".png"), fsync=False)


def draw_instances(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: list[int],
                   captions: list[str], alpha: float = 0.45, show_boxes: bool = True,
                   show_labels: bool = True) -> np.ndarray:
    """Overlay instances on a copy of ``image`` (HxWx3 uint8 RGB).

    masks [N,H,W] bool; boxes [N,4] xyxy pixels; labels [N] class indices (they pick the
    colour); captions [N] the text drawn by each box (above it where there is room; placed by
    :func:`caption_boxes` so that captions of touching objects do not cover each other).
    Instance 0 is painted last, so it stays on top, and its caption is placed first.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    for i in reversed(range(len(labels))):
        # Blend inside the mask's bounding rectangle only: on a 12-megapixel photo a float copy of
        # the whole image per mask would cost far more memory than the masks themselves.
        mask = np.asarray(masks[i]).astype(bool, copy=False)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            continue
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        region, inside = out[top:bottom, left:right], mask[top:bottom, left:right]
        color = np.array(class_color(int(labels[i])), np.float32)
        region[inside] = (region[inside].astype(np.float32) * (1 - alpha) + color * alpha).clip(0, 255).round()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for i in reversed(range(len(labels))):
        if show_boxes:
            x1, y1, x2, y2 = (int(v) for v in boxes[i])
            cv2.rectangle(out, (x1, y1), (x2, y2), class_color(int(labels[i])), thickness)
    if show_labels:
        scale = 0.4 * thickness
        # Labels last, over every box, where they do not cover each other (touching objects)
        for i, (x1, y1, x2, y2) in enumerate(caption_boxes(boxes, captions, out.shape[:2], scale)):
            if not captions[i]:
                continue
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), class_color(int(labels[i])), -1)
            (_, th), _ = cv2.getTextSize(captions[i], cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            cv2.putText(out, captions[i], (x1 + 1, y1 + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _rect_overlap(a, b) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


# captions may spread over at most this share of a picture; beyond it they pile up above their boxes
MAX_CAPTION_SHARE = 0.25


def caption_boxes(boxes, captions: list[str], image_shape: tuple[int, int],
                  scale: float = 0.4) -> list[tuple[int, int, int, int]]:
    """Where :func:`draw_instances` writes each caption: one (x1, y1, x2, y2) pixel rectangle
    (x2, y2 exclusive) per box, placed so that captions do not cover each other.

    boxes [N,4] xyxy pixels; captions [N] (an empty one takes no room); image_shape (H, W);
    scale: cv2's font scale. The first boxes choose first (pass them best score first). Each
    caption tries, in order: above the box's top-left corner, just inside it, below the box,
    inside its bottom-left corner, then the same rows shifted right by half the caption, then
    further above; it takes the first place that covers no caption already placed. Where every
    place covers one, or where spreading it would let captions cover more than
    :data:`MAX_CAPTION_SHARE` of the picture (a small image, many detections), it goes above its
    box after all: captions then pile up on each other rather than hide the picture they describe.
    Every place is kept inside the image.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    placed: list[tuple[int, int, int, int]] = []
    for box, caption in zip(np.asarray(boxes, np.float64).reshape(-1, 4), captions):
        if not caption:
            placed.append((0, 0, 0, 0))
            continue
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        w, h = tw + 2, th + base + 2
        x1, y1, _x2, y2 = (int(v) for v in box)
        rows = [y1 - h, y1, y2, y2 - h]
        candidates = [(x, y) for shift in (0, w // 2) for x, y in ((x1 + shift, r) for r in rows)]
        candidates += [(x1, y1 - k * h) for k in (2, 3)]
        chosen = None
        spread = sum((r[2] - r[0]) * (r[3] - r[1]) for r in placed) + w * h <= MAX_CAPTION_SHARE * height * width
        for x, y in candidates if spread else candidates[:1]:
            x = int(np.clip(x, 0, max(width - w, 0)))
            y = int(np.clip(y, 0, max(height - h, 0)))
            rect = (x, y, x + w, y + h)
            if chosen is None:
                chosen = rect                        # the fallback: above the box
            if not any(_rect_overlap(rect, other) for other in placed):
                chosen = rect
                break
        placed.append(chosen)
    return placed


def draw_detections(image: np.ndarray, detections: Detections, score_threshold: float = 0.0,
                    top_k: int | None = None, alpha: float = 0.45, show_boxes: bool = True,
                    show_labels: bool = True) -> np.ndarray:
    """Overlay masks, boxes and "class score" labels on a copy of ``image`` (HxWx3 uint8 RGB).

    The best-scoring detection is painted last so it stays on top.
    """
    dets = detections.cpu().filter(score_threshold, top_k)
    captions = [f"{name} {score:.2f}" for name, score in zip(dets.class_labels, dets.scores.tolist())]
    return draw_instances(image, dets.masks.numpy(), dets.boxes.numpy(), dets.labels.tolist(), captions,
                          alpha, show_boxes, show_labels)


def draw_annotations(dataset, index: int, alpha: float = 0.45) -> np.ndarray:
    """The ground truth of ``dataset[index]`` (a :class:`~yolact_edu.data.CocoDataset`) drawn on
    its original image: masks, boxes and class names ("crowd" marked), HxWx3 uint8 RGB."""
    image = dataset.load_image(index)
    if image is None:
        raise ValueError(f"image {dataset.image_info(index)['file_name']} of {dataset.annotation_file} "
                         f"cannot be read")
    target = dataset.load_target(index)
    labels = target["labels"].tolist()
    captions = [dataset.class_names[label] + (" (crowd)" if crowd else "")
                for label, crowd in zip(labels, target["iscrowd"].tolist())]
    return draw_instances(image, target["masks"].numpy(), target["boxes"].numpy(), labels, captions, alpha)


def show_annotations(dataset, index: int, ax=None):
    """Look before you train: draw the ground truth of ``dataset[index]`` with matplotlib.

    Shows masks, boxes and class names on the original image, titled with the file name and
    instance count. Returns the matplotlib Axes (a new figure when ``ax`` is None).
    """
    import matplotlib.pyplot as plt

    picture = draw_annotations(dataset, index)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6 * picture.shape[0] / picture.shape[1]))
    info = dataset.image_info(index)
    count = len(dataset.load_target(index)["labels"])
    ax.imshow(picture)
    ax.set_title(f"{info['file_name']}: {count} instance{'s' if count != 1 else ''}")
    ax.axis("off")
    return ax


def prototype_grid(proto, columns: int = 8, gap: int = 2) -> np.ndarray:
    """Prototypes [Hp,Wp,k] (a tensor or array, >= 0 after ReLU) -> one RGB uint8 mosaic.

    Each tile is scaled to its own [min, max] (prototypes differ in range by orders of magnitude)
    and coloured with viridis; tiles run left to right, top to bottom, prototype 0 first.
    """
    import matplotlib

    proto = proto.detach().float().cpu().numpy() if hasattr(proto, "detach") else np.asarray(proto, np.float32)
    height, width, k = proto.shape
    rows = -(-k // columns)
    columns = min(columns, k)
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    colormap = matplotlib.colormaps["viridis"]
    for i in range(k):
        tile = proto[..., i]
        span = tile.max() - tile.min()
        tile = (tile - tile.min()) / span if span > 0 else np.zeros_like(tile)
        r, c = divmod(i, columns)
        y, x = r * (height + gap), c * (width + gap)
        canvas[y:y + height, x:x + width] = (colormap(tile)[..., :3] * 255).astype(np.uint8)
    return canvas


def tile_grid(maps, columns: int = 8, gap: int = 2) -> np.ndarray:
    """Maps [k,H,W] (tensor or array, any sign) -> one float mosaic with NaN in the gaps.

    Unlike :func:`prototype_grid` the values are kept, so all tiles share one colour scale
    (``imshow(grid, cmap="RdBu_r", vmin=-m, vmax=m)``): that is what comparing contributions
    c_i P_i or running sums needs. NaN gaps render as the axes background."""
    maps = maps.detach().float().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps, np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must be [k,H,W], got shape {maps.shape}")
    k, height, width = maps.shape
    columns = max(1, min(columns, k))
    rows = max(1, -(-k // columns))
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan, np.float32)
    for i in range(k):
        r, c = divmod(i, columns)
        canvas[r * (height + gap):r * (height + gap) + height, c * (width + gap):c * (width + gap) + width] = maps[i]
    return canvas


LOSS_PARTS = ("box", "conf", "mask", "segm", "maskiou")


def _overlap_area(a, b) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(0.0, width) * max(0.0, height)


def place_box_labels(ax, requests, fontsize: float = 6):
    """Write one label per box on ``ax`` (an image axes) where it overlaps the labels already
    written least: above the box's top-left corner, else just inside it, else below or inside
    its bottom-left corner. ``requests``: (x1, y1, x2, y2) in data pixels, text, face colour;
    the first ones get the first choice (pass them best score first). Call it after the figure's
    layout is final (it measures the text as drawn). Returns the Text artists."""
    renderer = ax.figure.canvas.get_renderer()
    placed, artists = [], []
    for (x1, y1, _x2, y2), text, color in requests:
        artist = ax.text(x1, y1, text, fontsize=fontsize, color="black",
                         bbox={"facecolor": color, "pad": 0.5, "linewidth": 0, "alpha": 0.8})
        best = None
        # y grows downwards on an image: va="bottom" at y1 puts the label above the box
        for x, y, va in ((x1, y1 - 1, "bottom"), (x1 + 1, y1 + 1, "top"), (x1, y2 + 1, "top"),
                         (x1 + 1, y2 - 1, "bottom")):
            artist.set_position((x, y))
            artist.set_verticalalignment(va)
            extent = artist.get_window_extent(renderer).padded(1.5)
            cost = sum(_overlap_area(extent, other) for other in placed)
            if best is None or cost < best[0]:
                best = (cost, x, y, va, extent)
            if cost == 0:
                break
        _, x, y, va, extent = best
        artist.set_position((x, y))
        artist.set_verticalalignment(va)
        placed.append(extent)
        artists.append(artist)
    return artists


def plot_loss_curves(log: dict, ax=None, parts=LOSS_PARTS):
    """Loss components against iteration from :func:`yolact_edu.training.log.read_log`'s dict.

    Returns the matplotlib Axes (a new figure when ``ax`` is None)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    iterations = list(log["iteration"])
    # a run stopped at its first log row has one point per curve: without markers nothing is drawn
    marker = "o" if len(iterations) < 20 else None
    for part in parts:
        if part in log:
            ax.plot(iterations, log[part], label=part, marker=marker, markersize=4)
    if "total" in log:
        ax.plot(iterations, log["total"], label="total", color="black", linewidth=2, marker=marker, markersize=4)
    ax.set_xlabel("iteration")
    if len(set(iterations)) == 1:       # one point: a range around it, so the ticks are whole iterations
        ax.set_xlim(iterations[0] - 1, iterations[0] + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # no "5.2 iterations" on short runs
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax
