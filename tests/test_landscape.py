"""The published landscape data, its tables and charts, and the latency measurement helper."""
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import yolact_edu as ye  # noqa: E402
from yolact_edu.lessons.landscape import published as ls  # noqa: E402
from yolact_edu.lessons.landscape.measured import (  # noqa: E402
    LatencyMeasurement,
    measure_latency,
    measurements_table,
    plot_speed_beside,
)
from yolact_edu.lessons.tables import html_table, markdown_table  # noqa: E402


def test_every_row_is_complete_and_cites_a_known_source():
    assert len(ls.PUBLISHED_RESULTS) >= 40
    for row in ls.PUBLISHED_RESULTS:
        assert row.source in ls.SOURCES, row
        assert 15 < row.mask_ap < 55, row
        assert row.fps is not None or row.ms is not None, row
        assert row.gpu in ls.GPU_ORDER, row
        assert row.split in ("test-dev", "val", "test-dev?"), row
        assert math.isclose(row.speed_fps * row.speed_ms, 1000.0, rel_tol=0.01), row   # published rounding
        title, url = ls.SOURCES[row.source]
        assert title and url.startswith("https://")


def test_yolact_rows_use_the_paper_table_and_skip_the_converted_mmdet_times():
    base = ls.find("YOLACT-550", "R101-FPN", gpu="Titan Xp")
    assert (base.mask_ap, base.fps, base.ms, base.split, base.source) == (29.8, 33.5, 29.8, "test-dev", "S1")
    assert ls.find("YOLACT-550", "R50-FPN", gpu="Titan Xp").fps == 45.0      # Table 1, not the README's 42.5
    assert ls.find("YOLACT++-550", "R101-FPN+DCN").mask_ap == 34.6
    # mmdet's "V100" YOLACT times are Titan Xp FPS converted to ms: not V100 measurements.
    assert not [r for r in ls.PUBLISHED_RESULTS if r.gpu == "V100" and r.yolact_family]
    with pytest.raises(KeyError):
        ls.find("YOLACT-550")                 # several backbones: ambiguous


def test_by_gpu_groups_rows_of_one_gpu_in_release_order():
    groups = ls.by_gpu()
    assert list(groups) == [g for g in ls.GPU_ORDER if g in groups]
    assert sum(len(v) for v in groups.values()) == len(ls.PUBLISHED_RESULTS)
    for gpu, rows in groups.items():
        assert {r.gpu for r in rows} == {gpu}


def _row(name, ap, fps):
    return ls.PublishedResult(name, "bb", "550", "val", ap, fps, None, "T4", "PyTorch", "S1")


def test_pareto_front_keeps_only_undominated_rows_fastest_first():
    rows = [_row("slow-good", 40, 5), _row("dominated", 30, 4), _row("fast-bad", 25, 50),
            _row("middle", 35, 20), _row("also-dominated", 34, 19)]
    assert [r.method for r in ls.pareto_front(rows)] == ["fast-bad", "middle", "slow-good"]


def test_tables_render_every_row_and_escape():
    rows = ls.results_table(ls.PUBLISHED_RESULTS[:3])
    assert list(rows[0]) == list(ls.TABLE_COLUMNS)
    text = markdown_table(rows)
    lines = text.splitlines()
    assert len(lines) == 5 and lines[1].count("---") == len(ls.TABLE_COLUMNS)
    assert "| YOLACT-550 | R101-FPN |" in lines[2]
    assert markdown_table([{"a": "x|y"}]).splitlines()[2] == "| x\\|y |"
    html = html_table([{"a": "<b>", "b": 1}])
    assert "&lt;b&gt;" in html and html.count("<tr>") == 2
    # a speed the source did not print is derived and marked with parentheses
    solo = ls.results_table([ls.find("SOLOv2", "R50")])[0]
    assert solo["ms"] == "54" and solo["FPS"] == "(18.5)"


def test_sources_markdown_lists_only_the_cited_sources():
    text = ls.sources_markdown([ls.find("CondInst", "R50")], extra=("S1",))
    assert text.splitlines()[0].startswith("- **[S1]**") and "[S8]" in text and "[S11]" not in text


def test_label_heights_keep_nearby_labels_apart():
    points = [(10.0, 30.0), (10.5, 30.2), (11.0, 30.1), (100.0, 30.0)]
    heights = ls._label_heights(points, min_gap=1.0)
    near = sorted(heights[:3])
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(near, near[1:]))
    assert heights[3] == 30.0          # a point a decade away is not pushed


def test_plot_landscape_draws_one_panel_per_gpu():
    import matplotlib.pyplot as plt

    fig = ls.plot_landscape()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == len(ls.by_gpu()) and titles[0].startswith("Titan Xp")
    titan = next(ax for ax in fig.axes if ax.get_title().startswith("Titan Xp"))
    points = np.concatenate([c.get_offsets() for c in titan.collections])
    assert len(points) == len(ls.by_gpu()["Titan Xp"])
    plt.close(fig)
    fig = ls.plot_landscape(gpus=["H100"])
    assert len([ax for ax in fig.axes if ax.get_title()]) == 1
    plt.close(fig)
    with pytest.raises(ValueError, match="no rows"):
        ls.plot_landscape(gpus=["Voodoo2"])


def test_measure_latency_reports_medians_for_a_model():
    torch.manual_seed(0)
    model = ye.Yolact(ye.get_config("yolact_tiny")).eval()
    image = (np.random.RandomState(0).rand(60, 80, 3) * 255).astype(np.uint8)
    m = measure_latency(model, image, "yolact_tiny", "untrained", repeats=2, warmup=0)
    size = model.cfg.max_size
    assert m.network_ms > 0 and m.predict_ms > 0 and m.input_size == size and m.repeats == 2
    assert math.isclose(m.fps, 1000 / m.predict_ms)
    assert "CPU" in m.device and m.detections >= 0
    row = measurements_table([m])[0]
    assert row["input"] == f"{size}x{size}" and row["model"] == "yolact_tiny"


def test_plot_speed_beside_marks_this_machine_apart():
    import matplotlib.pyplot as plt

    published = [ls.find("YOLACT-550", "R101-FPN", gpu="Titan Xp"), ls.find("YolactEdge", "R50-FPN", "RTX 2080 Ti")]
    measured = LatencyMeasurement("yolact_base", "untrained", 550, "CPU x86_64, 2 cores", 400.0, 500.0, 0, 3)
    ax = plot_speed_beside(published, [measured])
    bars = ax.patches
    assert len(bars) == 3
    assert [b.get_hatch() or "" for b in bars] == ["", "", "//"]
    assert bars[2].get_width() == 500.0
    assert "THIS MACHINE" in ax.get_yticklabels()[-1].get_text() or \
        any("THIS MACHINE" in t.get_text() for t in ax.get_yticklabels())
    plt.close(ax.figure)
