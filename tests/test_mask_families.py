"""Toy mask-assembly rules of YOLACT, BlendMask, CenterMask, CondInst and SOLO/SOLOv2."""
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from yolact_edu.lessons.landscape import family_demos as fd  # noqa: E402
from yolact_edu.lessons.landscape import mask_families as mf  # noqa: E402

H, W = 24, 32


def _boxes():
    return torch.tensor([[2.0, 3.0, 12.0, 15.0], [15.0, 4.0, 30.0, 20.0]])


def test_yolact_is_sigmoid_of_the_linear_combination_cropped_to_the_box():
    g = torch.Generator().manual_seed(0)
    protos = torch.rand(5, H, W, generator=g)
    coefs = torch.rand(2, 5, generator=g) * 2 - 1
    masks = mf.yolact_masks(protos, coefs, _boxes())
    assert masks.shape == (2, H, W)
    expected = torch.sigmoid(torch.einsum("nk,khw->nhw", coefs, protos))
    assert torch.allclose(masks[0, 5:12, 5:10], expected[0, 5:12, 5:10], atol=1e-6)   # inside box 0
    assert masks[0, :, 14:].abs().max() == 0 and masks[0, 17:].abs().max() == 0         # outside (+1 px pad)


def test_blendmask_blends_cropped_bases_with_softmaxed_attention():
    bases = torch.stack([torch.full((H, W), 2.0), torch.full((H, W), -2.0)])
    boxes = _boxes()
    # attention all on base 0 for instance 0, all on base 1 for instance 1
    attn = torch.zeros(2, 2, 7, 7)
    attn[0, 0], attn[1, 1] = 50.0, 50.0
    roi, masks = mf.blendmask_masks(bases, attn, boxes, resolution=14)
    assert roi.shape == (2, 14, 14) and masks.shape == (2, H, W)
    assert torch.allclose(roi[0], torch.sigmoid(torch.tensor(2.0)), atol=1e-4)
    assert torch.allclose(roi[1], torch.sigmoid(torch.tensor(-2.0)), atol=1e-4)
    assert masks[0, 8, 6] > 0.8 and masks[0, 20, 25] == 0       # pasted inside its box only
    # equal attention -> the mean of the bases (0) -> 0.5
    roi_even, _ = mf.blendmask_masks(bases, torch.zeros(2, 2, 7, 7), boxes, resolution=14)
    assert torch.allclose(roi_even, torch.full_like(roi_even, 0.5), atol=1e-5)


def test_centermask_runs_a_per_roi_head_with_spatial_attention():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(6, H, W, generator=g)
    out = mf.centermask_masks(features, _boxes(), torch.randn(1, 2, 3, 3, generator=g), torch.zeros(1),
                              torch.randn(6, generator=g), torch.tensor(0.1))
    assert out["roi_features"].shape == (2, 6, 14, 14)
    assert out["attention"].shape == (2, 1, 14, 14)
    assert ((out["attention"] > 0) & (out["attention"] < 1)).all()
    assert out["roi_masks"].shape == (2, 28, 28) and out["masks"].shape == (2, H, W)
    # attention from the channel max: zero weights except the max tap -> sigmoid(max)
    weight = torch.zeros(1, 2, 3, 3)
    weight[0, 1, 1, 1] = 1.0
    roi = out["roi_features"]
    assert torch.allclose(mf.spatial_attention(roi, weight, torch.zeros(1))[:, 0],
                          torch.sigmoid(roi.amax(dim=1)), atol=1e-6)


def test_condinst_parameter_count_and_layout():
    assert mf.condinst_num_params(8) == 169             # CondInst's default head
    assert mf.condinst_num_params(3, hidden=4, num_layers=2) == (5 * 4 + 4) + (4 * 1 + 1)
    params = torch.arange(169, dtype=torch.float32)[None]
    weights, biases = mf.split_dynamic_params(params, 8)
    assert [tuple(w.shape) for w in weights] == [(1, 8, 10), (1, 8, 8), (1, 1, 8)]
    assert [tuple(b.shape) for b in biases] == [(1, 8), (1, 8), (1, 1)]
    assert weights[0][0, 0, 1] == 1 and weights[1][0, 0, 0] == 80 and biases[0][0, 0] == 152
    with pytest.raises(ValueError, match="169"):
        mf.split_dynamic_params(torch.zeros(1, 100), 8)


def test_relative_coordinates_are_location_minus_pixel():
    coords = mf.relative_coordinates(torch.tensor([[10.5, 4.5]]), H, W, scale=2.0)
    assert coords.shape == (1, 2, H, W)
    assert coords[0, :, 4, 10].abs().max() == 0                 # at the location itself
    assert coords[0, 0, 4, 14] == -2.0 and coords[0, 1, 8, 10] == -2.0


