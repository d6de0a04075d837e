"""Notebook 02's learner-written assembly and crop: the right code passes on the shipped model's real
prototypes, coefficients and boxes; each typical mistake fails with its own hint; the unanswered
stub asks for the code; the weights message shows no machine path (tests/test_notebook_outputs.py
checks every committed output)."""
import pytest
import torch
import torch.nn.functional as F

from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model
from yolact_edu.lessons.real_photos import official_model_if_present
from yolact_edu.lessons.write_assembly import check_assemble, check_crop


@pytest.fixture(scope="module")
def detections():
    found = tiny_shapes_model().predict(shapes_dataset("val").load_image(3), score_threshold=0.3)
    assert len(found) > 1 and found.proto.shape[0] != found.image_size[0]
    return found


# -- assemble(P, C) --------------------------------------------------------------------------------
def assemble(P, C):
    return torch.sigmoid(P @ C.T).permute(2, 0, 1)


def assemble_stub(P, C):
    ...


WRONG_ASSEMBLIES = {
    "P @ C.T puts the detections last": lambda P, C: torch.sigmoid(P @ C.T),                       # no permute
    "The product must run over the k prototypes": lambda P, C: torch.sigmoid(P @ C).permute(2, 0, 1),
    "rows and columns are swapped": lambda P, C: torch.sigmoid(P @ C.T).permute(2, 1, 0),
    "these are the logits": lambda P, C: (P @ C.T).permute(2, 0, 1),                               # no sigmoid
    "the sigmoid comes after the sum": lambda P, C: (torch.sigmoid(P) @ C.T).permute(2, 0, 1),
    "use torch.sigmoid, not tanh": lambda P, C: torch.tanh(P @ C.T).permute(2, 0, 1),
}


def test_the_right_assembly_passes_in_torch_numpy_and_einsum(detections):
    for right in (assemble, lambda P, C: torch.sigmoid(torch.einsum("hwk,nk->nhw", P, C)),
                  lambda P, C: assemble(P, C).numpy()):
        verdict = check_assemble(right, detections)
        assert verdict, verdict
        assert f"for {len(detections)} detections" in verdict.message


@pytest.mark.parametrize("hint", WRONG_ASSEMBLIES)
def test_each_wrong_assembly_fails_with_its_hint(detections, hint):
    verdict = check_assemble(WRONG_ASSEMBLIES[hint], detections)
    assert not verdict and hint in verdict.message, verdict


def test_the_unanswered_assembly_asks_for_the_code_and_inputs_stay_untouched(detections):
    verdict = check_assemble(assemble_stub, detections)
    assert not verdict and "write the body of `assemble_stub`" in verdict.message

    def in_place(P, C):
        P.mul_(0)
        raise ValueError("oops")

    before = detections.proto.clone()
    verdict = check_assemble(in_place, detections)
    assert not verdict and "raised ValueError: oops" in verdict.message
    assert torch.equal(detections.proto, before)


# -- crop(masks, boxes) --------------------------------------------------------------------------------
def crop(masks, boxes, margin=1.0):
    _, height, width = masks.shape
    cols, rows = torch.arange(width).view(1, 1, -1), torch.arange(height).view(1, -1, 1)
    x1, y1, x2, y2 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    keep = ((cols >= x1 * width - margin) & (cols < x2 * width + margin)
            & (rows >= y1 * height - margin) & (rows < y2 * height + margin))
    return masks * keep


def crop_without_margin(masks, boxes):
    """Whole cells only, no margin: another edge convention, still a right crop."""
    out = torch.zeros_like(masks)
    _, height, width = masks.shape
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        rows = slice(int(y1 * height), round(y2 * height))
        cols = slice(int(x1 * width), round(x2 * width))
        out[i, rows, cols] = masks[i, rows, cols]
    return out


def crop_in_pixels(masks, boxes):
    """The relative boxes used as if they were cells."""
    return crop(masks, boxes / torch.tensor(masks.shape[1:]).flip(0).repeat(2))


def crop_after_upsampling(masks, boxes, size):
    up = F.interpolate(masks[None], size, mode="bilinear", align_corners=False)[0]
    return crop(up, boxes)


def test_the_right_crop_passes_and_another_edge_convention_is_explained(detections):
    verdict = check_crop(crop, detections)
    assert verdict and "exactly the library's convention" in verdict.message, verdict
    assert "mean IoU 1.00" in verdict.message
    verdict = check_crop(crop_without_margin, detections)
    assert verdict and "border cells differ from the library" in verdict.message, verdict


def test_each_wrong_crop_fails_with_its_hint(detections):
    height, width = detections.image_size
    hp, wp = detections.proto.shape[:2]
    wrong = {
        "BEFORE upsampling": lambda m, b: crop_after_upsampling(m, b, (height, width)),
        "boxes are relative (0..1)": crop_in_pixels,
        "x goes with columns": lambda m, b: crop(m, b[:, [1, 0, 3, 2]]),
        "you zeroed the inside of the boxes": lambda m, b: m - crop(m, b),
        "the masks come back unchanged": lambda m, b: m,
    }
    for hint, function in wrong.items():
        verdict = check_crop(function, detections)
        assert not verdict and hint in verdict.message, (hint, verdict)
    # scaled by the image size instead of the prototype grid: the same hint as cells
    by_image = check_crop(lambda m, b: crop(m, b * torch.tensor([width / wp, height / hp] * 2)), detections)
    assert not by_image and "not x1 times the image size" in by_image.message
    # a crop two cells too wide is no longer an edge convention
    assert not check_crop(lambda m, b: crop(m, b, margin=4), detections)


def test_the_unanswered_crop_asks_for_the_code(detections):
    def stub(masks, boxes):
        ...

    verdict = check_crop(stub, detections)
    assert not verdict and "write the body of `stub`" in verdict.message


# -- no machine path -----------------------------------------------------------------------------------
def test_the_weights_message_writes_the_home_folder_as_a_tilde(tmp_path, monkeypatch):
    home = tmp_path / "someone"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("YOLACT_EDU_HOME", raising=False)
    here = tmp_path / "checkout" / "notebooks"      # neither it nor its parent holds the home folder
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    model, message = official_model_if_present("yolact_base")
    assert model is None
    assert "not found at ~/.cache/yolact_edu/weights/yolact_base_54_800000.pth" in message
    assert str(home) not in message

