"""What-prototypes-encode measurements and the small experiment runner (notebooks 02 and 04)."""
import numpy as np
import pytest
import torch

import yolact_edu as ye
from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.data.images import sample_image
from yolact_edu.files.output_folder import LEDGER, OutputFolder
from yolact_edu.lessons.experiments import fresh_run_dir, prototype_ablation
from yolact_edu.lessons.pretrained import shapes_dataset, tiny_shapes_model
from yolact_edu.lessons.prototype_sweep import load_sweep
from yolact_edu.lessons.prototypes import (
    CROP_CHOICES,
    WEAK_R,
    average_properties,
    best_prototypes,
    crop_ablation_answer,
    describe_crop_ablation,
    describe_properties,
    describe_signed_coefficients,
    describe_sweep,
    property_maps,
    property_names,
    prototype_properties,
)
from yolact_edu.ops.assemble import reassemble
from yolact_edu.ops.mask_iou import paired_mask_iou

CLASSES = ("circle", "square")


def test_property_maps_find_foreground_edges_classes_and_box_positions():
    masks = np.zeros((2, 40, 40), np.uint8)
    masks[0, 8:24, 8:24] = 1
    masks[1, 8:24, 24:32] = 1                      # touching the first: a shared edge
    maps = property_maps(masks, [0, 1], (20, 20), CLASSES)
    assert list(maps) == list(property_names(CLASSES))
    assert maps["foreground"][4:12, 4:16].min() == 1 and maps["foreground"][15:, :].max() == 0
    assert maps["edges"][8, 12] == 1               # between the two objects
    assert maps["edges"][8, 8] == 0                # inside the first
    assert maps["class circle"][4:12, 4:12].min() == 1 and maps["class circle"][4:12, 12:16].max() == 0
    assert maps["class square"][4:12, 12:16].min() == 1
    x_in_box = maps["x in box"]
    assert np.isnan(x_in_box[0, 0]) and np.isnan(x_in_box[15, 10])            # outside every box
    assert x_in_box[6, 4] < 0.1 and x_in_box[6, 11] > 0.9                    # left and right end of box 0
    assert x_in_box[6, 12] < 0.2                   # box 1 starts again at 0: position relative to each box
    assert maps["y in box"][4, 6] < 0.1 and maps["y in box"][11, 6] > 0.9


def test_prototype_properties_recognise_planted_prototypes():
    masks = np.zeros((2, 64, 64), np.uint8)
    masks[0, 4:28, 6:30] = 1
    masks[1, 34:60, 30:62] = 1
    labels = [0, 1]
    maps = property_maps(masks, labels, (32, 32), CLASSES)
    # position inside each box, wherever the box is: 0 outside the boxes
    inside_x = np.nan_to_num(maps["x in box"])
    proto = np.stack([inside_x, maps["foreground"] * 3 + 0.1, maps["edges"], np.ones((32, 32)),
                      maps["class square"], np.tile(np.linspace(0, 1, 32), (32, 1))], -1)
    found = prototype_properties(proto, masks, labels, CLASSES)
    assert found["x in box"][0] == pytest.approx(1.0, abs=1e-5)
    assert found["foreground"][1] == pytest.approx(1.0) and found["edges"][2] == pytest.approx(1.0)
    assert found["class square"][4] == pytest.approx(1.0)
    assert all(found[name][3] == 0 for name in found)          # a flat prototype says nothing
    assert abs(found["y in box"][0]) < 1e-6
    # an image-wide x ramp is a position map of the image, and inside each box it is x in the box too
    assert found["x in box"][5] == pytest.approx(1.0, abs=1e-5)
    without = prototype_properties(proto, masks[:1], labels[:1], CLASSES)
    assert np.isnan(without["class square"]).all()             # no square in the image: nothing to detect


def test_average_properties_on_the_shipped_model_and_the_sentence_follows_the_numbers():
    model = tiny_shapes_model()
    val = shapes_dataset("val")
    properties = average_properties(model, val, range(3))
    assert list(properties) == list(property_names(val.class_names))
    assert all(p.shape == (model.cfg.num_protos,) and np.all(np.abs(p) <= 1) for p in properties.values())
    text = describe_properties(properties)
    name, index, r = best_prototypes(properties)[0]
    assert f"P{index} follows" in text and f"r = {r:+.2f}" in text
    weak = [n for n, _, v in best_prototypes(properties) if abs(v) < WEAK_R]
    assert ("No prototype reaches" in text) == bool(weak)