def test_condinst_handset_diamond_filter_reproduces_the_l1_ball_anywhere():
    features = torch.rand(8, H, W)
    locations = torch.tensor([[8.5, 8.5], [22.5, 14.5]])
    params = mf.condinst_handset_params(8, radius=5.0).expand(2, -1)
    masks = mf.condinst_masks(features, locations, params) > 0.5
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    for mask, (x, y) in zip(masks, locations):
        expected = (xs - x).abs() + (ys - y).abs() < 5.0 - 1e-3
        assert torch.equal(mask, expected)          # same filter, mask follows the location


def test_condinst_handset_box_filter_with_foreground_gate():
    fg = torch.zeros(H, W)
    fg[:, :16] = 1
    features = torch.cat([fg[None], torch.rand(7, H, W)])
    params = mf.condinst_handset_params(8, radius=(6.0, 3.0), shape="box", foreground_channel=0)
    mask = mf.condinst_masks(features, torch.tensor([[14.5, 10.5]]), params[None])[0] > 0.5
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    expected = ((xs - 14.5).abs() <= 6) & ((ys - 10.5).abs() <= 3) & (fg > 0)
    assert torch.equal(mask, expected)
    with pytest.raises(ValueError, match="shape"):
        mf.condinst_handset_params(8, 1.0, shape="circle")


def test_solo_grid_cell_puts_the_centre_in_the_expected_cell():
    centers = torch.tensor([[0.55 * 100, 0.30 * 80], [0.0, 0.0], [100.0, 80.0], [99.9, 1.0]])
    cells = mf.solo_grid_cell(centers, height=80, width=100, grid=5)
    assert cells.tolist() == [1 * 5 + 2, 0, 24, 4]


def test_solo_center_cells_cover_the_centre_region_only():
    mask = torch.zeros(40, 40)
    mask[10:14, 10:14] = 1                 # small object well inside cell (1,1) of a 4x4 grid
    assert mf.solo_center_cells(mask, grid=4).tolist() == [5]
    big = torch.zeros(40, 40)
    big[0:40, 0:40] = 1                    # centre exactly on a cell corner, huge region
    cells = mf.solo_center_cells(big, grid=4, epsilon=0.5).tolist()
    assert 10 in cells and len(cells) <= 9
    assert set(cells) == {5, 6, 7, 9, 10, 11, 13, 14, 15}   # at most one cell around the centre's
    assert mf.solo_center_cells(torch.zeros(8, 8), grid=4).numel() == 0


def test_solov2_convolves_a_kernel():
    features = torch.randn(6, H, W)
    kernels = torch.randn(3, 6)
    out = mf.solov2_masks(features, kernels)
    assert out.shape == (3, H, W)
    assert torch.allclose(out[1], torch.sigmoid((kernels[1][:, None, None] * features).sum(0)), atol=1e-6)


def test_solov2_handset_kernel_picks_the_foreground_inside_a_disc():
    fg = torch.zeros(33, 33)
    fg[5:28, 5:20] = 1
    features = mf.coordinate_features(fg)
    assert features.shape == (5, 33, 33)
    mask = mf.solov2_masks(features, mf.solov2_handset_kernel((0.0, 0.0), 0.5)[None])[0] > 0.5
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 33), torch.linspace(-1, 1, 33), indexing="ij")
    expected = (xs ** 2 + ys ** 2 < 0.25 - 1e-3) & (fg > 0)
    assert torch.equal(mask, expected)


def test_matrix_nms_decays_duplicates_but_not_distinct_masks():
    a = torch.zeros(10, 10)
    a[2:6, 2:6] = 1
    near = a.clone()
    near[6, 2:6] = 1                       # IoU 0.8 with a
    far = torch.zeros(10, 10)
    far[7:10, 7:10] = 1
    masks = torch.stack([a, near, a, far])
    labels = torch.tensor([0, 0, 1, 0])    # the third is a duplicate of another class
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    decayed = mf.matrix_nms(masks, labels, scores)
    assert decayed[0] == 0.9                                     # the best mask keeps its score
    assert torch.isclose(decayed[1], 0.8 * torch.exp(torch.tensor(-2.0 * 0.8 ** 2)))
    assert decayed[2] == 0.7 and decayed[3] == 0.6              # other class / no overlap: untouched
    linear = mf.matrix_nms(torch.stack([a, a]), torch.tensor([0, 0]), torch.tensor([0.9, 0.8]), kernel="linear")
    assert linear[1] == 0
    with pytest.raises(ValueError):
        mf.matrix_nms(masks, labels, scores, kernel="box")
    assert mf.matrix_nms(torch.zeros(0, 4, 4), torch.zeros(0), torch.zeros(0)).numel() == 0


