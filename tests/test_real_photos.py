"""Notebook 02's real-photo section: the official COCO YOLACT when its file is in the weights folder
(a generated file of the official key layout stands in for the download: tests never touch the
network), the one-line fallback when it is absent or unusable, and the upload widget."""
import datetime

import cv2
import numpy as np
import pytest
import torch
from official_keys import make_state_dict

from yolact_edu.data.images import decode_image, decode_image_bytes
from yolact_edu.lessons.real_photos import lesson_photo, official_model_if_present, official_weights_path
from yolact_edu.viz.draw import prototype_grid
from yolact_edu.weights import OFFICIAL_FILES, weights_dir
from yolact_edu.widgets import PrototypeExplorer, UploadExplorer

BASE_FILE = OFFICIAL_FILES["yolact_base"]


def official_layout_state_dict() -> dict[str, torch.Tensor]:
    """yolact_base's official keys and shapes with random weights, tamed: raw N(0, 1) convolutions
    through 101 layers overflow to inf, so convolutions get He-like scale and BatchNorm identity
    statistics; then the forward pass gives finite prototypes and confident detections."""
    state_dict = make_state_dict("yolact_base", seed=0)
    for key, tensor in state_dict.items():
        if key.endswith("running_mean"):
            tensor.zero_()
        elif key.endswith("running_var"):
            tensor.fill_(1.0)
        elif tensor.dim() == 4:
            tensor.mul_(tensor[0].numel() ** -0.5)
    return state_dict


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    """A ``yolact_base_54_800000.pth`` of the official layout in a fresh weights folder."""
    home = tmp_path_factory.mktemp("home_with_weights")
    (home / "weights").mkdir()
    state_dict = official_layout_state_dict()
    torch.save(state_dict, home / "weights" / BASE_FILE)
    return home, state_dict


def use_home(monkeypatch, home) -> None:
    monkeypatch.setenv("YOLACT_EDU_HOME", str(home))


# -- the official model: absent, present, unusable -------------------------------------------------
def test_absent_file_gives_none_and_one_line_saying_how_to_get_it(tmp_path, monkeypatch):
    use_home(monkeypatch, tmp_path)
    model, message = official_model_if_present("yolact_base")
    assert model is None
    assert "\n" not in message
    assert str(tmp_path / "weights" / BASE_FILE) in message
    assert "`yolact-edu weights download yolact_base`" in message and "needs internet" in message
    assert message.endswith("carrying on with the shapes model")
    assert official_weights_path("yolact_base") == weights_dir() / BASE_FILE
    with pytest.raises(KeyError, match="yolact_im400"):       # no released file to look for
        official_weights_path("yolact_im400")


def test_present_file_loads_and_the_explorer_runs_on_a_real_photo(official_file, monkeypatch):
    home, state_dict = official_file
    use_home(monkeypatch, home)
    model, message = official_model_if_present("yolact_base")
    assert model is not None and not model.training
    assert model.cfg.name == "yolact_base" and model.cfg.num_classes == 80
    assert "\n" not in message and str(home / "weights" / BASE_FILE) in message
    key = "prediction_layers.0.conf_layer.weight"
    assert torch.equal(model.state_dict()[key], state_dict[key])      # the file's weights, not fresh ones

    photo, caption = lesson_photo(official=True)
    assert photo.dtype == np.uint8 and photo.shape == (600, 512, 3) and "Grace Hopper" in caption
    explorer = PrototypeExplorer(model, photo)
    proto = explorer.detections.proto
    assert proto.shape == (138, 138, 32) and torch.isfinite(proto).all()   # 550 px input / 4, k = 32
    assert prototype_grid(proto).shape == (4 * 140 - 2, 8 * 140 - 2, 3)
    assert len(explorer.detections) > 0
    assert set(explorer.detections.class_labels) <= set(model.cfg.class_names)   # COCO names
    assert explorer.stages["logits"].shape == (138, 138)           # eq. 1 assembled at prototype size
    assert explorer.mask_image.shape == photo.shape[:2]            # ... and shown at the photo's size
    assert explorer.mask_pixels == int(explorer.mask_image.sum())
    assert explorer.png.startswith(b"\x89PNG")


def test_a_truncated_file_falls_back_with_one_clear_line(tmp_path, monkeypatch):
    use_home(monkeypatch, tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / BASE_FILE).write_bytes(b"PK\x03\x04 cut short by a lost connection")
    model, message = official_model_if_present("yolact_base")
    assert model is None
    assert "\n" not in message
    assert message.startswith("cannot use the official yolact_base weights:")
    assert "is not a readable PyTorch checkpoint" in message and BASE_FILE in message
    assert "`yolact-edu weights download yolact_base --force`" in message
    assert message.endswith("carrying on with the shapes model")


def test_a_file_of_another_layout_falls_back_with_its_key_report_on_one_line(tmp_path, monkeypatch):
    use_home(monkeypatch, tmp_path)
    (tmp_path / "weights").mkdir()
    torch.save({"backbone.conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(3)},
               tmp_path / "weights" / BASE_FILE)
    model, message = official_model_if_present("yolact_base")
    assert model is None
    assert "\n" not in message
    # the loader's multi-line report (heading, missing, unexpected) joined into the one line
    assert "does not fit config 'yolact_base': missing keys: backbone.bn1.weight" in message
    assert "; unexpected keys: head.weight;" in message


def test_the_shapes_model_gets_a_shapes_image():
    image, caption = lesson_photo(official=False)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert caption.startswith("shapes val image")


# -- the upload widget --------------------------------------------------------------------------
def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image[:, :, ::-1])      # RGB -> the BGR OpenCV writes
    assert ok
    return encoded.tobytes()


