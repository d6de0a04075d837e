"""YOLACT++ made visible: deformable sampling points, DCN layout, mask re-scoring."""
import pytest
import torch
import torch.nn.functional as F

import yolact_edu as ye
from yolact_edu.lessons.landscape import yolact_plus as yp
from yolact_edu.model.backbone import ModulatedDeformConv
from yolact_edu.ops.mask_iou import pairwise_mask_iou


def _bilinear(image, points):
    """grid_sample with zero padding at (y, x) pixel-centre coordinates -> [n]."""
    h, w = image.shape
    grid = torch.stack([points[:, 1] / (w - 1) * 2 - 1, points[:, 0] / (h - 1) * 2 - 1], 1)[None, None]
    return F.grid_sample(image[None, None], grid, align_corners=True, padding_mode="zeros")[0, 0, 0]


def test_zero_offsets_give_the_regular_and_dilated_grids():
    offset = torch.zeros(1, 18, 10, 10)
    points = yp.kernel_sampling_points(offset, row=4, col=6)
    expected = torch.tensor([[y, x] for y in (3, 4, 5) for x in (5, 6, 7)], dtype=torch.float32)
    assert torch.equal(points, expected)
    dilated = yp.kernel_sampling_points(offset, row=4, col=6, padding=2, dilation=2)
    assert dilated[0].tolist() == [2, 4] and dilated[8].tolist() == [6, 8]
    strided = yp.kernel_sampling_points(offset, row=2, col=3, stride=2)
    assert strided[4].tolist() == [4, 6]                   # the centre tap sits on 2 * (row, col)
    with pytest.raises(ValueError, match="18 channels"):
        yp.kernel_sampling_points(torch.zeros(9, 4, 4), 1, 1)


def test_offset_channels_are_dy_dx_per_tap():
    offset = torch.zeros(18, 5, 5)
    offset[2 * 7, 2, 2] = 0.5          # tap 7 = (i=2, j=1): dy
    offset[2 * 7 + 1, 2, 2] = -1.25    # dx
    points = yp.kernel_sampling_points(offset, 2, 2)
    assert points[7].tolist() == [3.5, 0.75]
    assert torch.equal(yp.offsets_for_points(points, 2, 2, (5, 5))[0], offset)


def test_deform_conv_samples_are_bilinear_reads_at_the_sampling_points():
    torch.manual_seed(0)
    image = torch.rand(12, 14)
    offset = torch.randn(1, 18, 12, 14) * 1.5
    for row, col in ((5, 6), (0, 0), (11, 13)):
        points = yp.kernel_sampling_points(offset, row, col)
        assert torch.allclose(yp.deform_conv_samples(image, offset, row, col), _bilinear(image, points), atol=1e-5)


def test_the_model_layer_reads_the_same_points():
    # ModulatedDeformConv with constant offsets (bias only), modulation ~1 and a one-hot weight on
    # tap t outputs the bilinear sample at sampling point t: the layouts agree.
    torch.manual_seed(1)
    layer = ModulatedDeformConv(1, 9)
    deltas = torch.randn(18) * 0.8
    with torch.no_grad():
        layer.conv_offset_mask.bias[:18] = deltas
        layer.conv_offset_mask.bias[18:] = 30.0          # sigmoid -> 1
        layer.weight.copy_(torch.eye(9).reshape(9, 1, 3, 3))
        layer.bias.zero_()
        image = torch.rand(9, 9)
        out = layer(image[None, None])[0]
    offset = deltas[:, None, None].expand(18, 9, 9)
    points = yp.kernel_sampling_points(offset, 4, 4)
    assert torch.allclose(out[:, 4, 4], _bilinear(image, points), atol=1e-5)


def test_dcn_layout_matches_the_original_counts():
    plus_base = yp.dcn_layout(ye.get_config("yolact_plus_base"))
    assert [len(stage) for stage in plus_base] == [3, 4, 23, 3]
    assert sum(map(sum, plus_base)) == 11                 # interval 3
    assert sum(map(sum, yp.dcn_layout(ye.get_config("yolact_plus_resnet50")))) == 13
    assert sum(map(sum, yp.dcn_layout(ye.get_config("yolact_base")))) == 0
    with pytest.raises(ValueError, match="ResNet"):
        yp.dcn_layout(ye.get_config("yolact_darknet53"))