def test_matrix_nms_compensates_for_an_already_suppressed_suppressor():
    # b duplicates a; c duplicates b (not a). b is decayed, so its decay of c is compensated.
    a, b, c = torch.zeros(3, 1, 12)
    a[0, 0:6], b[0, 1:7], c[0, 6:12] = 1, 1, 1
    scores = mf.matrix_nms(torch.stack([a, b, c]), torch.zeros(3), torch.tensor([0.9, 0.8, 0.7]))
    iou_ab, iou_bc = 5 / 7, 1 / 11
    assert torch.isclose(scores[1], torch.tensor(0.8 * torch.exp(torch.tensor(-2 * iou_ab ** 2)).item()))
    # c's decay by b, exp(-2 iou_bc^2), is divided by b's own decay exp(-2 iou_ab^2) -> > 1 -> min is 1
    assert scores[2] == pytest.approx(0.7)
    assert scores[2] > 0.7 * torch.exp(torch.tensor(-2 * iou_bc ** 2))


def test_per_instance_macs_at_the_usual_sizes():
    assert mf.per_instance_macs("YOLACT (2019)") == 32 * 138 * 138
    assert mf.per_instance_macs("condinst") == 152 * 100 * 136
    assert mf.per_instance_macs("SOLOv2") == 256 * 200 * 272
    costs = {f["family"]: mf.per_instance_macs(f["family"]) for f in mf.FAMILIES}
    assert max(costs, key=costs.get).startswith("CenterMask")      # a whole head per RoI
    assert min(costs, key=costs.get).startswith("BlendMask")
    with pytest.raises(KeyError):
        mf.per_instance_macs("mask r-cnn")


def test_every_family_reassembles_the_toy_scene():
    scene = fd.toy_scene()
    assert scene.masks.shape == (3, 64, 64) and scene.boxes.shape == (3, 4)
    demos = fd.family_demos(scene)
    assert list(demos) == ["YOLACT", "BlendMask", "CenterMask", "CondInst", "SOLOv2"]
    for name, demo in demos.items():
        assert demo.masks.shape == (3, 64, 64), name
        pred = demo.masks > 0.5
        iou = (pred & (scene.masks > 0)).sum((1, 2)) / (pred | (scene.masks > 0)).sum((1, 2))
        assert (iou > 0.85).all(), (name, iou)


def test_solo_duplicates_are_cleaned_by_matrix_nms():
    scene = fd.toy_scene()
    dup = fd.solov2_duplicates(scene, grid=8)
    assert len(dup["scores"]) > len(scene.labels)                 # several cells fire per object
    assert (dup["scores"][:-1] >= dup["scores"][1:]).all()
    decayed = mf.matrix_nms(dup["masks"], dup["labels"], dup["scores"])
    for owner in range(3):
        mine = (dup["owner"] == owner).nonzero()[:, 0]
        assert decayed[mine[0]] == dup["scores"][mine[0]]          # the best cell survives
        assert (decayed[mine[1:]] < 0.3).all()                    # its duplicates drop


def test_gallery_figure_has_a_row_per_family():
    import matplotlib.pyplot as plt

    scene = fd.toy_scene()
    fig = fd.plot_family_gallery(scene, fd.family_demos(scene))
    assert len(fig.axes) == 15
    plt.close(fig)


def test_solo_duplicates_figure_shades_every_positive_cell():
    import matplotlib.pyplot as plt

    scene = fd.toy_scene()
    dup = fd.solov2_duplicates(scene, grid=8)
    fig = fd.plot_solo_duplicates(scene, dup, mf.matrix_nms(dup["masks"], dup["labels"], dup["scores"]), 8)
    ax_grid, ax_bar = fig.axes
    assert len(ax_grid.patches) == len(dup["cells"])
    assert len(ax_bar.patches) == 2 * len(dup["cells"])
    plt.close(fig)


def test_the_per_instance_macs_bars_are_in_each_familys_colour():
    from yolact_edu.viz.palette import model_color

    figure = mf.plot_per_instance_macs()
    ax, = figure.axes
    names = [label.get_text() for label in ax.get_yticklabels()]
    assert names == [row["family"] for row in mf.FAMILIES][::-1]
    for name, bar in zip(names, ax.patches):
        assert matplotlib.colors.same_color(bar.get_facecolor(), model_color(name))
        assert bar.get_width() == mf.per_instance_macs(name)
    assert len({bar.get_facecolor() for bar in ax.patches}) == len(mf.FAMILIES)   # not all one colour
    matplotlib.pyplot.close(figure)