def uploaded(name: str, content: bytes) -> tuple[dict, ...]:
    """FileUpload.value as ipywidgets 8 sets it after the browser sends a file."""
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


@pytest.fixture()
def picture():
    rng = np.random.RandomState(3)
    image = np.zeros((90, 130, 3), np.uint8)
    image[:] = (40, 90, 160)
    image[20:70, 30:100] = (230, 200, 30)                     # one box on a plain background
    return np.clip(image + rng.randint(0, 20, image.shape), 0, 255).astype(np.uint8)


def test_an_uploaded_png_is_explored_at_its_own_size(tiny_model, picture):
    widget = UploadExplorer(tiny_model)
    assert widget.explorer is None and widget.image is None and widget.explorer_box.children == ()
    widget.upload.value = uploaded("box.png", png_bytes(picture))       # what the browser does
    assert widget.filename == "box.png"
    assert np.array_equal(widget.image, picture)                          # PNG: lossless, RGB order kept
    assert isinstance(widget.explorer, PrototypeExplorer)
    assert widget.explorer_box.children == (widget.explorer,)
    assert np.array_equal(widget.explorer.image, picture)
    assert widget.explorer.mask_image.shape == (90, 130)
    assert widget.message == widget.status.value
    assert widget.message.startswith("box.png: 130x90 px, ") and "\n" not in widget.message
    assert widget.upload.value == ()                   # cleared, so the same file can be sent again


def test_a_file_that_is_not_an_image_keeps_the_previous_explorer(tiny_model, picture):
    widget = UploadExplorer(tiny_model)
    assert not widget.show_file("notes.txt", b"these are my notes, not a picture")
    assert widget.explorer is None and widget.image is None
    assert widget.message == ("notes.txt is not an image this reader can decode (JPEG, PNG, BMP, TIFF, WebP); "
                              "nothing shown yet")
    assert widget.show_file("box.png", memoryview(png_bytes(picture)))
    explorer = widget.explorer
    widget.upload.value = uploaded("broken.png", b"\x89PNG\r\n\x1a\n and then nothing")
    assert widget.explorer is explorer and widget.explorer_box.children == (explorer,)
    assert np.array_equal(widget.image, picture) and widget.filename == "box.png"
    assert widget.status.value == widget.message
    assert widget.message.startswith("broken.png is not an image") and widget.message.endswith("still showing box.png")
    assert not widget.show_file("empty.jpg", b"")



def test_a_photo_larger_than_a_screen_is_explored_at_screen_size(tiny_model, picture, monkeypatch):
    import yolact_edu.widgets.image_upload as upload

    monkeypatch.setattr(upload, "DISPLAY_SIDE", 65)                  # as a 12000x9000 photo meets 1280
    widget = UploadExplorer(tiny_model)
    assert widget.show_file("big.png", png_bytes(picture))           # 130x90
    assert widget.image.shape == (45, 65, 3) and widget.explorer.mask_image.shape == (45, 65)
    assert widget.message.startswith("big.png: 130x90 px, explored at 65x45, ")
    assert abs(float(widget.image.mean()) - float(picture.mean())) < 2        # the same picture, smaller
    assert upload.fit_to_display(picture, 200) is picture                     # one that fits is not touched


def test_a_photo_too_large_to_decode_is_refused_in_one_line(tiny_model, picture, monkeypatch):
    import yolact_edu.widgets.image_upload as upload

    widget = UploadExplorer(tiny_model)
    assert widget.show_file("box.png", png_bytes(picture))
    explorer = widget.explorer
    monkeypatch.setattr(upload, "MAX_UPLOAD_PIXELS", 10_000)
    monkeypatch.setattr(upload, "decode_image_bytes", lambda content: pytest.fail("decoded anyway"))
    assert not widget.show_file("huge.png", png_bytes(picture))      # 11,700 pixels declared
    assert widget.message.startswith("huge.png is 130x90 px, 0 megapixels: more than the 0 this explorer can "
                                      "decode") and widget.message.endswith("still showing box.png")
    assert widget.explorer is explorer and "\n" not in widget.message

def test_bytes_decode_as_the_same_file_decodes(tmp_path):
    """Uploads and files go through one conversion: 16-bit, grayscale and alpha alike."""
    wide = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 85)          # 16-bit grayscale
    rgba = np.dstack([np.full((24, 32, 3), (10, 120, 250), np.uint8), np.full((24, 32), 128, np.uint8)])
    for name, pixels in [("wide.png", wide), ("rgba.png", rgba)]:
        ok, encoded = cv2.imencode(".png", pixels)
        assert ok
        (tmp_path / name).write_bytes(encoded.tobytes())
        from_bytes = decode_image_bytes(encoded.tobytes())
        assert from_bytes.shape == (24, 32, 3) and from_bytes.dtype == np.uint8
        assert np.array_equal(from_bytes, decode_image(tmp_path / name))
    assert decode_image_bytes(b"") is None and decode_image_bytes(b"GIF89a?") is None
