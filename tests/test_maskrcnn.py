"""maskrcnn_tiny: torchvision's Mask R-CNN behind the package's interface, built by name, trained
by the same Trainer and CLI, saved and reloaded as any checkpoint, scored by the same evaluate."""
import dataclasses
import json

import pytest
import torch

import yolact_edu as ye
from yolact_edu.build import config_from_dict
from yolact_edu.cli import main
from yolact_edu.config import config_from_dict as yolact_config_from_dict
from yolact_edu.config import config_to_dict
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.relatives.maskrcnn import MaskRCNNConfig, MaskRCNNTiny
from yolact_edu.training.checkpoint import load_model
from yolact_edu.training.evaluation import evaluate
from yolact_edu.training.trainer import Trainer

SIZE = 128


def small_config(**changes) -> MaskRCNNConfig:
    return ye.get_model_config("maskrcnn_tiny").with_classes(SHAPE_CLASSES).replace(**{"max_size": SIZE, **changes})


def new_model(seed=0, **changes) -> MaskRCNNTiny:
    torch.manual_seed(seed)
    return ye.build_model(small_config(**changes))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=3, seed=5,
                       min_size=128, max_size=160)


def dataset(shapes, split="train", **kwargs):
    kwargs.setdefault("verbose", False)
    return CocoDataset(shapes[f"{split}_annotations"], shapes[f"{split}_images"], max_size=SIZE, **kwargs)


# -- built by name, configs of their own family ----------------------------------------------------
def test_every_model_is_built_by_name():
    assert {"yolact_tiny", "yolact_base", "maskrcnn_tiny"} <= set(ye.list_models())
    assert isinstance(ye.build_model("maskrcnn_tiny"), MaskRCNNTiny)
    assert isinstance(ye.build_model(ye.get_config("yolact_tiny")), ye.Yolact)
    with pytest.raises(KeyError, match="maskrcnn_tiny"):        # the message lists the choices
        ye.build_model("maskrcnn_huge")


def test_configs_round_trip_with_their_family():
    cfg = small_config()
    values = config_to_dict(cfg)
    assert values["family"] == "maskrcnn"
    assert config_from_dict(values) == cfg and type(config_from_dict(values)) is MaskRCNNConfig
    with pytest.raises(ValueError, match="'maskrcnn' config cannot be read as a 'yolact'"):
        yolact_config_from_dict(values)
    old = {k: v for k, v in config_to_dict(ye.get_config("yolact_tiny")).items() if k != "family"}
    assert config_from_dict(old) == ye.get_config("yolact_tiny")          # files from before families


def test_config_refuses_what_torchvision_would_misplace():
    with pytest.raises(ValueError, match="multiple of 32"):
        small_config(max_size=200)
    with pytest.raises(ValueError, match="one size per FPN level"):
        small_config(anchor_sizes=(24, 48))
    with pytest.raises(ValueError, match="nms_iou_thresh"):
        small_config(nms_iou_thresh=1.5)


# -- training forward ----------------------------------------------------------------------------
def test_targets_become_torchvision_targets():
    model = new_model()
    target = {"boxes": torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.9], [0.5, 0.5, 0.501, 0.7]]),
              "labels": torch.tensor([0, 4, 2]), "masks": torch.ones(3, SIZE, SIZE),
              "iscrowd": torch.tensor([False, True, False])}
    (out,) = model.torchvision_targets([target], (SIZE, SIZE))
    # the crowd region and the box narrower than a pixel are dropped; labels become 1-based
    assert out["boxes"].shape == (1, 4) and out["boxes"][0].tolist() == pytest.approx([12.8, 25.6, 64.0, 76.8])
    assert out["labels"].tolist() == [1] and out["masks"].dtype == torch.uint8


def test_losses_are_named_and_vanish_without_objects(shapes):
    model = new_model().train()
    images, targets = zip(*(dataset(shapes)[i] for i in range(2)))
    images = torch.stack(images)
    parts = model.criterion()(model(images, list(targets)), list(targets))
    assert set(parts) == {"rpn_objectness", "rpn_box", "class", "box", "mask"}
    assert all(torch.isfinite(v) and v > 0 for v in parts.values())
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
              "masks": torch.zeros(0, SIZE, SIZE)} for _ in range(2)]
    parts = model.criterion()(model(images, empty), empty)
    assert parts["class"] > 0 and parts["rpn_objectness"] > 0          # background still teaches
    assert parts["box"] == 0 and parts["mask"] == 0 and parts["rpn_box"] == 0
    with pytest.raises(ValueError, match="needs the targets"):
        model(images)


