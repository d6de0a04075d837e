"""Notebooks 04 and 05 state measured relations only through sentences generated from the numbers
(so a rerun on another machine cannot make them false), and their typed published figures agree
with the package's table of published results."""
import os
from pathlib import Path

import nbformat
import pytest
import torch

from yolact_edu.data.coco import DatasetReport
from yolact_edu.lessons.experiments import AP_SHARES, run_against_reference, share_of_reference
from yolact_edu.lessons.landscape import published as ls
from yolact_edu.lessons.landscape.measured import LatencyMeasurement, detections_sentence, times_slower
from yolact_edu.lessons.landscape.yolact_plus import rescoring_sentence
from yolact_edu.lessons.predict_reveal import reveal

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


# -- notebook 04 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("run, reference, expected", [(0.0, 0.56, "below 10 %"), (0.05, 0.56, "below 10 %"),
                                                      (0.15, 0.56, "10 to 50 %"), (0.30, 0.56, "50 to 90 %"),
                                                      (0.55, 0.56, "90 % or more"), (0.60, 0.56, "90 % or more"),
                                                      (0.2, 0.0, "90 % or more")])
def test_share_of_the_shipped_models_ap(run, reference, expected):
    assert share_of_reference(run, reference) == expected
    assert expected in [name for name, _ in AP_SHARES]


def test_the_run_sentence_follows_the_numbers_and_the_reveal_is_honest_in_quick_mode():
    low = run_against_reference(0.012, 0.48, "30 x 8", "20000 x 8", 8)
    assert "0.012" in low and "2% of the shipped model's 0.480" in low and "(below 10 %)" in low
    assert "30 x 8 iterations x batch" in low and "20000 x 8" in low and "8 val images" in low
    assert "above the shipped" in run_against_reference(0.6, 0.5, "1200 x 8", "20000 x 8", 100)
    assert "about the same as" in run_against_reference(0.49, 0.5, "1200 x 8", "20000 x 8", 100)
    choices = [name for name, _ in AP_SHARES]
    # a learner who guesses "10 to 50 %" before a 30-iteration quick run is told the truth: below 10 %
    verdict = reveal("10 to 50 %", share_of_reference(0.012, 0.48), choices=choices, why=low)
    assert not verdict and "below 10 %" in verdict.message
    assert reveal("below 10 %", share_of_reference(0.012, 0.48), choices=choices)


def test_the_dataset_summary_shows_the_annotation_file_relative_or_under_home(tmp_path, monkeypatch):
    inside = tmp_path / "notebooks"
    inside.mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(inside)
    # outside a source checkout a file beside the working folder keeps its full name ...
    report = DatasetReport(str(tmp_path / "data" / "instances_train.json"), num_images=3)
    assert str(report).startswith(f"{tmp_path}{os.sep}data{os.sep}instances_train.json: 3 images")
    # ... and inside one (a notebook in <checkout>/notebooks) it is written relative to the notebook
    monkeypatch.setattr("yolact_edu.files.locations.checkout_dir", lambda: tmp_path)
    report = DatasetReport(str(tmp_path / "data" / "instances_train.json"), num_images=3)
    assert str(report).startswith(f"..{os.sep}data{os.sep}instances_train.json: 3 images")
    assert str(tmp_path) not in str(report)
    monkeypatch.setattr("yolact_edu.files.locations.checkout_dir", lambda: None)     # an installed copy
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere" / "deep"
    (home / "data").mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    report = DatasetReport(str(home / "data" / "instances_train.json"), num_images=3)
    assert str(report).startswith(f"~{os.sep}data{os.sep}instances_train.json: 3 images"), str(report)


# -- notebook 05 §2: the detections column -----------------------------------------------------------
def _measured(name, weights, detections, predict_ms=25.0):
    return LatencyMeasurement(name, weights, 256, "cpu", predict_ms - 5, predict_ms, detections, 5)


def test_the_detections_sentence_follows_the_counts():
    trained, untrained = _measured("yolact_tiny", "trained", 44), _measured("yolact_base", "untrained", 0, 540.0)
    fewer = detections_sentence(trained, untrained, 0.05)
    assert "kept 0 detections above the 0.05 score threshold" in fewer and "44" in fewer
    assert "leaves out part of the post-processing" in fewer
    more = detections_sentence(trained, _measured("yolact_base", "untrained", 90, 540.0), 0.05)
    assert "leaves out" not in more and "at least as much post-processing" in more
    titan = ls.find("YOLACT-550", "R101-FPN", gpu="Titan Xp")
    assert times_slower(untrained, titan) == pytest.approx(540.0 / titan.speed_ms)


