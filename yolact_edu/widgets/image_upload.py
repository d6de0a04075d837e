"""UploadExplorer: a file-upload button whose image goes straight into a :class:`PrototypeExplorer`.

A learner's own photo, through the library's image reader
(:func:`~yolact_edu.data.images.decode_image_bytes`), then the model, then the explorer
(notebook 02, section 7). A file that is not an image gives one line naming it and leaves the
explorer of the previous image in place.

    >>> from yolact_edu.widgets import UploadExplorer
    >>> upload = UploadExplorer(model)
    >>> upload                                           # in a notebook cell: pick a file
    >>> upload.show_file("cat.jpg", open("cat.jpg", "rb").read())   # what an upload does
    >>> upload.explorer.mask_pixels
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from ..data.images import decode_image_bytes
from .prototype_explorer import PrototypeExplorer
from .render import StaticSnapshot

PROMPT = "upload a picture (JPEG, PNG, BMP, TIFF, WebP): the explorer below then shows its detections"


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
        image = decode_image_bytes(content)
        if image is None:
            kept = f"still showing {self.filename}" if self.filename else "nothing shown yet"
            self._say(f"{name} is not an image this reader can decode (JPEG, PNG, BMP, TIFF, WebP); {kept}")
            return False
        self.explorer = PrototypeExplorer(self.model, image, score_threshold=self.score_threshold,
                                          top_k=self.top_k)
        self.image, self.filename = image, name
        self.explorer_box.children = (self.explorer,)
        height, width = image.shape[:2]
        self._say(f"{name}: {width}x{height} px, {len(self.explorer.detections)} detections "
                  f"above {self.score_threshold}")
        return True

    def snapshot_png(self) -> bytes:
        return self.explorer.png if self.explorer is not None else b""

    def _say(self, message: str) -> None:
        self.message = message
        self.status.value = message


__all__ = ["UploadExplorer", "PROMPT"]