# -- detect: the 28x28 masks pasted at image size ------------------------------------------------------
def test_detect_scales_boxes_and_pastes_masks_at_image_size():
    model = new_model().eval()
    raw = {"boxes": [torch.tensor([[0.0, 0.0, 64.0, 32.0], [64.0, 64.0, 128.0, 128.0]])],
           "scores": [torch.tensor([0.9, 0.3])], "labels": [torch.tensor([3, 1])],
           "mask_probs": [torch.ones(2, 28, 28)]}
    (found,) = model.detect(raw, [(300, 400)])
    assert len(found) == 2 and found.coefs is None and found.proto is None
    assert found.labels.tolist() == [2, 0] and found.class_labels[0] == SHAPE_CLASSES[2]
    assert found.boxes[0].tolist() == pytest.approx([0, 0, 200, 75])   # x * 400/128, y * 300/128
    assert found.masks.shape == (2, 300, 400)
    assert 0.95 < found.masks[0].sum() / (200 * 75) < 1.05 and not found.masks[0, 100:, :].any()
    assert len(model.detect(raw, [(300, 400)], score_threshold=0.5)[0]) == 1
    assert len(model.detect(raw, (300, 400), top_k=1)[0]) == 1          # one size for every image


def test_predict_gives_detections_at_image_size(images):
    model = new_model()
    found = model.predict(images[0])
    assert isinstance(found, ye.Detections) and found.masks.shape[1:] == images[0].shape[:2]
    assert model.training                                              # its mode is restored
    assert [d.masks.shape[1:] for d in model.predict(list(images))] == [i.shape[:2] for i in images]


# -- the shared Trainer, checkpoints, evaluate and CLI ---------------------------------------------------
def test_trainer_fits_two_images(shapes, tmp_path):
    """The shared Trainer drives Mask R-CNN's own losses down on two images it sees again and again.
    The RPN's objectness and the mask loss have fixed targets and fall steadily; the second stage's
    class and box losses are taken over proposals that change as the RPN learns, so they are not."""
    train_set = torch.utils.data.Subset(dataset(shapes), [0, 1])
    train_set.num_classes = len(SHAPE_CLASSES)
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path / "run", batch_size=2, max_iter=60,
                      lr=2e-3, device="cpu", progress=False, log_every=10, checkpoint_every=1000)
    rows = []
    trainer.callbacks.append(lambda event, info: rows.append(info) if event == "log" else None)
    trainer.run()
    assert rows[-1]["rpn_objectness"] < 0.25 * rows[0]["rpn_objectness"], rows
    assert rows[-1]["mask"] < 0.8 * rows[0]["mask"], rows
    assert rows[-1]["total"] < 0.7 * rows[0]["total"], rows


def test_checkpoint_reloads_as_the_same_model_and_scores(shapes, tmp_path, images):
    trainer = Trainer(new_model(), dataset(shapes, augment="light"), val_dataset=dataset(shapes, "val"),
                      out_dir=tmp_path / "run", batch_size=2, max_iter=3, device="cpu", progress=False)
    summary = trainer.run()
    model = load_model(summary["checkpoint"])
    assert isinstance(model, MaskRCNNTiny) and model.cfg == trainer.cfg and not model.training
    before, after = trainer.model.eval().predict(images[0]), model.predict(images[0])
    assert torch.equal(before.boxes, after.boxes) and torch.equal(before.masks, after.masks)
    metrics = evaluate(model, dataset(shapes, "val"), progress=False, verbose=False)
    assert metrics["num_images"] == 3 and set(metrics) >= {"bbox", "segm"}
    assert summary["validation"]["num_images"] == 3


def test_train_and_eval_from_the_command_line(shapes, tmp_path, capsys):
    out = tmp_path / "cli"
    common = ["--train-annotations", str(shapes["train_annotations"]), "--train-images",
              str(shapes["train_images"]), "--val-annotations", str(shapes["val_annotations"]),
              "--val-images", str(shapes["val_images"])]
    assert main(["train", "--config", "maskrcnn_tiny", "--max-size", str(SIZE), "--max-iter", "2",
                 "--batch-size", "2", "--output", str(out), "--device", "cpu", *common]) == 0
    checkpoint = out / "checkpoints" / "maskrcnn_tiny_0000002.pth"
    assert checkpoint.is_file()
    assert main(["eval", "--weights", str(checkpoint), "--annotations", str(shapes["val_annotations"]),
                 "--images", str(shapes["val_images"]), "--device", "cpu"]) == 0
    assert "mask AP" in capsys.readouterr().out
    assert main(["predict", "--weights", str(checkpoint), "--nms", "fast",
                 "--output", str(tmp_path / "pred"), str(next(shapes["val_images"].iterdir()))]) == 1
    assert "maskrcnn_tiny: nms must be one of standard, got 'fast'" in capsys.readouterr().err
    assert main(["predict", "--weights", str(checkpoint), "--score-threshold", "0", "--output",
                 str(tmp_path / "pred"), str(next(shapes["val_images"].iterdir()))]) == 0
    assert len(json.loads((tmp_path / "pred" / "detections.json").read_text())) > 0


def test_config_fields_shared_by_every_family_are_the_base_ones():
    shared = {f.name for f in dataclasses.fields(ye.ModelConfig)}
    assert shared <= {f.name for f in dataclasses.fields(MaskRCNNConfig)}
    assert shared <= {f.name for f in dataclasses.fields(ye.YolactConfig)}
    assert {"name", "num_classes", "max_size", "lr", "augmentation"} <= shared



def test_the_prototype_explorer_explains_why_mask_rcnn_does_not_fit(images):
    from yolact_edu.widgets import PrototypeExplorer

    with pytest.raises(TypeError, match="predicts each mask on its own"):
        PrototypeExplorer(new_model(), images[0])
