"""Notebook 05 §6: each family's assembly step on one image, and the six-family comparison table."""
import matplotlib
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

import yolact_edu as ye
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.lessons.landscape.learned import (
    draw_all_detections,
    draw_learned,
    learned_assembly,
    pick_clear_image,
    training_budget_sentence,
)
from yolact_edu.lessons.two_ways.comparison import per_instance_ms, plot_comparison, shipped_name, summary_rows
from yolact_edu.viz.palette import model_color

matplotlib.use("Agg")
SIZE = 128
MODELS = ("yolact_tiny", "maskrcnn_tiny", "condinst_tiny", "solov2_tiny", "blendmask_tiny", "centermask_tiny")


def untrained(name):
    """An untrained model at 128 px; the relatives' candidate thresholds are lowered (their focal
    heads start at 1% foreground, below every threshold) so that it detects something."""
    torch.manual_seed(0)
    cfg = ye.get_model_config(name).with_classes(SHAPE_CLASSES).replace(max_size=SIZE)
    for threshold in ("nms_conf_thresh", "update_threshold"):
        if hasattr(cfg, threshold):
            cfg = cfg.replace(**{threshold: 0.0})
    return ye.build_model(cfg).eval()


@pytest.fixture(scope="module")
def image():
    generator = np.random.default_rng(3)
    return generator.integers(0, 255, (140, 150, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", MODELS)
def test_every_family_shows_its_shared_maps_and_its_best_detections_own(name, image):
    view = learned_assembly(untrained(name), image, min_score=0.0, top_k=3)
    assert view.family == ye.build.FAMILY_NAMES[ye.get_model_config(name).family]
    assert len(view.detections) == 3 and view.detections.masks.shape[1:] == image.shape[:2]
    assert view.shared and view.instance and view.locality
    assert all(isinstance(a, np.ndarray) and a.ndim in (1, 2) and np.isfinite(a).all()
               for _, a in [*view.shared, *view.instance])
    figure = draw_learned(view, image)
    assert len(figure.axes) == 1 + len(view.shared) + len(view.instance)
    matplotlib.pyplot.close(figure)


def test_condinst_moves_the_best_detections_filter_to_another_object(image):
    model = untrained("condinst_tiny")
    with torch.no_grad():
        raw = model(model.preprocess(image))
    found = model.fcos_detect(raw, 0)
    view = learned_assembly(model, image, min_score=0.0, top_k=len(found["boxes"]))
    title, moved = view.instance[-1]
    assert title.startswith("its filter at #")
    other = int(title.split("#")[1].split("'")[0]) - 1
    assert box_iou(found["boxes"][:1], found["boxes"][other:other + 1]).item() < 0.1     # another object
    assert (box_iou(found["boxes"][:1], found["boxes"][1:other]) >= 0.1).all()          # the first such
    with torch.no_grad():
        expected = torch.sigmoid(model.instance_mask_logits(
            raw, torch.zeros(1, dtype=torch.long), found["location"][other:other + 1],
            params=raw["controller"][0, found["location"][:1]]))[0]
    assert np.allclose(moved, expected.numpy(), atol=1e-6)


def test_solo_view_shows_how_much_score_matrix_nms_left():
    model = untrained("solov2_tiny")
    image = np.zeros((128, 128, 3), np.uint8)
    view = learned_assembly(model, image, min_score=0.0)
    grids = [a for t, a in view.shared if t.startswith("category")]
    assert [g.shape for g in grids] == [(n, n) for n in model.cfg.grids]
    kept = dict(view.instance)["Matrix NMS: score kept, top 12"]
    assert kept.ndim == 1 and ((kept > 0) & (kept <= 1 + 1e-6)).all() and kept[0] == pytest.approx(1.0)


def test_pick_clear_image_finds_separate_objects(tmp_path):
    paths = make_shapes(tmp_path, num_train=1, num_val=30, seed=2, min_size=128, max_size=160)
    dataset = CocoDataset(paths["val_annotations"], paths["val_images"], max_size=SIZE, verbose=False)
    index = pick_clear_image(dataset, objects=(2, 5), max_overlap=0.1)
    annotations = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=dataset.ids[index]))
    boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32)
    boxes[:, 2:] += boxes[:, :2]
    assert 2 <= len(annotations) <= 5
    assert box_iou(boxes, boxes).fill_diagonal_(0).max() <= 0.1
    with pytest.raises(ValueError, match="no image with 40..50 objects"):
        pick_clear_image(dataset, objects=(40, 50))


