"""UploadExplorer: a file-upload button whose image goes straight into a :class:`PrototypeExplorer`.

A learner's own photo, through the library's image reader
(:func:`~yolact_edu.data.images.decode_image_bytes`), then the model, then the explorer
(notebook 02, section 7). A file that is not an image gives one line naming it and leaves the
explorer of the previous image in place. A photo larger than a screen is explored at screen size
(``DISPLAY_SIDE`` on its longer side, aspect kept, so the masks fit what is shown): at full
resolution a 108-megapixel upload took 76 s and 8.9 GB, and every slider move redrew it all. One
beyond ``MAX_UPLOAD_PIXELS`` is refused in one line before it is decoded.

    >>> from yolact_edu.widgets import UploadExplorer
    >>> upload = UploadExplorer(model)
    >>> upload                                           # in a notebook cell: pick a file
    >>> upload.show_file("cat.jpg", open("cat.jpg", "rb").read())   # what an upload does
    >>> upload.explorer.mask_pixels
"""
from __future__ import annotations

import io

import cv2
import ipywidgets as widgets
import numpy as np

from ..data.images import decode_image_bytes
from .prototype_explorer import PrototypeExplorer
from .render import StaticSnapshot

PROMPT = "upload a picture (JPEG, PNG, BMP, TIFF, WebP): the explorer below then shows its detections"
DISPLAY_SIDE = 1280             # longer side of what the explorer works on and draws, px
MAX_UPLOAD_PIXELS = 200_000_000     # beyond this even decoding the upload is out of a laptop's reach


def declared_size(content: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) an encoded image's header declares, read without decoding it (Pillow, which
    matplotlib brings), or None where the header cannot be read."""
    try:
        from PIL import Image
        with Image.open(io.BytesIO(bytes(content))) as image:
            return image.size
    except Exception:  # noqa: BLE001 - no Pillow, or a header it cannot read: the decoder decides
        return None


def fit_to_display(image: np.ndarray, side: int | None = None) -> np.ndarray:
    """The image scaled down (area averaging) so that its longer side is at most ``side`` (default
    ``DISPLAY_SIDE``), aspect kept; returned unchanged when it already fits."""
    side = DISPLAY_SIDE if side is None else side
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class UploadExplorer(StaticSnapshot, widgets.VBox):
    """An upload button, a status line and a :class:`PrototypeExplorer` on the last good upload.

    model: a :class:`~yolact_edu.Yolact` (eval mode is set for the prediction).
    score_threshold, top_k: passed to the explorer.

    State: ``image`` (HxWx3 uint8 RGB of the last good upload, or None), ``filename`` (its name),
    ``explorer`` (its :class:`PrototypeExplorer`, or None), ``message`` (the one-line status shown).
    """

    def __init__(self, model, *, score_threshold: float = 0.3, top_k: int = 10):
        self.model = model
        self.score_threshold, self.top_k = score_threshold, top_k
        self.image: np.ndarray | None = None
        self.filename: str | None = None
        self.explorer: PrototypeExplorer | None = None
        self.message = PROMPT
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="your picture")
        self.status = widgets.Label(PROMPT)
        self.explorer_box = widgets.VBox([])
        for widget, css in [(self.upload, "ye-upload"), (self.status, "ye-upload-status")]:
            widget.add_class(css)
        super().__init__([widgets.HBox([self.upload, self.status]), self.explorer_box])
        self.upload.observe(self._on_upload, names="value")

    def _on_upload(self, change) -> None:
        # ipywidgets 8: a tuple of {"name", "type", "size", "content": memoryview, "last_modified"}
        files = change["new"]
        if not files:
            return                            # our own reset below, or the front end clearing it
        self.show_file(files[-1]["name"], files[-1]["content"])
        # cleared so that uploading the same file again is a change the observer sees
        self.upload.value = ()

    def show_file(self, name: str, content: bytes | bytearray | memoryview) -> bool:
        """Decode ``content`` (an encoded image file called ``name``) and explore it.

        Returns True if it became the explored image; False if it is not an image, in which case
        ``message`` says so in one line and the previous ``image``/``explorer`` stay as they were.
        """
        kept = f"still showing {self.filename}" if self.filename else "nothing shown yet"
        declared = declared_size(content)
        if declared is not None and declared[0] * declared[1] > MAX_UPLOAD_PIXELS:
            self._say(f"{name} is {declared[0]}x{declared[1]} px, {declared[0] * declared[1] / 1e6:.0f} megapixels: "
                      f"more than the {MAX_UPLOAD_PIXELS / 1e6:.0f} this explorer can decode; scale it down "
                      f"first; {kept}")
            return False
        image = decode_image_bytes(content)
        if image is None:
            self._say(f"{name} is not an image this reader can decode (JPEG, PNG, BMP, TIFF, WebP); {kept}")
            return False
        height, width = image.shape[:2]
        image = fit_to_display(image)
        self.explorer = PrototypeExplorer(self.model, image, score_threshold=self.score_threshold,
                                          top_k=self.top_k)
        self.image, self.filename = image, name
        self.explorer_box.children = (self.explorer,)
        shown = "" if image.shape[:2] == (height, width) else f", explored at {image.shape[1]}x{image.shape[0]}"
        self._say(f"{name}: {width}x{height} px{shown}, {len(self.explorer.detections)} detections "
                  f"above {self.score_threshold}")
        return True

    def snapshot_png(self) -> bytes:
        return self.explorer.png if self.explorer is not None else b""

    def _say(self, message: str) -> None:
        self.message = message
        self.status.value = message


__all__ = ["UploadExplorer", "PROMPT", "DISPLAY_SIDE", "MAX_UPLOAD_PIXELS", "fit_to_display", "declared_size"]
