"""What-prototypes-encode measurements and the small experiment runner (notebooks 02 and 04)."""
import numpy as np
import pytest
import torch

import yolact_edu as ye
from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.data.images import sample_image
from yolact_edu.files.output_folder import LEDGER, OutputFolder
from yolact_edu.lessons.experiments import fresh_run_dir, prototype_ablation
from yolact_edu.lessons.pretrained import tiny_shapes_model
from yolact_edu.lessons.prototypes import property_maps, prototype_properties
from yolact_edu.ops.assemble import reassemble
from yolact_edu.ops.mask_iou import paired_mask_iou


def test_property_maps_find_foreground_and_edges():
    masks = np.zeros((2, 40, 40), np.uint8)
    masks[0, 8:24, 8:24] = 1
    masks[1, 8:24, 24:32] = 1                      # touching the first: a shared edge
    maps = property_maps(masks, (20, 20))
    assert maps["foreground"][4:12, 4:16].min() == 1 and maps["foreground"][15:, :].max() == 0
    assert maps["edges"][8, 12] == 1               # between the two objects
    assert maps["edges"][8, 8] == 0                # inside the first
    assert maps["x"][0, -1] == 1 and maps["y"][-1, 0] == 1


def test_prototype_properties_recognise_planted_prototypes():
    masks = np.zeros((1, 32, 32), np.uint8)
    masks[0, 4:20, 10:28] = 1
    maps = property_maps(masks, (16, 16))
    proto = np.stack([maps["x"], maps["foreground"] * 3 + 0.1, maps["edges"], np.ones((16, 16))], -1)
    found = prototype_properties(proto, masks)
    assert found["x"][0] == pytest.approx(1.0) and found["foreground"][1] == pytest.approx(1.0)
    assert found["edges"][2] == pytest.approx(1.0)
    assert all(found[name][3] == 0 for name in found)          # a flat prototype says nothing
    assert abs(found["y"][0]) < 1e-6


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
