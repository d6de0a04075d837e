"""The YOLACT++ deformable convolution against a direct evaluation of the DCNv2 formula,
with the original CUDA kernel's channel layout (offset 2t = dy, 2t+1 = dx; mask t)."""
import math

import torch

from yolact_edu.model.backbone import ModulatedDeformConv, ResNetBackbone, dcn_blocks


def bilinear(image, y, x):
    """image [C,H,W]; zero outside; valid if -1 < y < H and -1 < x < W (DCNv2's rule)."""
    _, height, width = image.shape
    if not (-1 < y < height and -1 < x < width):
        return torch.zeros(image.shape[0], dtype=image.dtype)
    y0, x0 = math.floor(y), math.floor(x)
    out = torch.zeros(image.shape[0], dtype=image.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                out += wy * wx * image[:, yy, xx]
    return out


def direct_dcn(layer, x):
    raw = layer.conv_offset_mask(x)[0]
    offset, mask = raw[:18], torch.sigmoid(raw[18:])
    _, out_h, out_w = raw.shape
    out = torch.zeros(layer.weight.shape[0], out_h, out_w, dtype=x.dtype)
    for oy in range(out_h):
        for ox in range(out_w):
            acc = layer.bias.clone()
            for t in range(9):
                i, j = divmod(t, 3)
                y = oy * layer.stride - layer.padding + i + offset[2 * t, oy, ox]
                xx = ox * layer.stride - layer.padding + j + offset[2 * t + 1, oy, ox]
                sample = bilinear(x[0], float(y), float(xx)) * mask[t, oy, ox]
                acc = acc + layer.weight[:, :, i, j] @ sample
            out[:, oy, ox] = acc
    return out


def test_deform_conv_matches_the_dcnv2_formula():
    torch.manual_seed(0)
    for stride in (1, 2):
        layer = ModulatedDeformConv(3, 4, stride=stride).double()
        with torch.no_grad():
            layer.conv_offset_mask.weight.normal_(0, 0.3)
            layer.conv_offset_mask.bias.normal_(0, 0.5)
            layer.bias.normal_()
        x = torch.randn(1, 3, 7, 6, dtype=torch.float64)
        with torch.no_grad():
            assert torch.allclose(layer(x)[0], direct_dcn(layer, x), atol=1e-9)


def test_fresh_deform_conv_is_a_half_weighted_plain_conv():
    # Zero-initialised offsets and mask logits: regular grid, modulation sigmoid(0) = 0.5.
    torch.manual_seed(0)
    layer = ModulatedDeformConv(3, 5)
    x = torch.randn(2, 3, 9, 9)
    plain = torch.nn.functional.conv2d(x, layer.weight, None, padding=1) * 0.5 + layer.bias.view(1, -1, 1, 1)
    with torch.no_grad():
        assert torch.allclose(layer(x), plain, atol=1e-5)


def test_dcn_positions_follow_the_original_rule():
    assert [i for i, d in enumerate(dcn_blocks(23, 23, 3)) if d] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert [i for i, d in enumerate(dcn_blocks(4, 4, 3)) if d] == [0, 3]
    assert [i for i, d in enumerate(dcn_blocks(3, 3, 3)) if d] == [0]
    assert not any(dcn_blocks(3, 0, 1))

    def count(backbone):
        return sum(isinstance(m, ModulatedDeformConv) for m in backbone.modules())

    with torch.device("meta"):
        assert count(ResNetBackbone("resnet101", (0, 4, 23, 3), 3)) == 11
        assert count(ResNetBackbone("resnet50", (0, 4, 6, 3), 1)) == 13
