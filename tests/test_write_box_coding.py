"""Notebook 03 §3's learner-written encode/decode: the right answer passes on the shipped model's
real inputs, each usual mistake fails with its own hint, an unwritten stub asks to write it."""
import pytest
import torch

from yolact_edu.lessons.matching import classify_priors
from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model
from yolact_edu.lessons.write_box_coding import ROUND_TRIP, check_box_coding, stretched
from yolact_edu.ops.anchors import fpn_sizes, make_priors
from yolact_edu.ops.boxes import decode, encode


@pytest.fixture(scope="module")
def inputs():
    """What the notebook passes: image 50's ground truth against its positive priors, and the trained
    network's regressions for every prior."""
    model, val = tiny_shapes_model(), shapes_dataset("val")
    cfg = model.cfg
    priors = make_priors(fpn_sizes(cfg), cfg)
    _, target = val[50]
    match = classify_priors(target["boxes"], target["labels"], priors, cfg.positive_iou_threshold,
                            cfg.negative_iou_threshold)
    with torch.no_grad():
        raw = model(model.preprocess(val.load_image(50)))
    positive = match.positive
    return target["boxes"][match.gt_index[positive]], priors[positive], raw["loc"][0], priors


def centre_size(b):
    return (b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]


def right_encode(gt, priors):
    centre, size = centre_size(gt)
    return torch.cat([(centre - priors[:, :2]) / (0.1 * priors[:, 2:]), torch.log(size / priors[:, 2:]) / 0.2], 1)


def right_decode(loc, priors):
    centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * 0.2)
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def check(inputs, enc=right_encode, dec=right_decode):
    return check_box_coding(enc, dec, *inputs)


def test_the_library_is_what_the_check_compares_with(inputs):
    gt, priors, loc, all_priors = inputs
    assert len(gt) > 5 and torch.allclose(right_encode(gt, priors), encode(gt, priors), atol=1e-5)
    assert torch.allclose(right_decode(loc, all_priors), decode(loc, all_priors), atol=1e-6)
    assert not torch.allclose(stretched(priors)[:, 2], stretched(priors)[:, 3])     # non-square


def test_right_answer_passes(inputs):
    verdict = check(inputs)
    assert verdict and "gives the boxes back" in repr(verdict)


def test_unwritten_stubs_ask_to_write_them(inputs):
    def stub(*args):
        ...

    assert "write `encode`" in repr(check(inputs, enc=stub, dec=stub))
    assert "write `decode`" in repr(check(inputs, dec=stub))


def no_variance_encode(gt, priors):
    centre, size = centre_size(gt)
    return torch.cat([(centre - priors[:, :2]) / priors[:, 2:], torch.log(size / priors[:, 2:])], 1)


def no_log_encode(gt, priors):
    centre, size = centre_size(gt)
    return torch.cat([(centre - priors[:, :2]) / (0.1 * priors[:, 2:]), size / priors[:, 2:] / 0.2], 1)


def corner_encode(gt, priors):
    _, size = centre_size(gt)
    return torch.cat([(gt[:, :2] - priors[:, :2]) / (0.1 * priors[:, 2:]), torch.log(size / priors[:, 2:]) / 0.2], 1)


def gt_side_encode(gt, priors):
    centre, size = centre_size(gt)
    return torch.cat([(centre - priors[:, :2]) / (0.1 * size), torch.log(size / priors[:, 2:]) / 0.2], 1)


def swapped_side_encode(gt, priors):
    centre, size = centre_size(gt)
    side = priors[:, [3, 2]]
    return torch.cat([(centre - priors[:, :2]) / (0.1 * side), torch.log(size / side) / 0.2], 1)


