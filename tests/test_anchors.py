"""Priors: counts, order and values against the formulas of the original (reference §1.4)."""
import math

import pytest
import torch

import yolact_edu as ye
from yolact_edu.ops.anchors import fpn_sizes, make_priors, num_priors


@pytest.mark.parametrize("name,expected", [
    ("yolact_base", 19_248), ("yolact_resnet50", 19_248), ("yolact_darknet53", 19_248),
    ("yolact_im400", 10_077), ("yolact_im700", 30_963),
    ("yolact_plus_base", 57_744), ("yolact_plus_resnet50", 57_744)])
def test_prior_counts(name, expected):
    cfg = ye.get_config(name)
    assert num_priors(cfg) == expected
    assert make_priors(fpn_sizes(cfg), cfg).shape == (expected, 4)


def test_fpn_sizes_match_the_network():
    # The map sizes the prior code assumes are the ones the model really produces.
    cfg = ye.get_config("yolact_tiny")
    model = ye.Yolact(cfg).eval()
    with torch.no_grad():
        raw = model(torch.zeros(1, 3, cfg.max_size, cfg.max_size))
    assert raw["priors"].shape[0] == num_priors(cfg) == raw["loc"].shape[1]
    assert fpn_sizes(ye.get_config("yolact_base")) == [(69, 69), (35, 35), (18, 18), (9, 9), (5, 5)]
    assert fpn_sizes(ye.get_config("yolact_im700"))[0] == (88, 88)


def reference_priors(cfg):
    """A literal loop over the original's order: levels, rows y, columns x, scales, ratios."""
    rows = []
    for (conv_h, conv_w), scales in zip(fpn_sizes(cfg), cfg.pred_scales):
        for j in range(conv_h):
            for i in range(conv_w):
                x, y = (i + 0.5) / conv_w, (j + 0.5) / conv_h
                for scale in scales:
                    for ar in cfg.aspect_ratios:
                        ar = math.sqrt(ar)
                        w = scale * ar / cfg.max_size
                        h = scale / ar / cfg.max_size
                        if cfg.square_anchors:
                            h = w
                        rows.append([x, y, w, h])
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize("name", ["yolact_base", "yolact_im400", "yolact_plus_base"])
def test_prior_order_and_values(name):
    cfg = ye.get_config(name)
    assert torch.equal(make_priors(fpn_sizes(cfg), cfg), reference_priors(cfg))


def test_v1_anchors_are_square_and_plus_anchors_are_not():
    base = make_priors(fpn_sizes(ye.get_config("yolact_base")), ye.get_config("yolact_base"))
    assert torch.equal(base[:, 2], base[:, 3])
    # First cell of P3: sides 24, 24/sqrt2... no: 24*sqrt(ar) for ar = 1, 1/2, 2.
    expected = torch.tensor([24, 24 * math.sqrt(0.5), 24 * math.sqrt(2)]) / 550
    assert torch.allclose(base[:3, 2], expected)
    assert torch.allclose(base[0, :2], torch.tensor([0.5 / 69, 0.5 / 69]))
    # The last prior is the bottom-right cell of P7 with the ar=2 anchor of side 384*sqrt2.
    assert torch.allclose(base[-1], torch.tensor([4.5 / 5, 4.5 / 5, 384 * math.sqrt(2) / 550,
                                                  384 * math.sqrt(2) / 550]))

    plus_cfg = ye.get_config("yolact_plus_base")
    plus = make_priors(fpn_sizes(plus_cfg), plus_cfg)
    ratios = plus[:9, 2] / plus[:9, 3]
    assert torch.allclose(ratios, torch.tensor([1, 0.5, 2] * 3))      # scale-major order
    sides = (plus[:9:3, 2] * 550)
    assert torch.allclose(sides, torch.tensor([24.0, 30.238, 38.098]), atol=1e-3)
