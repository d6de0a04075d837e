"""Notebook 01: the naive instance segmenter glued from the parent tasks (a semantic map cut by
a detector's boxes), and the shared scoring of variants on the same images."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from yolact_edu.detections import Detections  # noqa: E402
from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model  # noqa: E402
from yolact_edu.lessons.two_ways.parent_tasks import (  # noqa: E402
    NAIVE_LEARNED,
    NAIVE_PERFECT,
    VARIANTS,
    YOLACT,
    claim,
    clear_crowded_pairs,
    crowded_objects,
    crowded_pairs,
    crowded_verdict,
    detect_with_semantics,
    learned_class_masks,
    matching_detection,
    naive_masks,
    naive_variants,
    parent_task_sentence,
    parent_task_study,
    plot_crowded_pair,
    truth_class_masks,
)
from yolact_edu.lessons.two_ways.scoring import (  # noqa: E402
    ground_truth_subset,
    matched_boundary_iou,
    study_rows,
    with_masks,
)


def pair_target():
    """Two touching squares of class 0, a third square of class 1 apart."""
    masks = np.zeros((3, 30, 40), np.uint8)
    masks[0, 5:15, 5:15] = 1
    masks[1, 5:15, 15:25] = 1
    masks[2, 20:28, 30:38] = 1
    boxes = torch.tensor([[5, 5, 15, 15], [15, 5, 25, 15], [30, 20, 38, 28]], dtype=torch.float32)
    return {"masks": torch.from_numpy(masks), "boxes": boxes, "labels": torch.tensor([0, 0, 1])}


def test_naive_masks_claim_every_pixel_of_the_class_in_the_box():
    target = pair_target()
    perfect = truth_class_masks(target, 2)
    assert perfect.shape == (2, 30, 40) and perfect[0].sum() == 200 and perfect[1].sum() == 64
    # perfect boxes: exact for the lone object, exact for boxes that do not reach into the neighbour
    masks = naive_masks(perfect, target["boxes"], target["labels"])
    assert torch.equal(masks, target["masks"].bool())
    # a box a little too wide on the left object claims a strip of the right one
    wide = target["boxes"].clone()
    wide[0, 2] = 18
    masks = naive_masks(perfect, wide, target["labels"])
    assert masks[0, 5:15, 15:18].all() and masks[0].sum() == 130
    # a box around both claims both: the naive design cannot say "which one"
    both = torch.tensor([[5.0, 5, 25, 15]] * 2)
    masks = naive_masks(perfect, both, torch.tensor([0, 0]))
    assert torch.equal(masks[0], masks[1]) and masks[0].sum() == 200


def test_crowded_objects_need_company_of_their_own_class_in_the_box():
    target = pair_target()
    boxes = target["boxes"].clone()
    assert not crowded_objects(target["masks"], boxes, target["labels"]).any()
    boxes[0, 2] = 18                       # reaches 3 columns (30 px = 30 %) into its neighbour
    assert crowded_objects(target["masks"], boxes, target["labels"]).tolist() == [True, False, False]
    assert not crowded_objects(target["masks"], boxes, target["labels"], min_fraction=0.5).any()
    # the neighbour of another class never counts
    assert not crowded_objects(target["masks"], boxes, torch.tensor([0, 1, 2])).any()


def test_claims_and_pairs_of_boxes_that_reach_into_each_other():
    target = pair_target()
    boxes = target["boxes"].clone()
    boxes[0, 2], boxes[1, 0] = 18, 12          # each box reaches 3 columns into the other object
    assert claim(target["masks"], boxes, 0, 1) == pytest.approx(0.3) == claim(target["masks"], boxes, 1, 0)
    assert claim(target["masks"], target["boxes"], 0, 1) == 0

    class Tiny:                                 # a dataset of one image
        def __len__(self):
            return 1

        def load_target(self, index):
            return {**target, "boxes": boxes}

    assert crowded_pairs(Tiny()) == [(0, 0, 1, pytest.approx(0.3))]
    found = Detections(boxes=boxes, scores=torch.tensor([0.9, 0.8, 0.2]), labels=target["labels"],
                       masks=target["masks"].bool())
    assert matching_detection(found, boxes[1], 0) == 1
    assert matching_detection(found, boxes[2], 1) == -1                 # below the score threshold
    assert matching_detection(found, [0, 0, 2, 2], 0, min_iou=0.5) == -1


def test_learned_class_masks_upsample_and_threshold():
    logits = torch.full((2, 4, 4), -5.0)
    logits[1, :2, :2] = 5.0
    masks = learned_class_masks(logits, 8, 12)
    assert masks.shape == (2, 8, 12) and not masks[0].any()
    assert masks[1, :3, :5].all() and not masks[1, 5:].any()


def test_ground_truth_subset_sets_the_other_objects_aside():
    dataset = shapes_dataset("val")
    image_id = int(dataset.image_info(0)["id"])
    annotations = dataset.coco.imgToAnns[image_id]
    keep = {annotations[0]["id"]}
    subset = ground_truth_subset(dataset.coco, keep)
    flags = {a["id"]: a["iscrowd"] for a in subset.imgToAnns[image_id]}
    assert flags[annotations[0]["id"]] == 0 and all(flags[a["id"]] == 1 for a in annotations[1:])
    assert all(a.get("iscrowd", 0) == 0 for a in dataset.coco.imgToAnns[image_id])     # original untouched


def test_matched_boundary_iou_per_object():
    target = pair_target()
    exact = Detections(boxes=target["boxes"], scores=torch.tensor([0.9, 0.8, 0.7]), labels=target["labels"],
                       masks=target["masks"].bool())
    assert matched_boundary_iou(exact, target) == [1.0, 1.0, 1.0]
    low = Detections(boxes=target["boxes"], scores=torch.tensor([0.9, 0.1, 0.1]), labels=target["labels"],
                     masks=target["masks"].bool())
    assert matched_boundary_iou(low, target) == [1.0, 0.0, 0.0]      # unconfident ones are not matched
    with pytest.raises(ValueError):
        with_masks(exact, target["masks"][:2].bool())


@pytest.fixture(scope="module")
def yolact():
    return tiny_shapes_model()


def test_learned_semantic_head_runs_once_with_the_detections(yolact):
    dataset = shapes_dataset("val")
    image = dataset.load_image(0)
    detections, logits = detect_with_semantics(yolact, image, score_threshold=0.3)
    reference = yolact.predict(image, score_threshold=0.3)
    assert torch.equal(detections.boxes, reference.boxes) and torch.equal(detections.masks, reference.masks)
    assert logits.shape == (yolact.cfg.num_classes, yolact.cfg.max_size // 8, yolact.cfg.max_size // 8)
    assert not yolact.training
    # the trained head is a semantic segmenter: most object pixels get their own class
    target = dataset.load_target(0)
    learned = learned_class_masks(logits, *image.shape[:2])
    truth = truth_class_masks(target, yolact.cfg.num_classes)
    assert (learned & truth).sum() > 0.5 * truth.sum()


def test_study_scores_every_variant_on_the_same_images(yolact):
    dataset = shapes_dataset("val")
    pairs = clear_crowded_pairs(yolact, dataset, 1, candidates=8)
    assert len(pairs) == 1
    index, first, second, share = pairs[0]
    target = dataset.load_target(index)
    assert target["labels"][first] == target["labels"][second] and share > 0
    variants = naive_variants(yolact, dataset.load_image(index), target)
    assert list(variants) == list(VARIANTS)
    # same boxes, classes and scores; only the masks differ
    for name in (NAIVE_LEARNED, NAIVE_PERFECT):
        assert torch.equal(variants[name].boxes, variants[YOLACT].boxes)
        assert torch.equal(variants[name].scores, variants[YOLACT].scores)
    axes = plot_crowded_pair(dataset.load_image(index), target, variants, (first, second))
    assert axes.shape == (2, 4) and all(len(ax.patches) == 1 for ax in axes.flat)      # every panel has its box
    assert "mask IoU" in axes[0, 3].get_title()
    # the naive masks of the two detections claim pixels of both objects
    label = int(target["labels"][first])
    found = [matching_detection(variants[YOLACT], target["boxes"][k], label) for k in (first, second)]
    naive = variants[NAIVE_PERFECT].masks
    masks = target["masks"].bool()
    assert (naive[found[0]] & masks[second]).any() and (naive[found[1]] & masks[first]).any()
    study = parent_task_study(yolact, dataset, 2)
    assert study["images"] == 2 and study["crowded"] + study["isolated"] == sum(
        len(dataset.load_target(i)["labels"]) for i in range(2))
    for row in study["scores"].values():
        assert {"mask AP", "box AP", "boundary IoU", "mask AP crowded", "mask AP isolated"} <= set(row)
        assert 0 <= row["mask AP"] <= 1
    # one detector for all three: the box AP is the same
    assert len({round(row["box AP"], 9) for row in study["scores"].values()}) == 1
    rows = study_rows(study["scores"], ["mask AP", "mask AP crowded"])
    assert [r["variant"] for r in rows] == list(VARIANTS) and all(len(r["mask AP"]) == 5 for r in rows)
    sentence = parent_task_sentence(study)
    assert sentence.startswith("On 2 validation images") and f"{study['scores'][YOLACT]['mask AP']:.3f}" in sentence


def test_sentence_follows_the_numbers():
    def row(all_, crowded, isolated):
        return {"mask AP": all_, "mask AP crowded": crowded, "mask AP isolated": isolated}

    study = {"images": 5, "crowded": 10, "isolated": 12,
             "scores": {YOLACT: row(0.6, 0.5, 0.65), NAIVE_LEARNED: row(0.2, 0.1, 0.3),
                        NAIVE_PERFECT: row(0.5, 0.3, 0.7)}}
    text = parent_task_sentence(study)
    assert "+0.400 on isolated objects but only by +0.200 on crowded" in text
    assert "0.400 lower on crowded" in text and "beats even the perfect" in text
    assert crowded_verdict(study) == "lower"
    study["scores"][NAIVE_LEARNED] = row(0.2, 0.0, 0.65)
    assert "+0.050 on isolated objects and by +0.300 on crowded" in parent_task_sentence(study)
    study["scores"][YOLACT] = row(0.6, 0.2, 0.65)
    assert "does not beat" in parent_task_sentence(study) and crowded_verdict(study) == "higher"
    study["scores"][NAIVE_PERFECT] = row(0.5, -1.0, 0.7)
    assert "Too few objects" in parent_task_sentence(study)
