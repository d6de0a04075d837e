"""Notebook 01's mask-resolution prose states relations between the two grids ("the RoI grid wins
clearly on objects below ~100 px, on both measures; above that the prototype grid draws the
boundaries better and wins on IoU too", "the curves cross"). They come from geometry on the bundled
data, not from timings, so they hold on every machine; these tests keep them true if the data, the
grids or the measures change."""
import json
from pathlib import Path

import pytest

from yolact_edu.lessons.pretrained import shapes_dataset
from yolact_edu.lessons.two_ways.resolution import resolution_study, size_sweep, summarize_by_size

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_two_ways_to_segment.ipynb"


def prose() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.fixture(scope="module")
def by_size():
    val = shapes_dataset("val")
    rows = []
    for i in range(len(val)):          # the whole split, as the notebook's full run
        target = val.load_target(i)
        rows += resolution_study(target["masks"], target["boxes"], proto_grid=64)   # yolact_tiny's 64x64
    return {s["bin"]: s for s in summarize_by_size(rows)}


def test_the_roi_grid_wins_below_about_100_px_on_both_measures(by_size):
    assert "the RoI grid wins clearly on objects below ~100 px, on\nboth measures" in prose()
    for size in ("< 32 px", "32-96 px"):
        assert by_size[size]["iou_roi"] > by_size[size]["iou_proto"]
        assert by_size[size]["biou_roi"] > by_size[size]["biou_proto"]


def test_the_prototype_grid_wins_above_on_boundaries_and_on_iou(by_size):
    assert "the prototype grid draws the boundaries better and wins on IoU too" in prose()
    large = by_size[">= 96 px"]
    assert large["biou_proto"] > large["biou_roi"]
    assert large["iou_proto"] > large["iou_roi"]


@pytest.mark.parametrize("kind", ["star", "circle"])
def test_the_size_sweep_curves_cross(kind):
    assert "The curves cross." in prose()
    rows = size_sweep(kind, (8, 16, 400), image_size=(480, 640), proto_grid=138)
    small, large = rows[0], rows[-1]
    assert small["biou_roi"] > small["biou_proto"]          # few prototype cells on a small object
    assert large["biou_proto"] > large["biou_roi"]          # the 28x28 cells grow with the object
