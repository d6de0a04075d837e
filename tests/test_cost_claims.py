"""Cost against the number of instances (notebook 01 §5-§7): slopes fitted per stage, the
sentences generated from them, the plots in each model's colour, and the exercise whose check
must hold for any measured curve, monotonic or not. Synthetic numbers: exact expectations."""
import math

import matplotlib
import matplotlib.colors as mcolors
import pytest

from yolact_edu.lessons import exercises as ex
from yolact_edu.lessons.two_ways.comparison import matched_markdown, plot_comparison
from yolact_edu.lessons.two_ways.cost import (
    FIXED,
    MASK_STEP,
    MASKRCNN_STAGES,
    TO_IMAGE,
    YOLACT_STAGES,
    StageCosts,
    cost_growth_markdown,
    least_squares_slope,
    mask_step_ratio,
    plot_cost_versus_instances,
    stage_table,
    whole_image_markdown,
)
from yolact_edu.viz.palette import model_color

matplotlib.use("Agg")

COUNTS = [1, 25, 100]


def synthetic(name, stages, per_stage):
    """StageCosts whose stage s takes base + slope * N ms, per_stage = [(base, slope), ...]."""
    times = {stage: [base + slope * n for n in COUNTS] for stage, (base, slope) in zip(stages, per_stage)}
    family = "Mask R-CNN" if stages is MASKRCNN_STAGES else "YOLACT"
    return StageCosts(name=name, family=family, device="CPU test", input=[1, 3, 320, 427], counts=list(COUNTS),
                      instances=list(COUNTS), stages_ms=times, roles=dict(stages))


def pair(yolact_step=0.5):
    rcnn = synthetic("Mask R-CNN R50", MASKRCNN_STAGES, [(300, 0.0), (100, 0.0), (2, 10.0), (1, 4.0)])
    yolact = synthetic("YOLACT-550", YOLACT_STAGES, [(200, 0.0), (20, 0.0), (0.1, yolact_step), (1, 3.0)])
    return rcnn, yolact


def test_least_squares_slope_fits_a_line_and_refuses_one_point():
    assert least_squares_slope([1, 25, 100], [3.0, 51.0, 201.0]) == pytest.approx(2.0)
    # a non-monotonic curve still has one slope: the least-squares one, not first-to-last
    assert least_squares_slope([0, 1, 2], [0.0, 3.0, 0.0]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="two distinct"):
        least_squares_slope([5, 5], [1.0, 2.0])


def test_stage_costs_slopes_roles_and_totals():
    rcnn, yolact = pair()
    assert rcnn.slope("RoIAlign 14x14 + mask head") == pytest.approx(10.0)
    assert rcnn.role_slope(FIXED) == pytest.approx(0.0, abs=1e-9)
    assert rcnn.role_slope(MASK_STEP) == pytest.approx(10.0) and rcnn.role_slope(TO_IMAGE) == pytest.approx(4.0)
    assert rcnn.total_slope == pytest.approx(14.0)
    assert rcnn.total_ms[0] == pytest.approx(300 + 100 + 12 + 5)
    assert rcnn.stages_of(FIXED) == ["resize + backbone + FPN", "RPN + box head + NMS"]
    assert mask_step_ratio(rcnn, yolact) == pytest.approx(20.0)
    assert mask_step_ratio(*pair(yolact_step=0.0)) == math.inf
    table = stage_table({"a": rcnn, "b": yolact})
    assert "ms per extra instance (fit)" in table and "per-instance part" not in table
    assert table.count("total") == 2


