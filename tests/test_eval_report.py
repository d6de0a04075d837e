"""The evaluation report (issue 27, item 7): `yolact-edu eval` writes COCO results files that plain
pycocotools rescores to the same 12 numbers, per-class AP, precision-recall curves and confusion
matrices; by default it scores against the annotation file as pycocotools reads it."""
import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from test_evaluate import collect, ground_truth, make_detections, shifted

from yolact_edu.cli.eval import REPORT_FILES, report_files
from yolact_edu.cli.main import main
from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.data.coco import coco_from_dict
from yolact_edu.lessons.pretrained import TINY_SHAPES_WEIGHTS
from yolact_edu.training.eval_report import (
    BACKGROUND,
    confusion_matrix,
    per_class_ap,
    per_class_table,
    precision_recall_curves,
)
from yolact_edu.training.evaluation import METRIC_NAMES, coco_evaluate, ground_truth_of, run_cocoeval
from yolact_edu.viz.eval_plots import plot_confusion_matrix, plot_precision_recall
from yolact_edu.viz.figures import figure_png

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=1, num_val=3, seed=2, min_size=96, max_size=128)


def with_awkward_annotations(shapes, folder: Path, undecodable: bool = False) -> Path:
    """The val file plus what labelling tools write and the dataset skips, but pycocotools scores:
    a zero-width box (a sliver) and an object outside the image; with ``undecodable``, also a polygon
    pycocotools cannot read and an annotation without "area"."""
    data = json.loads(Path(shapes["val_annotations"]).read_text())
    image = data["images"][0]
    next_id = max(a["id"] for a in data["annotations"]) + 1
    width = image["width"]
    data["annotations"] += [
        {"id": next_id, "image_id": image["id"], "category_id": 1, "bbox": [20.0, 20.0, 0.0, 20.0],
         "segmentation": [[20, 20, 20, 40, 21, 30]], "area": 0.0, "iscrowd": 0},
        {"id": next_id + 1, "image_id": image["id"], "category_id": 2, "bbox": [width + 10.0, 10.0, 20.0, 20.0],
         "segmentation": [[width + 10, 10, width + 30, 10, width + 30, 30, width + 10, 30]], "area": 400.0,
         "iscrowd": 0}]
    if undecodable:
        first = copy.deepcopy(data["annotations"][0])
        data["annotations"] += [{**first, "id": next_id + 2, "segmentation": [[1, 2, 3]]}]
        del data["annotations"][1]["area"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "instances.json"
    path.write_text(json.dumps(data))
    return path


def pycocotools_numbers(annotations: Path, results: Path, iou_type: str, image_ids=None) -> list[float]:
    """What a user gets from plain pycocotools on the files: the 12 numbers of ``summarize``."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(annotations))
        evaluator = COCOeval(coco, coco.loadRes(str(results)), iou_type)
        if image_ids is not None:
            evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


# -- the command --------------------------------------------------------------------------------
def test_eval_results_rescored_by_pycocotools_give_the_same_twelve_numbers(shapes, tmp_path, capsys):
    annotations = with_awkward_annotations(shapes, tmp_path / "set")
    out = tmp_path / "report"
    assert main(["eval", "--weights", str(TINY_SHAPES_WEIGHTS), "--annotations", str(annotations),
                 "--images", str(shapes["val_images"]), "--device", "cpu", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    kept = CocoDataset(annotations, shapes["val_images"], max_size=64, verbose=False).coco
    for iou_type in ("bbox", "segm"):
        results = json.loads((out / REPORT_FILES[iou_type]).read_text())
        assert results and isinstance(results[0]["segmentation" if iou_type == "segm" else "bbox"],
                                      dict if iou_type == "segm" else list)
        assert {r["category_id"] for r in results} <= {1, 2, 3, 4, 5, 6}
        assert pycocotools_numbers(annotations, out / REPORT_FILES[iou_type], iou_type) == \
            [metrics[iou_type][name] for name in METRIC_NAMES]
        # what the dataset keeps would have scored otherwise: the file's awkward objects count as misses
        assert coco_evaluate(kept, results, (iou_type,), verbose=False)[iou_type]["AR100"] > \
            metrics[iou_type]["AR100"]
    assert metrics["segm"]["AP"] > 0.05                      # a real score, so the equality means something
    assert ("ground truth: instances.json as pycocotools reads it, 2 annotations the dataset skips included "
            "(zero-area box 1, box outside the image 1)") in printed
    assert "image_ids" not in metrics                         # every image run: nothing to tell a rescorer
    assert metrics["ground_truth"]["source"] == "file"
    # per-class AP: printed as a table and kept in the metrics, one row per category of the file
    assert "class" in printed and "box AP" in printed and "mask AP" in printed
    assert list(metrics["per_class"]["segm"]) == ["circle", "square", "triangle", "ring", "star", "cross"]
    for iou_type in ("bbox", "segm"):
        defined = [c["AP"] for c in metrics["per_class"][iou_type].values() if c["AP"] >= 0]
        assert np.mean(defined) == pytest.approx(metrics[iou_type]["AP"], abs=1e-12)
        confusion = np.array(metrics["confusion"][iou_type]["matrix"])
        objects = [c["objects"] for c in metrics["per_class"][iou_type].values()]
        assert confusion[:-1].sum(axis=1).tolist() == objects  # every object lands in its row once
    for picture in ("curves", "confusion"):
        assert (out / REPORT_FILES[picture]).read_bytes().startswith(PNG)


def test_eval_scores_what_the_dataset_keeps_on_request_and_names_files_after_a_json_output(shapes, tmp_path,
                                                                                            capsys):
    annotations = with_awkward_annotations(shapes, tmp_path / "set")
    assert main(["eval", "--weights", str(TINY_SHAPES_WEIGHTS), "--annotations", str(annotations),
                 "--images", str(shapes["val_images"]), "--device", "cpu", "--max-images", "2",
                 "--gt", "dataset", "--confusion-score", "0.5", "--output", str(tmp_path / "run.json")]) == 0
    printed = capsys.readouterr().out
    assert ("ground truth: the annotations of instances.json the dataset keeps; 2 it skips are left out "
            "(zero-area box 1, box outside the image 1)") in printed
    assert sorted(p.name for p in tmp_path.glob("run*")) == sorted(
        ["run.json", "run_results_bbox.json", "run_results_segm.json", "run_precision_recall.png",
         "run_confusion_matrix.png"])
    metrics = json.loads((tmp_path / "run.json").read_text())
    assert metrics["num_images"] == 2 and len(metrics["image_ids"]) == 2
    assert metrics["confusion"]["segm"]["score_threshold"] == 0.5
    # the written results, rescored on the images run: the dataset's ground truth gives the printed
    # numbers, the file's scores the skipped objects as misses (image 1 holds both)
    results = json.loads((tmp_path / "run_results_segm.json").read_text())
    dataset = CocoDataset(annotations, shapes["val_images"], max_size=64, verbose=False)
    kept = coco_evaluate(dataset.coco, results, ("segm",), image_ids=metrics["image_ids"], verbose=False)
    assert kept["segm"] == metrics["segm"]
    whole = pycocotools_numbers(annotations, tmp_path / "run_results_segm.json", "segm", metrics["image_ids"])
    assert whole[METRIC_NAMES.index("AR100")] < kept["segm"]["AR100"]


def test_report_file_names():
    assert report_files("outputs/eval") == (Path("outputs/eval"), REPORT_FILES)
    folder, names = report_files("runs/base.json")
    assert folder == Path("runs") and names["metrics"] == "base.json"
    assert names["segm"] == "base_results_segm.json" and names["confusion"] == "base_confusion_matrix.png"


# -- the ground truth -----------------------------------------------------------------------------
def test_file_ground_truth_keeps_what_pycocotools_scores_and_leaves_out_what_it_cannot_read(shapes, tmp_path):
    annotations = with_awkward_annotations(shapes, tmp_path, undecodable=True)
    dataset = CocoDataset(annotations, shapes["val_images"], max_size=64, verbose=False)
    raw = json.loads(annotations.read_text())["annotations"]
    skipped = {i for ids in dataset.report.skipped_annotations.values() for i in ids}
    assert len(skipped) == 3
    kept, line = ground_truth_of(dataset, "dataset")
    assert kept is dataset.coco and set(kept.anns) == {a["id"] for a in raw} - skipped
    assert line.endswith("3 it skips are left out (zero-area box 1, box outside the image 1, invalid polygon 1)")
    coco, line = ground_truth_of(dataset, "file")
    undecodable = dataset.report.skipped_annotations["invalid polygon"]
    assert set(coco.anns) == {a["id"] for a in raw} - set(undecodable)
    assert line == ("ground truth: instances.json as pycocotools reads it, 2 annotations the dataset skips "
                    "included (zero-area box 1, box outside the image 1); 1 it skips that pycocotools cannot score "
                    "left out (invalid polygon 1); area taken from the mask for 1")
    missing = raw[1]["id"]
    assert coco.anns[missing]["area"] == dataset.coco.anns[missing]["area"] > 0     # as the dataset fills it
    # scoring the ground truth itself: perfect against what the dataset keeps, the extra objects missed
    perfect = collect(dataset, lambda i: ground_truth(dataset, i))
    on_file = coco_evaluate(coco, perfect, image_ids=dataset.ids, verbose=False)
    on_dataset = coco_evaluate(dataset.coco, perfect, image_ids=dataset.ids, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert on_dataset[iou_type]["AP"] == pytest.approx(1.0)
        assert on_file[iou_type]["AR100"] < 1
    with pytest.raises(ValueError, match="ground truth must be one of"):
        ground_truth_of(dataset, "raw")


# -- the numbers ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(shapes):
    return CocoDataset(shapes["val_annotations"], shapes["val_images"], max_size=64, verbose=False)


def accumulated(dataset, results, iou_type="segm") -> COCOeval:
    metrics, evaluators = run_cocoeval(dataset.coco, results, (iou_type,), image_ids=dataset.ids, verbose=False)
    return metrics[iou_type], evaluators[iou_type]


def test_per_class_ap_averages_to_coco_ap_and_curves_to_ap50_ap75_ap(dataset):
    moved = collect(dataset, lambda i: shifted(dataset, i, 0.1))
    for iou_type in ("bbox", "segm"):
        metrics, evaluator = accumulated(dataset, moved, iou_type)
        table = per_class_ap(evaluator)
        defined = [row for row in table.values() if row["AP"] >= 0]
        assert 0 < metrics["AP"] < 1
        for name in ("AP", "AP50", "AP75"):
            assert np.mean([row[name] for row in defined]) == pytest.approx(metrics[name], abs=1e-12)
        assert sum(row["objects"] for row in table.values()) == \
            sum(1 for a in dataset.coco.anns.values() if not a["iscrowd"])
        assert all(row["AP"] == -1 for row in table.values() if row["objects"] == 0)
        curves = precision_recall_curves(evaluator)
        assert curves["recall"].shape == (101,) and curves["recall"][-1] == 1
        for label, name in (("IoU 0.50", "AP50"), ("IoU 0.75", "AP75"), ("IoU 0.50:0.95", "AP")):
            assert curves[label].mean() == pytest.approx(metrics[name], abs=1e-12)
            assert np.all(np.diff(curves[label]) <= 1e-12)   # interpolated precision never rises with recall
    text = per_class_table({"bbox": table, "segm": table})
    assert text.splitlines()[0].split() == ["class", "objects", "box", "AP", "AP50", "mask", "AP", "AP50"]
    assert len(text.splitlines()) == 1 + len(table)


def test_per_class_table_marks_undefined_ap():
    table = {"circle": {"AP": 0.5, "AP50": 1.0, "objects": 2}, "square": {"AP": -1.0, "AP50": -1.0, "objects": 0}}
    lines = per_class_table({"segm": table}).splitlines()
    assert lines[1].split() == ["circle", "2", "0.500", "1.000"]
    assert lines[2].split() == ["square", "0", "-", "-"]


def test_confusion_matrix_counts_matches_confusions_misses_and_false_positives(dataset):
    coco = dataset.coco
    classes = len(dataset.category_ids)
    objects = np.bincount([dataset.label(a["category_id"]) for a in coco.anns.values()], minlength=classes)
    perfect = collect(dataset, lambda i: ground_truth(dataset, i))
    for iou_type in ("bbox", "segm"):
        found = confusion_matrix(coco, perfect[iou_type], iou_type=iou_type)
        assert found["classes"][-1] == BACKGROUND and len(found["classes"]) == classes + 1
        np.testing.assert_array_equal(np.array(found["matrix"]), np.diag([*objects, 0]))

    def first_relabelled_and_a_stray(index):
        gt = ground_truth(dataset, index)
        labels = gt.labels.clone()
        labels[0] = (labels[0] + 1) % classes
        stray = torch.zeros_like(gt.masks[:1])
        stray[0, :3, :3] = True
        return make_detections(torch.cat([gt.boxes, torch.tensor([[0.0, 0.0, 3.0, 3.0]])]),
                               torch.cat([labels, torch.tensor([0])]), torch.cat([gt.masks, stray]),
                               scores=[0.9] * len(gt) + [0.6])

    results = collect(dataset, first_relabelled_and_a_stray)
    matrix = np.array(confusion_matrix(coco, results["segm"], iou_type="segm")["matrix"])
    assert matrix.sum() - np.trace(matrix) == 2 * len(dataset)       # one confusion and one stray per image
    assert matrix[classes, 0] == len(dataset) and matrix[:classes, classes].sum() == 0
    assert matrix[:classes].sum(axis=1).tolist() == objects.tolist()
    # the strays score 0.6: above 0.7 they are gone; on image 1 only, one image's worth is counted
    high = np.array(confusion_matrix(coco, results["segm"], iou_type="segm", score_threshold=0.7)["matrix"])
    assert high[classes].sum() == 0
    one = np.array(confusion_matrix(coco, results["bbox"], [dataset.ids[0]])["matrix"])
    assert one[classes, 0] == 1
    # objects with no detection at all: the background column
    nothing = np.array(confusion_matrix(coco, [])["matrix"])
    assert nothing[:classes, classes].tolist() == objects.tolist() and nothing[classes].sum() == 0
    with pytest.raises(ValueError, match="score_threshold must be in"):
        confusion_matrix(coco, [], score_threshold=2)


def test_a_detection_on_a_crowd_region_is_not_a_false_positive(dataset):
    crowd = copy.deepcopy(dataset.coco.dataset)
    first = next(a for a in crowd["annotations"] if a["image_id"] == dataset.ids[0])
    first["iscrowd"] = 1
    coco = coco_from_dict(crowd)
    results = collect(dataset, lambda i: ground_truth(dataset, i))["bbox"]
    matrix = np.array(confusion_matrix(coco, results)["matrix"])
    classes = len(dataset.category_ids)
    assert matrix[classes].sum() == 0                              # its detection is ignored, as COCOeval does
    assert np.trace(matrix) == len(results) - 1


# -- the figures ----------------------------------------------------------------------------------
def test_figures_draw_the_report_as_png(dataset):
    moved = collect(dataset, lambda i: shifted(dataset, i, 0.1))
    curves, confusions = {}, {}
    for iou_type in ("bbox", "segm"):
        _, evaluator = accumulated(dataset, moved, iou_type)
        curves[iou_type] = precision_recall_curves(evaluator)
        confusions[iou_type] = confusion_matrix(dataset.coco, moved[iou_type], iou_type=iou_type)
    figure = plot_precision_recall(curves, title="shapes")
    assert len(figure.axes) == 2 and len(figure.axes[0].lines) == 3
    assert figure.axes[1].get_legend().get_texts()[0].get_text().startswith("IoU 0.50 (AP ")
    matrix_figure = plot_confusion_matrix(confusions)
    assert [t.get_text() for t in matrix_figure.axes[0].get_yticklabels()][-1] == BACKGROUND
    for drawn in (figure, matrix_figure):
        assert figure_png(drawn).startswith(PNG)
    with pytest.raises(ValueError, match="no curves"):
        plot_precision_recall({})