def test_draw_all_detections_has_a_panel_per_family(image):
    views = {name: learned_assembly(untrained(name), image, min_score=0.0, top_k=2) for name in MODELS[:4]}
    figure = draw_all_detections(views, image, columns=3)
    titled = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert len(titled) == 4 and all(t.endswith("2 detections") for t in titled)
    # each title in its model's colour: the tiny YOLACT as in notebook 01, not the paper-scale one
    colors = {ax.get_title(): ax.title.get_color() for ax in figure.axes if ax.get_title()}
    yolact_title, = (t for t in colors if t.startswith("yolact_tiny"))
    assert matplotlib.colors.same_color(colors[yolact_title], model_color("yolact_tiny"))
    assert matplotlib.colors.same_color(colors[yolact_title], "tab:red")
    for name in MODELS[:4]:
        title, = (t for t in colors if t.startswith(name))
        assert matplotlib.colors.same_color(colors[title], model_color(name))
    family_keyed = {views[name].family: views[name] for name in MODELS[:2]}      # as notebook 05 keys them
    figure = draw_all_detections(family_keyed, image, columns=2)
    titles = {ax.get_title(): ax.title.get_color() for ax in figure.axes if ax.get_title()}
    assert matplotlib.colors.same_color(titles["YOLACT (yolact_tiny)\n2 detections"], "tab:red")
    assert matplotlib.colors.same_color(titles["Mask R-CNN (maskrcnn_tiny)\n2 detections"], "tab:blue")
    matplotlib.pyplot.close("all")


# -- the comparison's one table and one plot ---------------------------------------------------------------
def comparison_result():
    accuracy = {"box_AP": 0.5, "box_AP75": 0.5, "mask_AP": 0.4, "mask_AP75": 0.4, "mask_AP90": 0.1, "images": 10,
                "params": 2_000_000}
    return {"environment": {"machine": "CPU test"},
            "accuracy": {"YOLACT": accuracy, "Mask R-CNN": dict(accuracy, mask_AP=0.6)},
            "latency": {"YOLACT": {"counts": [1, 11], "instances": [1, 11], "median_ms": [10.0, 12.0]},
                        "Mask R-CNN": {"counts": [1, 11], "instances": [1, 11], "median_ms": [20.0, 70.0]}}}


def test_summary_rows_give_the_cost_of_one_more_instance():
    rows = summary_rows(comparison_result())
    assert [r["model"] for r in rows] == ["YOLACT", "Mask R-CNN"]
    assert rows[0]["ms / instance"] == pytest.approx(0.2) and rows[1]["ms / instance"] == pytest.approx(5.0)
    assert rows[1]["mask_AP"] == 0.6 and rows[0]["params (M)"] == 2.0 and rows[0]["ms @ N=11"] == 12.0
    assert summary_rows(comparison_result(), decimals=2)[1]["ms / instance"] == "5.00"
    assert per_instance_ms({"instances": [5, 5], "median_ms": [1.0, 2.0]}) is None


def test_comparison_plot_draws_bars_and_curves():
    figure = plot_comparison(comparison_result())
    bars, lines = figure.axes
    assert len(bars.patches) == 2 * 3 and len(lines.get_lines()) == 2
    matplotlib.pyplot.close(figure)


def shipped_result():
    """comparison_result() as ``yolact-edu bench compare`` writes it for the shipped weights."""
    return comparison_result() | {"weights": {"YOLACT": "/somewhere/assets/yolact_tiny_shapes.pth",
                                              "Mask R-CNN": "/somewhere/assets/maskrcnn_tiny_shapes.pth"}}


def test_the_shipped_rows_are_coloured_as_the_shipped_tiny_models_in_notebook_01():
    result = shipped_result()
    assert shipped_name(result, "YOLACT") == "yolact_tiny" and shipped_name(comparison_result(), "YOLACT") == "YOLACT"
    rows = summary_rows(result)
    assert [(r["model"], r["shipped as"]) for r in rows] == [("YOLACT", "yolact_tiny"), ("Mask R-CNN", "maskrcnn_tiny")]
    assert "shipped as" not in summary_rows(comparison_result())[0]
    figure = plot_comparison(result)
    bars, lines = figure.axes
    # notebook 01 draws yolact_tiny tab:red and maskrcnn_tiny tab:blue: so must 05 (not darkred / navy)
    assert matplotlib.colors.same_color(bars.patches[0].get_facecolor()[:3], "tab:red")
    assert matplotlib.colors.same_color(bars.patches[1].get_facecolor()[:3], "tab:blue")
    drawn = {line.get_label(): line for line in lines.get_lines()}
    assert set(drawn) == {"YOLACT (yolact_tiny)", "Mask R-CNN (maskrcnn_tiny)"}
    assert matplotlib.colors.same_color(drawn["YOLACT (yolact_tiny)"].get_color(), model_color("yolact_tiny"))
    assert matplotlib.colors.same_color(drawn["Mask R-CNN (maskrcnn_tiny)"].get_color(), "tab:blue")
    # a line on top of another must not hide it: distinct markers and dashes
    first, second = drawn.values()
    assert first.get_marker() != second.get_marker() and first.get_linestyle() != second.get_linestyle()
    matplotlib.pyplot.close(figure)


