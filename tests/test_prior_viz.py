"""Priors per level, prior drawing, matching classification and the encoding example (notebook 03)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import yolact_edu as ye  # noqa: E402
from yolact_edu.lessons.matching import (  # noqa: E402
    classify_priors,
    explain_encoding,
    matching_statistics,
    plot_encoding,
    plot_iou_histogram,
    plot_matching,
    plot_positives_vs_size,
    positives_vs_box_size,
)
from yolact_edu.lessons.priors import (  # noqa: E402
    draw_level_priors,
    plot_prior_levels,
    prior_level_index,
    prior_levels,
    prior_table,
    priors_by_level,
)
from yolact_edu.lessons.tables import markdown_table  # noqa: E402
from yolact_edu.loss import match_priors  # noqa: E402
from yolact_edu.ops.anchors import fpn_sizes, make_priors, num_priors  # noqa: E402
from yolact_edu.ops.boxes import point_form  # noqa: E402

# yolact_tiny's anchors at a fixed 192 px input: the level sizes, strides and counts below are
# worked out by hand for it (the teaching config itself may change its input size).
TINY = ye.get_config("yolact_tiny").replace(max_size=192)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tiny_priors():
    return make_priors(fpn_sizes(TINY), TINY)


@pytest.mark.parametrize("name", ["yolact_tiny", "yolact_base", "yolact_plus_base"])
def test_levels_partition_the_priors(name):
    cfg = ye.get_config(name)
    levels = prior_levels(cfg)
    assert [lv.name for lv in levels] == ["P3", "P4", "P5", "P6", "P7"]
    assert sum(lv.count for lv in levels) == num_priors(cfg)
    assert levels[0].start == 0 and all(a.stop == b.start for a, b in zip(levels, levels[1:]))
    assert all(len(lv.sides) == cfg.num_anchors for lv in levels)
    assert torch.equal(torch.cat(priors_by_level(cfg)), make_priors(fpn_sizes(cfg), cfg))
    # Every prior of a level has the level's sides (in input pixels).
    for level, priors in zip(levels, priors_by_level(cfg)):
        sides = torch.tensor(level.sides, dtype=torch.float32) / cfg.max_size
        assert torch.allclose(priors[:, 2:].reshape(-1, cfg.num_anchors, 2), sides.expand(
            priors.shape[0] // cfg.num_anchors, -1, -1), atol=1e-6)


def test_tiny_level_geometry():
    levels = prior_levels(TINY)
    assert [lv.feature_size for lv in levels] == [(24, 24), (12, 12), (6, 6), (3, 3), (2, 2)]
    assert [lv.stride for lv in levels] == [8.0, 16.0, 32.0, 64.0, 96.0]
    # Square anchors: the aspect ratio scales the side (s * sqrt(ar)) and keeps the box square.
    w, h = zip(*levels[0].sides)
    assert w == h and np.allclose(w, [24, 24 * 0.5 ** 0.5, 24 * 2 ** 0.5])
    rect = prior_levels(TINY.replace(square_anchors=False))[0].sides
    assert np.allclose(rect[1], (24 * 0.5 ** 0.5, 24 / 0.5 ** 0.5))


def test_level_index_and_table(tiny_priors):
    index = prior_level_index(TINY)
    assert index.shape == (tiny_priors.shape[0],)
    assert torch.bincount(index).tolist() == [lv.count for lv in prior_levels(TINY)]
    rows = prior_table(TINY)
    assert rows[-1]["level"] == "total" and rows[-1]["priors"] == num_priors(TINY) == 2307
    table = markdown_table(rows).splitlines()
    assert len(table) == len(rows) + 2 and table[2].startswith("| P3 | 24x24 | 8.0 | 24, 17, 34 | 1728 |")


def test_drawn_priors_count_matches_num_priors():
    _, ax = plt.subplots()
    total = 0
    for level, info in enumerate(prior_levels(TINY)):
        ax.clear()
        draw_level_priors(ax, TINY, level, image=np.zeros((50, 80, 3), np.uint8))
        centres = ax.collections[0].get_offsets()
        total += len(centres) * TINY.num_anchors
        height, width = info.feature_size
        cells = len({(0, 0), (height // 2, width // 2), (height - 1, width - 1)})
        assert len(ax.patches) == cells * TINY.num_anchors
    assert total == num_priors(TINY)


def test_drawn_cell_priors_are_the_cells_priors():
    _, ax = plt.subplots()
    draw_level_priors(ax, TINY, 1, cells=[(2, 5)])
    first = (2 * 12 + 5) * 3
    expected = point_form(priors_by_level(TINY)[1][first:first + 3].double()) * TINY.max_size
    drawn = [(p.get_x(), p.get_y(), p.get_x() + p.get_width(), p.get_y() + p.get_height()) for p in ax.patches]
    assert np.allclose(drawn, expected.numpy())
    with pytest.raises(ValueError, match="outside"):
        draw_level_priors(ax, TINY, 4, cells=[(2, 0)])
    fig = plot_prior_levels(TINY, np.zeros((40, 40, 3), np.uint8))
    assert len(fig.axes) == 5


def test_gt_equal_to_a_prior_makes_it_positive(tiny_priors):
    p = 1728 + 60 * 3 + 1           # a P4 prior
    gt = point_form(tiny_priors[p:p + 1])
    match = classify_priors(gt, torch.tensor([4]), tiny_priors)
    assert match.positive[p] and match.targets.labels[p] == 5 and match.gt_index[p] == 0
    assert match.iou[p] == pytest.approx(1.0) and not match.forced[p]
    assert torch.allclose(match.targets.loc[p], torch.zeros(4), atol=1e-5)


@pytest.mark.parametrize("pos,neg", [(0.5, 0.4), (0.7, 0.3)])
def test_thresholds_are_respected(tiny_priors, pos, neg):
    gt = torch.tensor([[0.1, 0.1, 0.45, 0.5], [0.5, 0.55, 0.95, 0.9], [0.6, 0.1, 0.7, 0.18]])
    match = classify_priors(gt, torch.tensor([0, 1, 2]), tiny_priors, pos, neg)
    assert torch.equal(match.targets.labels, match_priors(gt.clone(), torch.tensor([0, 1, 2]), tiny_priors,
                                                          None, pos, neg).labels)
    assert int(match.positive.sum() + match.neutral.sum() + match.negative.sum()) == tiny_priors.shape[0]
    assert bool((match.iou[match.positive & ~match.forced] >= pos).all())
    assert bool((match.iou[match.forced] < pos).all())
    assert bool(((match.iou[match.neutral] >= neg) & (match.iou[match.neutral] < pos)).all())
    assert bool((match.iou[match.negative] < neg).all())
    assert match.neutral.any() and match.negative.any()


def test_small_object_gets_only_its_forced_prior(tiny_priors):
    gt = torch.tensor([[0.50, 0.50, 0.53, 0.53]])       # ~6 px: smaller than any prior
    match = classify_priors(gt, torch.tensor([0]), tiny_priors)
    assert int(match.positive.sum()) == 1 and bool(match.forced.any())
    best = int(match.iou.argmax())
    assert match.positive[best]
    rows = match.per_object(gt, torch.tensor([0]), prior_level_index(TINY), TINY.max_size, ("circle",))
    assert rows[0]["positives"] == 1 and rows[0]["forced only"] and rows[0]["per level"][0] == 1
    assert rows[0]["class"] == "circle" and rows[0]["size (px)"] == pytest.approx(0.03 * TINY.max_size, abs=0.1)


def test_no_ground_truth_means_all_negative(tiny_priors):
    match = classify_priors(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.int64), tiny_priors)
    assert bool(match.negative.all()) and float(match.iou.max()) == 0


class FakeDataset:
    """Two images: one with a large and a crowd box, one empty."""

    def __len__(self):
        return 2

    def image_info(self, index):
        return {"width": 200, "height": 100}

    def load_target(self, index):
        if index == 1:
            return {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64),
                    "iscrowd": torch.zeros(0, dtype=torch.bool)}
        return {"boxes": torch.tensor([[20.0, 10.0, 180.0, 90.0], [0.0, 0.0, 10.0, 10.0], [50, 40, 56, 46]]),
                "labels": torch.tensor([1, 2, 0]), "iscrowd": torch.tensor([False, True, False])}


def test_matching_statistics_counts_non_crowd_objects(tiny_priors):
    stats = matching_statistics(FakeDataset(), tiny_priors, prior_level_index(TINY), TINY.max_size)
    assert len(stats["size"]) == 2                        # the crowd box is not an object
    big, small = stats["positives"]
    assert big > small == 1 and stats["forced_only"].tolist() == [False, True]
    assert stats["level"][1] == 0 and stats["best_iou"][1] < 0.5
    assert stats["size"][0] == pytest.approx(np.sqrt(0.8 * 0.8) * TINY.max_size, abs=0.1)
    _, ax = plt.subplots()
    plot_positives_vs_size(ax, stats, TINY)
    assert len(ax.collections) == 2


def test_matching_figures(tiny_priors):
    gt = torch.tensor([[0.1, 0.1, 0.45, 0.5], [0.6, 0.1, 0.7, 0.18]])
    labels = torch.tensor([0, 3])
    match = classify_priors(gt, labels, tiny_priors)
    fig = plot_matching(np.zeros((60, 90, 3), np.uint8), gt, match, tiny_priors, prior_level_index(TINY),
                        TINY.max_size, labels, ("a", "b", "c", "d"))
    positives_ax, neutral_ax, bars_ax = fig.axes
    assert len(positives_ax.patches) == int(match.positive.sum()) + len(gt)
    assert len(neutral_ax.patches) == int(match.neutral.sum()) + len(gt)
    heights = np.array([p.get_height() for p in bars_ax.patches]).reshape(5, len(gt)).sum(0)
    assert heights.tolist() == [int((match.positive & (match.gt_index == g)).sum()) for g in range(len(gt))]
    _, ax = plt.subplots()
    plot_iou_histogram(ax, match)
    assert sum(p.get_height() for p in ax.patches if hasattr(p, "get_height")) >= tiny_priors.shape[0]


def test_encoding_round_trip(tiny_priors):
    gt = torch.tensor([0.2, 0.3, 0.6, 0.5])
    prior = torch.tensor([0.45, 0.35, 0.3, 0.25])
    example = explain_encoding(gt, prior)
    cx, cy, w, h = 0.4, 0.4, 0.4, 0.2
    expected = [(cx - 0.45) / 0.3 / 0.1, (cy - 0.35) / 0.25 / 0.1, np.log(w / 0.3) / 0.2, np.log(h / 0.25) / 0.2]
    assert np.allclose(example.loc.numpy(), expected)
    assert np.allclose(example.offsets.numpy(), np.array(expected) * [0.1, 0.1, 0.2, 0.2])
    assert example.round_trip_error < 1e-12 and torch.allclose(example.decoded, gt.double())
    same = explain_encoding(point_form(prior[None])[0], prior)
    assert torch.allclose(same.loc, torch.zeros(4, dtype=torch.float64), atol=1e-5)  # float32 corners
    _, ax = plt.subplots()
    plot_encoding(ax, example, TINY.max_size, np.zeros((30, 30, 3), np.uint8), predicted_loc=example.loc.float())
    predicted = ax.patches[-1]
    assert predicted.get_x() == pytest.approx(0.2 * TINY.max_size)
    assert predicted.get_width() == pytest.approx(0.4 * TINY.max_size)


def test_box_size_sweep_agrees_with_classify_priors(tiny_priors):
    sides = [6.0, 24.0, 50.0]
    sweep = positives_vs_box_size(tiny_priors, sides, TINY.max_size, trials=4, seed=3)
    # Rebuild the same random boxes and match each alone with the loss's matcher.
    gen = torch.Generator().manual_seed(3)
    half = torch.tensor(sides, dtype=torch.float64)[:, None, None] / 2 / TINY.max_size
    centres = half + torch.rand(3, 4, 2, generator=gen, dtype=torch.float64) * (1 - 2 * half)
    for i in range(3):
        counts, forced = [], []
        for cx, cy in centres[i].tolist():
            r = float(half[i])
            match = classify_priors(torch.tensor([[cx - r, cy - r, cx + r, cy + r]]), torch.tensor([0]), tiny_priors)
            counts.append(int(match.positive.sum()))
            forced.append(counts[-1] == int(match.forced.sum()))
        assert sweep["positives"][i] == pytest.approx(np.mean(counts))
        assert sweep["forced_only"][i] == pytest.approx(np.mean(forced))
    assert sweep["forced_only"][0] == 1 and sweep["positives"][0] == 1      # 6 px: smaller than any prior
    assert sweep["positives"][1] > 1
    _, ax = plt.subplots()
    plot_positives_vs_size(ax, None, TINY, sweep=sweep)
    assert len(ax.lines) == 1 + len(prior_levels(TINY))          # the sweep and one line per level