def test_cost_sentence_is_generated_from_the_slopes():
    text = cost_growth_markdown(*pair())
    assert "10.0 ms" in text and "0.50 ms" in text and "20× as much" in text          # the mask steps
    assert "4.00 ms (paste 28x28 masks + threshold)" in text and "3.00 ms (upsample + threshold)" in text
    # the growth split: Mask R-CNN 14 ms = 71 % mask step + 29 % to image size; YOLACT 3.5 ms = 14 % + 86 %
    assert "Mask R-CNN R50 14.0 ms, 71% of it in its mask step and 29%" in text
    assert "YOLACT-550 3.50 ms, 14% of it in its mask step and 86%" in text
    assert "(400.0 → 400.0 ms, +0%)" in text                                           # stages without N
    for word in ("flat", "nearly free", "constant"):
        assert word not in text
    # change the numbers and the sentence follows them
    assert "no growth of YOLACT's assembly was measurable here" in cost_growth_markdown(*pair(yolact_step=-0.01))
    assert "5.0× as much" in cost_growth_markdown(*pair(yolact_step=2.0))


def test_a_large_move_of_the_stages_without_n_is_called_noise():
    rcnn, yolact = pair()
    assert "timing noise" not in cost_growth_markdown(rcnn, yolact)          # they did not move
    drifting = synthetic("Mask R-CNN R50", MASKRCNN_STAGES, [(300, -0.6), (100, 0.0), (2, 10.0), (1, 4.0)])
    text = cost_growth_markdown(drifting, yolact)                           # 400 -> 340.6 ms: -15 %
    assert "-15%)" in text and "timing noise on this machine" in text


def test_stage_plot_gives_each_model_its_colour():
    rcnn, yolact = pair()
    figure = plot_cost_versus_instances({"paper's scale": {"a": rcnn, "b": yolact}})
    axes = figure.axes
    assert len(axes) == 3
    fixed, step, to_image = axes
    assert len(fixed.get_lines()) == 4 and len(step.get_lines()) == 2 and len(to_image.get_lines()) == 2
    for line in fixed.get_lines() + step.get_lines():
        owner = rcnn if line.get_label().startswith(rcnn.name) else yolact
        assert mcolors.same_color(line.get_color(), model_color(owner.name))
    assert "+10 ms/inst." in step.get_lines()[0].get_label()
    matplotlib.pyplot.close(figure)


def test_stage_plot_legends_are_readable_and_each_panel_fits_its_data():
    rcnn, yolact = pair(yolact_step=0.05)
    tiny_rcnn, tiny_yolact = pair(yolact_step=0.01)
    figure = plot_cost_versus_instances({"paper's scale": {"a": rcnn, "b": yolact},
                                         "tiny": {"a": tiny_rcnn, "b": tiny_yolact}})
    axes = figure.axes
    assert len(axes) == 6
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    assert len(legends) == 2                                         # one per row, beside it
    for legend in legends:
        texts = [t.get_text() for t in legend.get_texts()]
        assert len(texts) == 8 and all(t.get_fontsize() >= 7 for t in legend.get_texts())
        assert any("ms/inst." in t and t.startswith(yolact.name) for t in texts)
    for ax in axes:
        top = max(max(line.get_ydata()) for line in ax.get_lines())
        if ax.get_yscale() == "linear":
            assert top <= ax.get_ylim()[1] <= 1.15 * top             # no empty headroom flattening the lines
    steps = [ax for ax in axes if "mask step" in ax.get_title()]
    assert len(steps) == 2 and all(ax.get_yscale() == "log" for ax in steps)
    for ax in steps:                                              # YOLACT's small step sits inside the range
        low = min(min(line.get_ydata()) for line in ax.get_lines())
        assert ax.get_ylim()[0] <= low and ax.get_ylim()[1] / ax.get_ylim()[0] < 1e5
    matplotlib.pyplot.close(figure)


def test_whole_image_sentence():
    timed = {"YOLACT": {"median_ms": 50.0, "input": [1, 3, 550, 550]},
             "Mask R-CNN": {"median_ms": 200.0, "input": [1, 3, 800, 1088]}}
    text = whole_image_markdown(timed, [("YOLACT", "Mask R-CNN")])
    assert "YOLACT needs 25% of Mask R-CNN's time here (20.0 against 5.0 images/s)" in text
    assert "2.9× the pixels" in text


