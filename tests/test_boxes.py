"""Box coding, IoU and the crop's edge semantics."""
import torch

from yolact_edu.ops.boxes import center_size, crop, decode, encode, jaccard, point_form


def test_encode_decode_round_trip():
    gen = torch.Generator().manual_seed(0)
    priors = torch.cat([torch.rand(50, 2, generator=gen), 0.05 + torch.rand(50, 2, generator=gen) * 0.5], 1)
    xy = torch.rand(50, 2, generator=gen) * 0.5
    boxes = torch.cat([xy, xy + 0.05 + torch.rand(50, 2, generator=gen) * 0.4], 1)
    assert torch.allclose(decode(encode(boxes, priors), priors), boxes, atol=1e-6)


def test_decode_zero_regression_is_the_prior():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.3, 0.1]])
    assert torch.allclose(decode(torch.zeros(2, 4), priors), point_form(priors))
    # variances: a unit x-offset moves the centre by 0.1 prior widths, a unit w by exp(0.2)
    moved = decode(torch.tensor([[1.0, 0.0, 1.0, 0.0]]), priors[:1])
    assert torch.allclose(center_size(moved), torch.tensor([[0.52, 0.5, 0.2 * torch.e ** 0.2, 0.4]]))


def test_jaccard_values_and_crowd_mode():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])
    assert torch.allclose(jaccard(a, b), torch.tensor([[1 / 7, 1 / 4, 0.0]]))
    assert torch.allclose(jaccard(a, b, iscrowd=True), torch.tensor([[1 / 4, 1 / 4, 0.0]]))
    batched = jaccard(torch.stack([a, a]), torch.stack([b[:1], b[1:2]]))
    assert batched.shape == (2, 1, 1)
    assert torch.allclose(batched.flatten(), torch.tensor([1 / 7, 1 / 4]))


def kept_columns(box, width=10, padding=1):
    masks = torch.ones(1, width, 1)
    out = crop(masks, torch.tensor([box], dtype=torch.float32), padding=padding)
    return out[0, :, 0].nonzero().flatten().tolist()


def test_crop_pads_one_pixel_and_uses_unrounded_bounds():
    # x1 = 0.3 -> 3.0 px, x2 = 0.6 -> 6.0 px; with 1 px padding columns 2..6 survive (c < 7).
    assert kept_columns([0.3, 0.0, 0.6, 1.0]) == [2, 3, 4, 5, 6]
    # fractional edges: lo = 2.55 - 1 = 1.55 keeps c >= 2; hi = 6.25 + 1 = 7.25 keeps c <= 7.
    assert kept_columns([0.255, 0.0, 0.625, 1.0]) == [2, 3, 4, 5, 6, 7]
    assert kept_columns([0.3, 0.0, 0.6, 1.0], padding=0) == [3, 4, 5]


def test_crop_clamps_at_image_edges_and_orders_coordinates():
    assert kept_columns([-0.5, 0.0, 0.05, 1.0]) == [0, 1]           # lo clamped to 0
    assert kept_columns([0.85, 0.0, 1.7, 1.0]) == [8, 9]            # lo 7.5; hi clamped to W
    assert kept_columns([0.6, 0.0, 0.3, 1.0]) == [2, 3, 4, 5, 6]    # x1 > x2 is reordered


def test_crop_rows_and_columns_independently():
    masks = torch.rand(8, 12, 2)
    boxes = torch.tensor([[0.25, 0.5, 0.5, 0.75], [0.0, 0.0, 1.0, 1.0]])
    out = crop(masks, boxes)
    inside = torch.zeros(8, 12, dtype=torch.bool)
    inside[3:7, 2:7] = True          # rows 4-1 .. 6+1 (exclusive 7), cols 3-1 .. 6+1
    assert torch.equal(out[..., 0] != 0, inside & (masks[..., 0] != 0))
    assert torch.equal(out[..., 1], masks[..., 1])