# -- notebook 05 §4: the oracle re-scoring ----------------------------------------------------------
def _oracle(pairs, plain, rescored):
    keys = ("AP", "AP50", "AP75")
    return {"score_iou": torch.tensor(pairs), "class score": dict(zip(keys, plain)),
            "oracle re-scored": dict(zip(keys, rescored)), "num_images": 4}


def test_the_rescoring_sentence_counts_the_lower_right_and_says_how_ap_moved():
    pairs = [[0.9, 0.9], [0.8, 0.5], [0.6, 0.7], [0.55, 0.95], [0.2, 0.3]]      # 4 with score >= 0.5, 2 below 0.75
    up = rescoring_sentence(_oracle(pairs, (0.5, 0.7, 0.55), (0.55, 0.72, 0.6)))
    assert "Of the 4 detections with a class score of at least 0.5, 2 (50%)" in up
    assert "raises mask AP at every threshold shown (AP +0.050, AP50 +0.020, AP75 +0.050)" in up
    mixed = rescoring_sentence(_oracle(pairs, (0.5, 0.7, 0.55), (0.52, 0.69, 0.6)))
    assert "unevenly" in mixed and "raises" not in mixed and "AP50 -0.010" in mixed
    assert "lowers" in rescoring_sentence(_oracle(pairs, (0.5, 0.7, 0.55), (0.4, 0.6, 0.5)))
    none = rescoring_sentence(_oracle([[0.2, 0.9]], (0.5, 0.7, 0.55), (0.5, 0.7, 0.55)))
    assert "Of the 0 detections" in none and "unevenly" in none


# -- notebook 05: the published figures its prose quotes ----------------------------------------------
def _markdown(notebook, start):
    cells = [c.source for c in nbformat.read(NOTEBOOKS / notebook, as_version=4).cells
             if c.cell_type == "markdown" and c.source.startswith(start)]
    assert len(cells) == 1, start
    return " ".join(cells[0].split())            # one line: a figure may be split across lines


def test_the_titan_xp_paragraph_agrees_with_the_published_table():
    text = _markdown("05_real_time_landscape.ipynb", "On the Titan Xp")
    yolact = ls.find("YOLACT-550", "R101-FPN", gpu="Titan Xp")
    maskrcnn, = (r for r in ls.by_gpu()["Titan Xp"] if r.method == "Mask R-CNN" and r.input_size == "~800")
    plus = ls.find("YOLACT++-550", "R101-FPN+DCN", gpu="Titan Xp")
    assert f"about {round(yolact.speed_fps / maskrcnn.speed_fps)}× faster" in text
    assert f"({yolact.speed_fps:.1f} vs {maskrcnn.speed_fps:.1f} FPS)" in text
    assert f"about {round(maskrcnn.mask_ap - yolact.mask_ap)} AP" in text
    assert f"({yolact.mask_ap:.1f} vs {maskrcnn.mask_ap:.1f})" in text
    # "recovers most of the gap": more than half of the AP YOLACT gave up
    assert "recovers most of the gap" in text
    assert (plus.mask_ap - yolact.mask_ap) > 0.5 * (maskrcnn.mask_ap - yolact.mask_ap)
    assert f"({plus.mask_ap:.1f} AP at {plus.speed_fps:.1f} FPS with R101)" in text
    takeaways = _markdown("05_real_time_landscape.ipynb", "## Takeaways")
    assert f"about {round(yolact.speed_fps / maskrcnn.speed_fps)}× faster" in takeaways
    assert f"about {round(maskrcnn.mask_ap - yolact.mask_ap)} AP less" in takeaways
    # YOLACT++'s price on the same Titan Xp, R101 and R50, as the published table gives it
    plus50, yolact50 = ls.find("YOLACT++-550", "R50-FPN+DCN", gpu="Titan Xp"), ls.find("YOLACT-550", "R50-FPN",
                                                                                         gpu="Titan Xp")
    extra = sorted(round(p.speed_ms - y.speed_ms) for p, y in ((plus, yolact), (plus50, yolact50)))
    assert f"wins back most of that AP at {extra[0]}–{extra[1]} ms more per image" in takeaways
    assert (f"({yolact.speed_ms:.1f} → {plus.speed_ms:.1f} ms with R101, "
            f"{yolact50.speed_ms:.1f} → {plus50.speed_ms:.1f} ms with R50)") in takeaways
    fewer = [round(100 * (1 - p.speed_fps / y.speed_fps)) for p, y in ((plus, yolact), (plus50, yolact50))]
    assert f"{fewer[0]}% and {fewer[1]}% fewer FPS" in takeaways
    assert "a few ms" not in takeaways