def test_matched_sentence_names_the_higher_model_from_the_numbers():
    curves = {"YOLACT tiny": {"instances": [1, 25, 100], "median_ms": [10.0, 20.0, 50.0]},
              "Mask R-CNN tiny": {"instances": [1, 25, 100], "median_ms": [20.0, 40.0, 80.0]}}
    rows = {"YOLACT tiny": {"mask AP": "0.561", "mask AP90": "0.194", "training": "20000 x 8"},
            "Mask R-CNN tiny": {"mask AP": "0.650", "mask AP90": "0.403", "training": "10000 x 8"}}
    text = matched_markdown(rows, curves)
    assert "**mask AP90**: Mask R-CNN tiny 0.403, YOLACT tiny 0.194 (Mask R-CNN tiny higher)" in text
    assert "YOLACT tiny 20000 x 8" in text and "N = 1 → 100" in text
    slope = least_squares_slope([1, 25, 100], [10.0, 20.0, 50.0])
    assert f"YOLACT tiny 10.0 → 50.0 ms ({slope:+.2f} ms per extra instance)" in text
    rows["YOLACT tiny"]["mask AP90"] = "0.500"
    assert "(YOLACT tiny higher)" in matched_markdown(rows, curves)


def test_comparison_plot_keeps_model_colours():
    accuracy = {"box_AP": 0.5, "box_AP75": 0.5, "mask_AP": 0.4, "mask_AP75": 0.4, "mask_AP90": 0.1, "images": 10,
                "params": 2_000_000}
    result = {"environment": {"machine": "CPU test"},
              "accuracy": {"YOLACT tiny": accuracy, "Mask R-CNN tiny": accuracy},
              "latency": {name: {"counts": [1, 11], "instances": [1, 11], "median_ms": [10.0, 12.0]}
                          for name in ("YOLACT tiny", "Mask R-CNN tiny")}}
    figure = plot_comparison(result)
    bars, lines = figure.axes
    for line in lines.get_lines():
        assert mcolors.same_color(line.get_color(), model_color(line.get_label()))
    first_bars = bars.patches[:2]                  # box AP of each model, in the models' colours
    assert mcolors.same_color(first_bars[0].get_facecolor()[:3], model_color("YOLACT tiny"))
    assert mcolors.same_color(first_bars[1].get_facecolor()[:3], model_color("Mask R-CNN tiny"))
    matplotlib.pyplot.close(figure)


def test_cost_explorer_draws_models_in_their_colours():
    from yolact_edu.widgets import CostExplorer

    curves = {"YOLACT tiny": {"counts": [1, 10], "median_ms": [20.0, 22.0]},
              "Mask R-CNN tiny": {"counts": [1, 10], "median_ms": [30.0, 35.0]}}
    explorer = CostExplorer(curves, "test machine")
    curve_ax = explorer.figure.axes[0]
    drawn = [line for line in curve_ax.get_lines() if line.get_label() in curves]
    assert {line.get_label() for line in drawn} == set(curves)
    for line in drawn:
        assert mcolors.same_color(line.get_color(), model_color(line.get_label()))


# -- exercise 1 of notebook 01: every N at which YOLACT needs at most 60 % --------------------------
def curves_of(yolact_ms, rcnn_ms, counts=(1, 25, 100)):
    return {"YOLACT tiny": {"counts": list(counts), "median_ms": list(yolact_ms)},
            "Mask R-CNN tiny": {"counts": list(counts), "median_ms": list(rcnn_ms)}}


