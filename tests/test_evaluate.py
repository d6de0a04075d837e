"""COCO evaluation: Detections -> COCO results, COCOeval on the synthetic shapes set, and the
end-to-end ``evaluate`` on an untrained tiny model. Ground truth fed back as detections must
score exactly 1; nothing must score 0; results that do not belong to the file must be refused."""
import copy
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.ops import box_iou

import yolact_edu as ye
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.training.evaluation import (
    METRIC_NAMES,
    coco_evaluate,
    detections_to_coco,
    evaluate,
    evaluate_with_details,
)

AP_NAMES = [name for name in METRIC_NAMES if name.startswith("AP")]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=2, num_val=6, seed=1)


@pytest.fixture(scope="module")
def dataset(shapes):
    return CocoDataset(shapes["val_annotations"], shapes["val_images"], max_size=128, verbose=False)


def make_detections(boxes, labels, masks, scores=None, mask_scores=None) -> ye.Detections:
    n = len(labels)
    return ye.Detections(
        boxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        scores=torch.ones(n) if scores is None else torch.as_tensor(scores, dtype=torch.float32),
        labels=torch.as_tensor(labels, dtype=torch.int64), masks=torch.as_tensor(masks, dtype=torch.bool),
        coefs=torch.zeros(n, 4), proto=torch.zeros(2, 2, 4),
        mask_scores=None if mask_scores is None else torch.as_tensor(mask_scores, dtype=torch.float32))


def ground_truth(dataset, index) -> ye.Detections:
    target = dataset.load_target(index)
    return make_detections(target["boxes"], target["labels"], target["masks"])


def collect(dataset, detections_of) -> dict:
    """COCO results of ``detections_of(index)`` over the whole dataset."""
    results = {"bbox": [], "segm": []}
    for index in range(len(dataset)):
        for iou_type, entries in detections_to_coco(detections_of(index), dataset.ids[index],
                                                    dataset.category_ids).items():
            results[iou_type] += entries
    return results