def test_describe_properties_says_what_is_strong_and_what_is_weak():
    properties = {"x in box": np.array([0.05, -0.1, 0.0]), "y in box": np.array([0.02, 0.0, 0.12]),
                  "foreground": np.array([0.1, -0.8, 0.3]), "edges": np.array([0.0, -0.4, 0.1]),
                  "class star": np.array([0.9, 0.2, 0.1])}
    text = describe_properties(properties)
    assert text.startswith("- **Strongest: a class detector.** P0 follows the star masks (r = +0.90")
    assert "No prototype reaches |r| = 0.3** for y in box, x in box" in text
    assert "P1, the best for edges (-0.40), follows foreground (-0.80)" in text      # a background map
    assert "no map of position inside the box" in text
    properties["x in box"] = np.array([0.95, 0.0, 0.0])
    text = describe_properties(properties)
    assert "a position map" in text and "no map of position" not in text
    weak_line = next(line for line in text.splitlines() if "No prototype reaches" in line)
    assert "x in box" not in weak_line and "y in box" in weak_line


def test_signed_coefficients_crop_and_sweep_sentences_come_from_the_numbers():
    text = describe_signed_coefficients(torch.tensor([-1.0, -0.95, 0.5, 0.99]), torch.tensor([0.9, 0.2, 0.1]))
    assert text.startswith("75% of the 4 coefficients lie beyond ±0.9") and "50% are negative" in text
    assert "1 of this image's 3 masks keeps IoU ≥ 0.5" in text and "the other 2 need" in text
    scores = {True: {"AP": 0.5, "AP50": 0.8, "APs": 0.4}, False: {"AP": 0.2, "AP50": 0.6, "APs": -1}}
    text = describe_crop_ablation(scores)
    assert "at test time only" in text and "mask AP 0.500 → 0.200 (×0.40)" in text
    assert "AP_small" not in text and text.endswith("Mask AP loses the largest share.")
    assert crop_ablation_answer(0.5, 0.2) == "less than half" and crop_ablation_answer(0.5, 0.3) == "somewhat lower"
    assert crop_ablation_answer(0.5, 0.47) == "about the same"
    assert set(CROP_CHOICES) == {"less than half", "somewhat lower", "about the same"}
    sweep = load_sweep()
    text = describe_sweep(sweep)
    making = [(k, ap) for k, ap in zip(sweep["num_protos"], sweep["mask_AP"]) if ap > 0]
    rising = all(b > a for (_, a), (_, b) in zip(making, making[1:]))
    assert ("rises with each doubling" in text) == rising
    for k, ap in zip(sweep["num_protos"], sweep["mask_AP"]):
        if ap == 0:
            assert f"k = {k}'s prototype" in text


def test_reassemble_reproduces_and_signs_matter():
    model = tiny_shapes_model()
    detections = model.predict(sample_image(), score_threshold=0.3)
    assert torch.equal(reassemble(detections), detections.masks)
    positive = reassemble(detections, detections.coefs.clamp(min=0))
    agreement = paired_mask_iou(positive, detections.masks)
    assert agreement.shape == (len(detections),) and agreement.mean() < 0.9
    assert paired_mask_iou(detections.masks, detections.masks).min() == 1
    with pytest.raises(ValueError, match="mask shapes differ"):
        paired_mask_iou(detections.masks, detections.masks[:, :10])


def test_fresh_run_dir_clears_runs_only(tmp_path):
    run = tmp_path / "run"
    earlier = OutputFolder(run)                        # what an earlier run wrote, through its ledger
    earlier.write_text("log.csv", "iteration\n")
    earlier.write_bytes("checkpoints/yolact_tiny_0000010.pth", b"weights")
    assert fresh_run_dir(run) == run
    assert [p.name for p in run.iterdir()] == [LEDGER]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    (other / "log.csv").write_text("my own log")       # named like a run's file, but not written by one
    with pytest.raises(ValueError, match="holds files no yolact_edu run wrote"):
        fresh_run_dir(other)
    assert (other / "thesis.tex").read_text() == "keep me" and (other / "log.csv").read_text() == "my own log"


def test_prototype_ablation_trains_each_k(tmp_path):
    paths = make_shapes(tmp_path / "shapes", num_train=4, num_val=2, seed=2, min_size=96, max_size=112)
    train = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=64, verbose=False)
    val = CocoDataset(paths["val_annotations"], paths["val_images"], max_size=64, verbose=False)
    cfg = ye.get_config("yolact_tiny").replace(num_classes=train.num_classes, class_names=train.class_names,
                                               max_size=64)
    rows = prototype_ablation(cfg, [2, 4], train, val, out_dir=tmp_path / "runs", max_iter=2, batch_size=2)
    assert [r["num_protos"] for r in rows] == [2, 4]
    assert all(0 <= r["mask_AP"] <= 1 and r["train_seconds"] > 0 for r in rows)
    assert (tmp_path / "runs" / "k2" / "log.csv").is_file() and (tmp_path / "runs" / "k4" / "checkpoints").is_dir()