def test_cost_share_on_a_monotonic_curve():
    curves = curves_of([10.0, 12.0, 20.0], [12.0, 25.0, 60.0])          # 83 %, 48 %, 33 %
    assert ex.counts_at_most_share(curves, "YOLACT tiny", "Mask R-CNN tiny", 0.6) == [25, 100]
    assert ex.check_cost_share(curves, {25, 100}) and ex.check_cost_share(curves, [100, 25])
    wrong = ex.check_cost_share(curves, {1, 25, 100})
    assert not wrong and "at N = 1 it needs 83%, more than 60%" in wrong.message
    missed = ex.check_cost_share(curves, {100})
    assert not missed and "you left out N = 25" in missed.message
    assert ex.check_cost_share(curves, set(), share=0.2) and ex.check_cost_share(curves, None, share=0.2)
    assert not ex.check_cost_share(curves, set())


def test_cost_share_on_a_non_monotonic_curve():
    # the committed notebook's case: below 60 % at N = 25, above it again at N = 100
    curves = curves_of([17.5, 20.0, 41.7], [26.0, 40.0, 68.0])          # 67 %, 50 %, 61 %
    assert ex.counts_at_most_share(curves, "YOLACT tiny", "Mask R-CNN tiny", 0.6) == [25]
    right = ex.check_cost_share(curves, {25})
    assert right and "at N = [25]" in right.message
    # "from 25 on", the old threshold answer, is wrong here
    verdict = ex.check_cost_share(curves, {25, 100})
    assert not verdict and "at N = 100 it needs 61%, more than 60%" in verdict.message
    single = ex.check_cost_share(curves, 25)
    assert not single and "as a set" in single.message
    unknown = ex.check_cost_share(curves, {50})
    assert not unknown and "not measured" in unknown.message
    assert not ex.check_cost_share(curves, "many") and "set of instance counts" in ex.check_cost_share(
        curves, "many").message


def test_cost_share_unanswered_gives_the_hint():
    verdict = ex.check_cost_share(curves_of([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]), ...)
    assert not verdict and repr(verdict).startswith("✗ not yet: set `answer`") and "set()" in verdict.message


def test_cost_explorer_shows_a_time_below_the_first_as_less_not_as_extra():
    from yolact_edu.widgets import CostExplorer

    curves = {"YOLACT tiny": {"counts": [1, 25, 100], "median_ms": [100.0, 40.0, 60.0]},     # non-monotonic
              "Mask R-CNN tiny": {"counts": [1, 25, 100], "median_ms": [110.0, 80.0, 160.0]}}
    explorer = CostExplorer(curves, "test machine")
    assert explorer.count == 25 and explorer.extra == {"YOLACT tiny": -60.0, "Mask R-CNN tiny": -30.0}
    bar_ax = explorer.figure.axes[1]
    widths = [patch.get_width() for patch in bar_ax.patches]
    # grey up to the time at N = 25, no coloured extra, a dashed outline for what it saved against N = 1
    assert widths == [40.0, 80.0, 0.0, 0.0, 60.0, 30.0]
    assert "less than at N = 1" in [text.get_text() for text in bar_ax.get_legend().get_texts()]
    explorer.show(100)
    widths = [patch.get_width() for patch in bar_ax.figure.axes[1].patches]
    assert widths == [60.0, 110.0, 0.0, 50.0, 40.0, 0.0]


def test_notebook_01_states_the_cost_relation_only_through_generated_sentences():
    """No typed "flat" or "nearly free" in notebook 01's prose; the cost relation is printed by
    cost_growth_markdown / matched_markdown from the numbers measured beside it."""
    from pathlib import Path

    import nbformat

    notebook = nbformat.read(Path(__file__).parents[1] / "notebooks" / "01_two_ways_to_segment.ipynb", as_version=4)
    prose = " ".join(cell.source.lower() for cell in notebook.cells if cell.cell_type == "markdown")
    for phrase in ("stays nearly flat", "flat curve", "nearly free", "hardly grows", "climbs steeply"):
        assert phrase not in prose
    code = " ".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    for call in ("cost_growth_markdown(", "matched_markdown(", "whole_image_markdown(",
                 "reveal(guess, mask_step_ratio("):
        assert call in code