def test_detections_to_coco_entries(dataset):
    gt = ground_truth(dataset, 0)
    results = detections_to_coco(gt, np.int64(dataset.ids[0]), dataset.category_ids)
    json.dumps(results)                                   # plain Python types, ready for a results file
    assert len(results["bbox"]) == len(results["segm"]) == len(gt)
    for i, (box_entry, mask_entry) in enumerate(zip(results["bbox"], results["segm"])):
        assert box_entry["image_id"] == mask_entry["image_id"] == dataset.ids[0]
        assert box_entry["category_id"] == dataset.category_id(int(gt.labels[i]))
        x1, y1, x2, y2 = gt.boxes[i].tolist()
        assert box_entry["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
        assert box_entry["score"] == mask_entry["score"] == 1.0
        assert isinstance(mask_entry["segmentation"]["counts"], str)
        assert "bbox" not in mask_entry and "segmentation" not in box_entry
        decoded = mask_utils.decode({**mask_entry["segmentation"],
                                     "counts": mask_entry["segmentation"]["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), gt.masks[i].numpy())


def test_detections_to_coco_refuses_bad_ids(dataset):
    gt = ground_truth(dataset, 0)
    with pytest.raises(ValueError, match="image_id must be an integer"):
        detections_to_coco(gt, 1.5, dataset.category_ids)
    with pytest.raises(ValueError, match="image_id must be an integer"):
        detections_to_coco(gt, "1", dataset.category_ids)
    with pytest.raises(ValueError, match=r"labels \[5\] have no category id"):
        detections_to_coco(make_detections(gt.boxes[:1], [5], gt.masks[:1]), 1, dataset.category_ids[:5])
    with pytest.raises(ValueError, match=r"labels \[-1\] have no category id"):
        detections_to_coco(make_detections(gt.boxes[:1], [-1], gt.masks[:1]), 1, dataset.category_ids)
    empty = detections_to_coco(gt[gt.labels > 99], 1, dataset.category_ids)
    assert empty == {"bbox": [], "segm": []}


def test_ground_truth_as_detections_scores_one(dataset, capsys):
    results = collect(dataset, lambda i: ground_truth(dataset, i))
    untouched = copy.deepcopy(results)
    metrics = coco_evaluate(dataset.coco, results, image_ids=dataset.ids)
    assert results == untouched                           # loadRes mutates; it got copies
    table = capsys.readouterr().out
    assert table.count("Average Precision") == 12 and "COCO segm: 6 images, 38 detections" in table
    for iou_type in ("bbox", "segm"):
        assert set(metrics[iou_type]) == {*METRIC_NAMES, "AP90"}
        assert metrics[iou_type]["AP90"] == pytest.approx(1.0)
        for name in AP_NAMES + ["AR10", "AR100"]:
            assert metrics[iou_type][name] in (pytest.approx(1.0), -1), (iou_type, name)
        assert metrics[iou_type]["AP"] == pytest.approx(1.0)
        assert metrics[iou_type]["AR100"] == pytest.approx(1.0)
    # One list with both fields serves both IoU types, and quietly: nothing printed.
    merged = [{**b, "segmentation": s["segmentation"]} for b, s in zip(results["bbox"], results["segm"])]
    assert coco_evaluate(dataset.coco, merged, image_ids=dataset.ids, verbose=False) == metrics
    assert capsys.readouterr().out == ""
    # A path to the annotation file works like the COCO object.
    assert coco_evaluate(str(dataset.annotation_file), results, ("segm",), verbose=False) == \
        {"segm": metrics["segm"]}


def test_size_range_without_objects_is_minus_one(dataset):
    anns = dataset.coco.anns.values()
    no_small = [i for i in dataset.ids if all(a["area"] >= 32 ** 2 for a in anns if a["image_id"] == i)]
    assert no_small, "the fixed seed should give an image without small objects"
    index = dataset.ids.index(no_small[0])
    results = detections_to_coco(ground_truth(dataset, index), no_small[0], dataset.category_ids)
    metrics = coco_evaluate(dataset.coco, results, image_ids=no_small[:1], verbose=False)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["APs"] == -1 and metrics[iou_type]["ARs"] == -1
        assert metrics[iou_type]["AP"] == pytest.approx(1.0)


def test_no_detections_scores_zero(dataset):
    metrics = coco_evaluate(dataset.coco, {"bbox": [], "segm": []}, image_ids=dataset.ids, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == 0 and metrics[iou_type]["AR100"] == 0
        assert all(value in (0, -1) for value in metrics[iou_type].values())
    # Empty per-image conversions, as from an image where the model found nothing, too.
    nothing = collect(dataset, lambda i: ground_truth(dataset, i)[:0])
    assert coco_evaluate(dataset.coco, nothing, image_ids=dataset.ids, verbose=False) == metrics


def shifted(dataset, index, fraction=0.15) -> ye.Detections:
    """The ground truth moved right by ``fraction`` of each object's width (box IoU 0.74)."""
    gt = ground_truth(dataset, index)
    boxes, masks = gt.boxes.clone(), gt.masks.clone()
    for i in range(len(gt)):
        shift = int(round(float(boxes[i, 2] - boxes[i, 0]) * fraction))
        boxes[i, 0::2] += shift
        masks[i] = torch.roll(masks[i], shift, dims=1)
    return make_detections(boxes, gt.labels, masks)


def test_shifted_and_wrong_class_detections(dataset):
    moved = coco_evaluate(dataset.coco, collect(dataset, lambda i: shifted(dataset, i)),
                          image_ids=dataset.ids, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert 0 < moved[iou_type]["AP"] < 1
        assert moved[iou_type]["AP"] < moved[iou_type]["AP50"]
    assert moved["bbox"]["AP50"] == pytest.approx(1.0) and moved["bbox"]["AP75"] < 0.5
    assert moved["bbox"]["AP90"] == 0                     # box IoU 0.74: matched at 0.5, never at 0.9
    # Moved by 7% (box IoU ~0.87): good enough at 0.75, not at 0.9, the boundary-sensitive figure.
    nudged = coco_evaluate(dataset.coco, collect(dataset, lambda i: shifted(dataset, i, 0.07)),
                           image_ids=dataset.ids, verbose=False)["bbox"]
    assert nudged["AP75"] > 0.9 and nudged["AP90"] < 0.2

    def wrong_class(index):
        """Each object relabelled to a class none of whose objects its box overlaps at IoU >= 0.5
        (a plain "label + 1" can land on a touching neighbour of that class and match it)."""
        gt = ground_truth(dataset, index)
        overlap = box_iou(gt.boxes, gt.boxes)
        labels = [next(c for c in range(len(SHAPE_CLASSES)) if c != gt.labels[i]
                       and not bool((overlap[i][gt.labels == c] >= 0.5).any())) for i in range(len(gt))]
        return make_detections(gt.boxes, labels, gt.masks)

    wrong = coco_evaluate(dataset.coco, collect(dataset, wrong_class), image_ids=dataset.ids, verbose=False)
    assert wrong["bbox"]["AP"] == 0 and wrong["segm"]["AP"] == 0

    def half_right(index):     # every second object gets the wrong class
        gt = ground_truth(dataset, index)
        labels = gt.labels.clone()
        labels[1::2] = (labels[1::2] + 1) % len(SHAPE_CLASSES)
        return make_detections(gt.boxes, labels, gt.masks)

    half = coco_evaluate(dataset.coco, collect(dataset, half_right), image_ids=dataset.ids, verbose=False)
    assert 0 < half["bbox"]["AP"] < 1 and 0 < half["segm"]["AP"] < 1


def test_results_that_do_not_belong_are_refused(dataset):
    results = collect(dataset, lambda i: ground_truth(dataset, i))
    bad_image = copy.deepcopy(results)
    bad_image["bbox"][3]["image_id"] = 4242
    with pytest.raises(ValueError, match="image ids that are not in the annotation file: 4242"):
        coco_evaluate(dataset.coco, bad_image, verbose=False)
    bad_category = copy.deepcopy(results)
    bad_category["segm"][0]["category_id"] = 99
    with pytest.raises(ValueError, match="category ids that are not in the annotation file: 99"):
        coco_evaluate(dataset.coco, bad_category, verbose=False)
    with pytest.raises(ValueError, match="outside image_ids.*: 2, 3, 4, 5, 6"):
        coco_evaluate(dataset.coco, results, image_ids=[1], verbose=False)
    with pytest.raises(ValueError, match="image_ids not in the annotation file: 77"):
        coco_evaluate(dataset.coco, results, image_ids=[1, 77], verbose=False)
    malformed = copy.deepcopy(results)
    del malformed["bbox"][2]["score"]
    with pytest.raises(ValueError, match=r"bbox results\[2\] has no field 'score'"):
        coco_evaluate(dataset.coco, malformed, verbose=False)
    with pytest.raises(ValueError, match=r"segm results\[0\] has no field 'segmentation'"):
        coco_evaluate(dataset.coco, {"segm": results["bbox"]}, ("segm",), verbose=False)
    wrong_size = copy.deepcopy(results)
    wrong_size["segm"][0]["segmentation"]["size"] = [10, 10]
    with pytest.raises(ValueError, match=r"RLE size \[10, 10\] differs"):
        coco_evaluate(dataset.coco, wrong_size, verbose=False)
    with pytest.raises(ValueError, match="no 'segm' list"):
        coco_evaluate(dataset.coco, {"bbox": results["bbox"]}, verbose=False)


def test_all_images_versus_evaluated_images(dataset):
    """Results for two images: scored on those two they are perfect; scored on the whole file
    (image_ids=None) the other images' objects count as missed, with a warning saying so."""
    two = {"bbox": [], "segm": []}
    for index in range(2):
        for iou_type, entries in detections_to_coco(ground_truth(dataset, index), dataset.ids[index],
                                                    dataset.category_ids).items():
            two[iou_type] += entries
    assert coco_evaluate(dataset.coco, two, image_ids=dataset.ids[:2], verbose=False)["segm"]["AP"] == \
        pytest.approx(1.0)
    with pytest.warns(UserWarning, match="cover 2 of the 6 images"):
        whole = coco_evaluate(dataset.coco, two, verbose=False)
    assert whole["segm"]["AR100"] < 1


def test_yolact_plus_plus_mask_scores_rank_the_masks(dataset):
    """Each object detected twice: right (class score 0.9, mask score 0.1) and a miss in the
    empty corner far away (class score 0.1, mask score 0.9). Box AP ranks by class scores and
    is perfect; mask AP ranks by mask scores, so the misses come first and it drops."""
    def with_decoys(index):
        gt = ground_truth(dataset, index)
        n = len(gt)
        decoy_masks = torch.zeros_like(gt.masks)
        decoy_masks[:, :2, :2] = True
        decoy_boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0]]).repeat(n, 1)
        return make_detections(torch.cat([gt.boxes, decoy_boxes]), torch.cat([gt.labels, gt.labels]),
                               torch.cat([gt.masks, decoy_masks]),
                               scores=[0.9] * n + [0.1] * n, mask_scores=[0.1] * n + [0.9] * n)

    one = detections_to_coco(with_decoys(0), dataset.ids[0], dataset.category_ids)
    n = len(one["bbox"]) // 2
    assert [e["score"] for e in one["bbox"]] == pytest.approx([0.9] * n + [0.1] * n)
    assert [e["score"] for e in one["segm"]] == pytest.approx([0.1] * n + [0.9] * n)
    metrics = coco_evaluate(dataset.coco, collect(dataset, with_decoys), image_ids=dataset.ids, verbose=False)
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)
    assert metrics["segm"]["AP"] < 0.9
    assert metrics["segm"]["AR100"] == pytest.approx(1.0)     # same masks, only the order differs


@pytest.fixture(scope="module")
def tiny_shapes_model():
    torch.manual_seed(0)
    cfg = ye.get_config("yolact_tiny").replace(num_classes=len(SHAPE_CLASSES), class_names=SHAPE_CLASSES,
                                               max_size=128)
    return ye.Yolact(cfg)


def test_evaluate_end_to_end(tiny_shapes_model, dataset, capsys):
    model = tiny_shapes_model.train()
    metrics = evaluate(model, dataset, batch_size=4, progress=False)
    assert model.training                                  # mode restored
    assert "COCO bbox: 6 images" in capsys.readouterr().out
    assert metrics["num_images"] == len(dataset) == 6
    assert 0 < metrics["num_detections"] <= 6 * model.cfg.max_detections
    assert 0 < metrics["inference_seconds"] <= metrics["seconds"]
    for iou_type in ("bbox", "segm"):
        assert set(metrics[iou_type]) == {*METRIC_NAMES, "AP90"}
        assert all(0 <= v <= 1 or v == -1 for v in metrics[iou_type].values())

    model.eval()
    quick = evaluate(model, dataset, batch_size=2, max_images=3, iou_types=("segm",),
                     progress=False, verbose=False)
    assert not model.training
    assert quick["num_images"] == 3 and "bbox" not in quick
    assert capsys.readouterr().out == ""


def test_evaluate_with_details_keeps_what_it_scored(tiny_shapes_model, dataset):
    """The results, ground truth and image ids it returns rescore to its metrics; on a file the
    dataset skips nothing of, the file's ground truth and the dataset's are the same."""
    run = evaluate_with_details(tiny_shapes_model, dataset, max_images=4, progress=False, verbose=False)
    assert run.image_ids == sorted(dataset.ids[:4]) and run.ground_truth is dataset.coco
    assert len(run.results["segm"]) == run.metrics["num_detections"] > 0
    rescored = coco_evaluate(run.ground_truth, json.loads(json.dumps(run.results)), image_ids=run.image_ids,
                             verbose=False)
    assert rescored == {iou_type: run.metrics[iou_type] for iou_type in ("bbox", "segm")}
    assert run.evaluators["segm"].stats[0] == run.metrics["segm"]["AP"]
    assert "skips none" in run.ground_truth_note
    from_file = evaluate(tiny_shapes_model, dataset, max_images=4, progress=False, verbose=False,
                         ground_truth="file")
    assert {k: from_file[k] for k in ("bbox", "segm")} == rescored


def test_evaluate_refuses_unsuitable_datasets(tiny_shapes_model, shapes, dataset):
    augmented = CocoDataset(shapes["val_annotations"], shapes["val_images"], max_size=128, augment=True,
                            verbose=False)
    with pytest.raises(ValueError, match="without augmentation"):
        evaluate(tiny_shapes_model, augmented, progress=False)
    other_size = CocoDataset(shapes["val_annotations"], shapes["val_images"], max_size=160, verbose=False)
    with pytest.raises(ValueError, match="max_size=160.*expects max_size=128"):
        evaluate(tiny_shapes_model, other_size, progress=False)
    three_classes = ye.Yolact(tiny_shapes_model.cfg.replace(num_classes=3, class_names=SHAPE_CLASSES[:3]))
    with pytest.raises(ValueError, match="predicts 3 classes but the dataset has 6"):
        evaluate(three_classes, dataset, progress=False)


def test_evaluate_yolact_plus_plus(shapes):
    """The re-scoring path end to end (MaskIoUNet needs prototypes of >= 63 px, so max_size 320)."""
    torch.manual_seed(0)
    cfg = ye.get_config("yolact_tiny").replace(num_classes=len(SHAPE_CLASSES), class_names=SHAPE_CLASSES,
                                               use_maskiou=True, max_size=320)
    dataset = CocoDataset(shapes["val_annotations"], shapes["val_images"], max_size=cfg.max_size, verbose=False)
    metrics = evaluate(ye.Yolact(cfg), dataset, max_images=2, progress=False, verbose=False)
    assert metrics["num_images"] == 2
    for iou_type in ("bbox", "segm"):
        assert all(0 <= v <= 1 or v == -1 for v in metrics[iou_type].values())