def test_rescoring_reranks_by_class_score_times_mask_iou():
    rows = yp.rescoring_table([0.92, 0.85, 0.60, 0.55], [0.55, 0.90, 0.30, 0.80], names=list("ABCD"))
    assert [r["detection"] for r in rows] == list("ABCD")             # listed by class score
    assert [r["rank by mask score"] for r in rows] == [2, 1, 4, 3]
    assert rows[1]["mask score"] == "0.765" and rows[0]["TP at IoU 0.75"] == "no"
    assert torch.allclose(yp.rescore(torch.tensor([0.5, 1.0]), torch.tensor([0.5, 0.2])), torch.tensor([0.25, 0.2]))


def test_mask_iou_and_best_ground_truth_iou_respect_classes():
    a = torch.zeros(3, 4, 4, dtype=torch.bool)
    a[0, :2] = True          # rows 0-1
    a[1, :, :2] = True       # cols 0-1
    gt = torch.zeros(2, 4, 4, dtype=torch.bool)
    gt[0, :2] = True
    gt[1, :, :2] = True
    ious = pairwise_mask_iou(a, gt)
    assert ious[0, 0] == 1 and torch.isclose(ious[0, 1], torch.tensor(4 / 12)) and ious[2].sum() == 0
    best = yp.best_ground_truth_iou(a, torch.tensor([0, 0, 0]), gt, torch.tensor([1, 0]))
    assert torch.allclose(best, torch.tensor([4 / 12, 1.0, 0.0]))   # det 0's perfect match has another class
    assert yp.best_ground_truth_iou(a, torch.zeros(3), gt[:0], torch.zeros(0)).tolist() == [0, 0, 0]


def test_maskiou_shape_flow_on_yolact_plus_prototypes():
    flow = yp.maskiou_shape_flow(138, 80)
    sides = [shape[-1] for _, shape in flow[1:6]]
    assert sides == [68, 33, 16, 7, 3]
    assert flow[-1][1] == (1, 80)


def test_published_ablations_cite_sources():
    assert all(row["source"] for row in yp.PUBLISHED_ABLATIONS)
    assert yp.PUBLISHED_ABLATIONS[0]["mask AP"] == "28.2 -> 34.1"


def test_oracle_rescoring_ap_on_two_shapes_images():
    from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model

    result = yp.oracle_rescoring_ap(tiny_shapes_model(), shapes_dataset("val"), max_images=2, batch_size=2)
    assert result["num_images"] == 2
    for key in ("class score", "oracle re-scored"):
        assert 0 <= result[key]["AP"] <= 1
    pairs = result["score_iou"]
    assert pairs.shape[1] == 2 and len(pairs) > 0
    assert ((pairs >= 0) & (pairs <= 1)).all()


def test_object_sampling_points_spread_over_the_object():
    mask = torch.zeros(20, 30)
    mask[8:13, 5:26] = 1                      # a wide bar: rows 8-12, cols 5-25
    points = yp.object_sampling_points(mask, row=10, col=15, fraction=1.0)
    assert points[4].tolist() == [10, 15]
    assert points[3].tolist() == [10, 5] and points[5].tolist() == [10, 25]     # reach the bar's ends
    assert points[1].tolist() == [8, 15] and points[7].tolist() == [12, 15]
    assert points[0].tolist() == [8, 13]       # diagonals stop at the top edge after 2 steps
    half = yp.object_sampling_points(mask, row=10, col=15, fraction=0.5)
    assert half[5].tolist() == [10, 20]


def test_plots_draw_what_they_claim():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = torch.zeros(24, 24)
    mask[6:18, 4:20] = 1
    fig = yp.plot_deformable_sampling(mask * 0.8, mask, 12, 12)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 and titles[0].endswith("9.0 of 9 taps on the object, reach 1.4 px")
    plt.close(fig)
    ax = yp.plot_dcn_layout([ye.get_config("yolact_plus_resnet50")])
    red = [p for p in ax.patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:red")]
    assert len(ax.patches) == 3 + 4 + 6 + 3 and len(red) == 13
    plt.close(ax.figure)
    ax = yp.plot_score_vs_iou(torch.tensor([[0.9, 0.5], [0.2, 0.8]]))
    assert len(ax.collections[0].get_offsets()) == 2
    plt.close(ax.figure)