def test_the_training_budget_sentence_names_each_budget_from_the_rows():
    rows = [{"model": "yolact_tiny", "training": "20000 x 8"}, {"model": "maskrcnn_tiny", "training": "10000 x 8"},
            {"model": "condinst_tiny", "training": "4000 x 8"}, {"model": "solov2_tiny", "training": "4000 x 8"}]
    text = training_budget_sentence(rows)
    assert text.startswith("Training budgets differ")
    assert "yolact_tiny 20000 x 8; maskrcnn_tiny 10000 x 8; condinst_tiny and solov2_tiny 4000 x 8" in text
    assert "yolact_tiny saw 5× as many training images as condinst_tiny and solov2_tiny" in text
    same = training_budget_sentence([dict(row, training="4000 x 8") for row in rows])
    assert same == "All 4 models trained for the same budget, 4000 x 8 (iterations x batch)."
    unknown = training_budget_sentence([rows[0], {"model": "x", "training": "? x ?"}])
    assert "x ? x ?" in unknown and "saw" not in unknown


def test_the_training_budget_sentence_of_the_shipped_models():
    from yolact_edu.lessons.pretrained import shipped_rows

    rows = shipped_rows()
    text = training_budget_sentence(rows)
    for row in rows:
        assert f"{row['model']}" in text and row["training"] in text


def _first_score(model, raw, min_score=0.0):
    """The score of the detection each family's bottom-row panels are computed from."""
    family = model.cfg.family
    if family == "yolact":
        return None
    if family == "maskrcnn":
        return float(raw["scores"][0][0])
    if family == "solov2":
        with model.settings(update_threshold=0.0):
            return float(model.grid_detect(raw, 0)["scores"][0])
    return float(model.fcos_detect(raw, 0, min_score)["scores"][0])


@pytest.mark.parametrize("name", MODELS)
def test_the_bottom_row_explains_detection_1_and_the_picture_marks_it(name, image):
    model = untrained(name)
    view = learned_assembly(model, image, min_score=0.0, top_k=3)
    with torch.no_grad():
        raw = model(model.preprocess(image))
    # the panels come from the family's first detection, which is the picture's #1
    if model.cfg.family == "yolact":
        assert np.allclose(dict(view.instance)["its k coefficients"], view.detections.coefs[0].numpy())
    else:
        assert _first_score(model, raw) == pytest.approx(float(view.detections.scores[0]), abs=1e-6)
    label = f"#1 {view.detections.class_labels[0]} {float(view.detections.scores[0]):.2f}"
    assert view.explained() == label
    figure = draw_learned(view, image)
    picture = figure.axes[0]
    assert label in picture.get_title() and label in figure.get_suptitle()
    frames = [p for p in picture.patches if p.get_linestyle() == "--"]
    assert len(frames) == 1
    x1, y1, x2, y2 = view.detections.boxes[0].tolist()
    x, y = frames[0].get_xy()
    assert x1 <= x < x2 and y1 <= y < y2                        # just inside this box: its label stays readable
    assert x2 - 0.05 * image.shape[1] < x + frames[0].get_width() <= x2
    assert y2 - 0.05 * image.shape[0] < y + frames[0].get_height() <= y2
    assert "#1" in [t.get_text() for t in picture.texts]
    matplotlib.pyplot.close(figure)


def test_nothing_detected_marks_nothing(image):
    view = learned_assembly(untrained("yolact_tiny"), image, min_score=1.0)      # no score reaches 1
    assert len(view.detections) == 0 and view.explained() is None
    figure = draw_learned(view, image)
    assert not figure.axes[0].patches and "none here" in figure.get_suptitle()
    matplotlib.pyplot.close(figure)