@pytest.mark.parametrize("wrong, hint", [
    (no_variance_encode, "variances are missing"),
    (no_log_encode, "need the log"),
    (corner_encode, "not its top-left corner"),
    (gt_side_encode, "the prior's side"),
    (swapped_side_encode, "x goes with the width"),     # square priors hide it; the stretched ones show it
])
def test_each_encode_mistake_fails_with_its_hint(inputs, wrong, hint):
    verdict = check(inputs, enc=wrong)
    assert not verdict and hint in repr(verdict), repr(verdict)


def no_variance_decode(loc, priors):
    centre = priors[:, :2] + loc[:, :2] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:])
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def no_exp_decode(loc, priors):
    centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    size = priors[:, 2:] * loc[:, 2:] * 0.2
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def centre_size_decode(loc, priors):
    centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    return torch.cat([centre, priors[:, 2:] * torch.exp(loc[:, 2:] * 0.2)], 1)


def not_an_inverse_decode(loc, priors):
    # subtracts the offset: a decode that does not undo encode and matches no listed mistake
    centre = priors[:, :2] - loc[:, :2] * 0.1 * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(-loc[:, 2:] * 0.2)
    return torch.cat([centre - size / 2, centre + size / 2], 1)


@pytest.mark.parametrize("wrong, hint", [
    (no_variance_decode, "variances are missing"),
    (no_exp_decode, "needs exp"),
    (centre_size_decode, "this is (cx, cy, w, h)"),
    (not_an_inverse_decode, ROUND_TRIP),
])
def test_each_decode_mistake_fails_with_its_hint(inputs, wrong, hint):
    verdict = check(inputs, dec=wrong)
    assert not verdict and hint in repr(verdict), repr(verdict)


def test_a_crashing_answer_is_reported_not_raised(inputs):
    def broken(gt, priors):
        return gt @ priors                  # [n,4] @ [n,4]: a shape error

    verdict = check(inputs, enc=broken)
    assert not verdict and "`encode` raised RuntimeError" in repr(verdict)


def test_the_encoding_figure_shows_all_three_boxes_clearly(inputs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from yolact_edu.lessons.matching import ENCODING_STYLE, explain_encoding, plot_encoding
    from yolact_edu.ops.boxes import point_form

    gt, priors, loc, all_priors = inputs
    example = explain_encoding(gt[0], priors[0])
    _, ax = plt.subplots()
    plot_encoding(ax, example, 256, np.zeros((40, 40, 3), np.uint8), predicted_loc=example.loc.float() + 0.5)
    boxes = {patch.get_label(): patch for patch in ax.patches}
    assert set(boxes) == set(ENCODING_STYLE)                       # prior, ground truth, predicted: one each
    colours = {matplotlib.colors.to_hex(patch.get_edgecolor()) for patch in boxes.values()}
    assert len(colours) == 3 and all(patch.get_linewidth() >= 2.5 for patch in boxes.values())
    assert all(patch.get_path_effects() for patch in boxes.values())    # a black outline under each
    assert [text.get_text() for text in ax.get_legend().get_texts()] == list(ENCODING_STYLE)
    prior_px = point_form(priors[0].double()[None])[0] * 256
    assert boxes["prior"].get_x() == pytest.approx(float(prior_px[0]))
    plt.close("all")


def notebook_solution(marker: str) -> dict:
    """The function definitions of notebook 03's collapsed solution cell that contains ``marker``."""
    from pathlib import Path

    import nbformat

    from yolact_edu.ops.boxes import jaccard

    path = Path(__file__).resolve().parents[1] / "notebooks" / "03_anchors_matching_fast_nms.ipynb"
    cells = [cell for cell in nbformat.read(path, 4).cells if cell.cell_type == "code" and marker in cell.source
             and cell.metadata.get("jupyter", {}).get("source_hidden")]
    assert len(cells) == 1
    namespace = {"torch": torch, "jaccard": jaccard}
    exec(cells[0].source.split("\n\n\ncheck_")[0], namespace)
    return namespace


def test_the_notebooks_solution_passes(inputs):
    solution = notebook_solution("def encode(")
    assert check(inputs, enc=solution["encode"], dec=solution["decode"])