def test_notebook_05_states_the_training_budgets_from_the_metadata_not_trained_alike():
    text = " ".join(c.source for c in nbformat.read(NOTEBOOKS / "05_real_time_landscape.ipynb", as_version=4).cells
                    if c.cell_type == "markdown")
    assert "alike" not in text and "recipe" not in text
    section = _markdown("05_real_time_landscape.ipynb", "## 6 · The same ideas, learned")
    assert "the training budget differ" in section
    cells = [c.source for c in nbformat.read(NOTEBOOKS / "05_real_time_landscape.ipynb", as_version=4).cells]
    table = next(i for i, source in enumerate(cells) if "shipped_table()" in source)
    assert "training_budget_sentence(shipped_rows())" in cells[table]


def test_the_runtime_paragraph_agrees_with_the_published_table():
    text = _markdown("05_real_time_landscape.ipynb", "Two things stand out")
    pytorch = ls.find("YOLACT", "R50-FPN", gpu="RTX 2080 Ti")
    edge = ls.find("YolactEdge", "R50-FPN", gpu="RTX 2080 Ti")
    assert f"goes from {pytorch.speed_fps:.0f} FPS (PyTorch) to {edge.speed_fps:.0f} FPS as YolactEdge" in text
    assert f"−{pytorch.mask_ap - edge.mask_ap:.1f} AP" in text
    jetson = ls.find("YOLACT", "R50-FPN", gpu="Jetson AGX Xavier")
    jetson_edge = ls.find("YolactEdge", "R50-FPN", gpu="Jetson AGX Xavier")
    assert f"{jetson.speed_fps:.0f} FPS becomes {jetson_edge.speed_fps:.0f}" in text


def test_the_deformable_paragraph_agrees_with_the_figure_it_follows():
    """05 §3: "A fixed stretch ... reads further but pushes two taps off the object ... the same 9 taps
    can stay on the object and still reach across it": the notebook's own call, its titles read."""
    import re

    import matplotlib

    from yolact_edu.lessons.landscape import family_demos as fd
    from yolact_edu.lessons.landscape import yolact_plus as yp

    matplotlib.use("Agg")
    text = _markdown("05_real_time_landscape.ipynb", "A fixed stretch")
    assert "pushes two taps off the object" in text and "the same 9 taps can stay on the object" in text
    scene48 = fd.toy_scene(48)
    toy_image = sum(mask * (0.45 + 0.25 * i) for i, mask in enumerate(scene48.masks))
    col, row = (int(v) for v in scene48.centers[2])
    figure = yp.plot_deformable_sampling(toy_image, scene48.masks[2], row, col - 8)
    (on_regular, reach_regular), (on_dilated, reach_dilated), (on_free, reach_free) = [
        tuple(map(float, re.search(r"([\d.]+) of 9 taps on the object, reach ([\d.]+) px", ax.get_title()).groups()))
        for ax in figure.axes]
    assert on_regular == 9 and on_dilated == 9 - 2 and reach_dilated > reach_regular
    assert on_free == 9 and reach_free > reach_dilated
    matplotlib.pyplot.close(figure)


def test_the_toy_rescoring_paragraph_agrees_with_its_table():
    """05 §4: "detection A is a false positive, but YOLACT ranks it first. Re-scoring moves the good masks up"."""
    from yolact_edu.lessons.landscape import yolact_plus as yp

    text = _markdown("05_real_time_landscape.ipynb", "**A worked toy example**")
    assert "detection A is a false positive, but YOLACT ranks it first" in text
    cell = next(c.source for c in nbformat.read(NOTEBOOKS / "05_real_time_landscape.ipynb", as_version=4).cells
                if c.source.startswith("toy = yp.rescoring_table("))
    call = cell.split("\n")[0].removeprefix("toy = ")
    rows = {row["detection"]: row for row in eval(call, {"yp": yp})}             # the notebook's own inputs
    assert rows["A"]["TP at IoU 0.75"] == "no" and rows["A"]["rank by class score"] == 1
    good = [row for row in rows.values() if row["TP at IoU 0.75"] == "yes"]
    assert good and all(row["rank by mask score"] < row["rank by class score"] for row in good)
