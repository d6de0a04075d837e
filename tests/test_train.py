"""The trainer: schedule, data order, non-finite steps, frozen parts, checkpoints and exact
resume, fine-tuning to another class count, and an overfit run that must actually learn."""
import csv
import json

import pytest
import torch
from cpu_support import needs_native_bf16

import yolact_edu as ye
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.training.checkpoint import list_checkpoints, load_model, read_checkpoint
from yolact_edu.training.log import read_log
from yolact_edu.training.sampling import EpochSampler, SeededDataset
from yolact_edu.training.schedule import LrSchedule, recipe_for
from yolact_edu.training.trainer import Trainer
from yolact_edu.weights import CheckpointError, load_matching


def small_config(**changes):
    """yolact_tiny at 128 px: a few hundred milliseconds per step on two CPU cores."""
    return ye.get_config("yolact_tiny").replace(num_classes=len(SHAPE_CLASSES), class_names=SHAPE_CLASSES,
                                                max_size=128, **changes)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=12, num_val=4, seed=3,
                       min_size=128, max_size=160)


@pytest.fixture(scope="module")
def train_set(shapes):
    return CocoDataset(shapes["train_annotations"], shapes["train_images"], max_size=128, augment=True,
                       verbose=False)


def new_model(seed=0, **changes):
    torch.manual_seed(seed)
    return ye.Yolact(small_config(**changes))


# -- schedule ----------------------------------------------------------------------------------
def test_schedule_warmup_then_steps():
    schedule = LrSchedule(lr=1e-3, max_iter=100, warmup_init=1e-4, warmup_until=10, steps=(50, 80))
    assert schedule(0) == pytest.approx(1e-4)
    assert schedule(5) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert schedule(10) == schedule(49) == pytest.approx(1e-3)
    assert schedule(50) == pytest.approx(1e-4) and schedule(79) == pytest.approx(1e-4)
    assert schedule(80) == pytest.approx(1e-5)


def test_cosine_schedule_ends_at_gamma():
    schedule = LrSchedule(lr=1.0, max_iter=110, warmup_init=0.1, warmup_until=10, gamma=0.02, kind="cosine")
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.51)
    assert schedule(110) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="kind"):
        LrSchedule(lr=1.0, max_iter=5, kind="linear")


def test_recipe_scales_with_batch_size_like_the_original():
    cfg = ye.get_config("yolact_base")
    same = recipe_for(cfg, 8)
    assert (same.lr, same.max_iter, same.warmup_until, same.steps) == (1e-3, 800_000, 500,
                                                                       (280_000, 600_000, 700_000, 750_000))
    double = recipe_for(cfg, 16)
    assert double.lr == pytest.approx(2e-3) and double.warmup_init == pytest.approx(2e-4)
    assert (double.max_iter, double.warmup_until, double.steps) == (400_000, 250, (140_000, 300_000, 350_000,
                                                                                  375_000))
    short = recipe_for(cfg, 8, max_iter=8_000)                 # same shape, squeezed
    assert short.steps == (2_800, 6_000, 7_000, 7_500) and short.warmup_until == 5


# -- data order --------------------------------------------------------------------------------
def test_sampler_is_deterministic_splits_ranks_and_skips():
    first = list(EpochSampler(10, seed=1))
    assert first == list(EpochSampler(10, seed=1))
    assert sorted(i for i, _ in first) == list(range(10))
    other_epoch = EpochSampler(10, seed=1)
    other_epoch.set_epoch(1)
    assert [i for i, _ in other_epoch] != [i for i, _ in first]
    ranks = [list(EpochSampler(10, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert all(len(r) == 4 for r in ranks)                     # 10 padded to 12
    assert {i for r in ranks for i, _ in r} == set(range(10))
    resumed = EpochSampler(10, seed=1)
    resumed.set_epoch(0, skip=4)
    assert list(resumed) == first[4:]


def test_seeded_samples_repeat_and_leave_global_rng_alone(train_set):
    data = SeededDataset(train_set)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a, b = data[(0, 123)], data[(0, 123)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"])
    c = data[(0, 124)]
    assert not torch.equal(a[0], c[0])                         # another seed, another augmentation


# -- the loop ------------------------------------------------------------------------------------
def test_resume_gives_exactly_the_weights_of_an_unbroken_run(train_set, tmp_path):
    kwargs = dict(batch_size=2, max_iter=10, seed=7, progress=False, log_every=1, checkpoint_every=5)
    straight = Trainer(new_model(), train_set, out_dir=tmp_path / "straight", **kwargs)
    straight.run()

    def stop_at_five(event, info):
        if event == "log" and info["iteration"] == 5:
            first.request_stop()
    first = Trainer(new_model(), train_set, out_dir=tmp_path / "broken", callbacks=[stop_at_five], **kwargs)
    summary = first.run()
    assert summary["stopped"] and summary["iteration"] == 5
    torch.manual_seed(999)                                     # a new process would have other RNG state
    second = Trainer(new_model(seed=1), train_set, out_dir=tmp_path / "broken", resume="auto", **kwargs)
    assert second.iteration == 5
    second.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    log = read_log(tmp_path / "broken" / "log.csv")
    assert log["iteration"] == list(range(1, 11))              # the resumed run continued the log
    assert log["total"] == pytest.approx(read_log(tmp_path / "straight" / "log.csv")["total"])


def test_checkpoints_are_pruned_loadable_and_refuse_other_configs(train_set, tmp_path):
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path, batch_size=2, max_iter=6, checkpoint_every=2,
                      keep_checkpoints=2, progress=False)
    trainer.run()
    names = [p.name for p in list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["yolact_tiny_0000004.pth", "yolact_tiny_0000006.pth"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.suffix == ".tmp"]
    checkpoint = read_checkpoint(tmp_path / "checkpoints" / names[-1])
    assert checkpoint["iteration"] == 6 and checkpoint["category_ids"] == list(train_set.category_ids)
    model = load_model(tmp_path / "checkpoints" / names[-1])
    assert not model.training and model.cfg == trainer.cfg
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value.cpu(), model.state_dict()[key])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["iteration"] == 6 and summary["checkpoint"].endswith(names[-1])
    with pytest.raises(ValueError, match="already holds checkpoints of an earlier run"):
        Trainer(new_model(), train_set, out_dir=tmp_path, batch_size=2, max_iter=6)
    with pytest.raises(ValueError, match="different config"):
        Trainer(new_model(num_protos=8), train_set, out_dir=tmp_path, batch_size=2, max_iter=6, resume="auto")
    with pytest.raises(ValueError, match="batch 2"):
        Trainer(new_model(), train_set, out_dir=tmp_path, batch_size=3, max_iter=6, resume="auto")


def test_non_finite_steps_are_skipped_and_counted(train_set, tmp_path):
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path, batch_size=2, max_iter=4, progress=False,
                      log_every=1)
    real = trainer.criterion
    calls = {"n": 0}

    def poisoned(raw, targets, **kwargs):                     # the real loss, made NaN on steps 1 and 3
        calls["n"] += 1
        losses = real(raw, targets, **kwargs)
        if calls["n"] in (1, 3):
            losses["box"] = losses["box"] * float("nan")
        return losses
    trainer.criterion = poisoned
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.step(*next(iter(trainer.loader)))
    after = trainer.model.state_dict()
    assert trainer.skipped_steps == 1
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "batches" not in k)
    summary = trainer.run()
    assert summary["skipped_steps"] == 2
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert int(rows[-1]["skipped_steps"]) == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_diverged_weights_skip_steps_instead_of_crashing(train_set, tmp_path):
    model = new_model()
    with torch.no_grad():
        model.proto_net[0].weight[0, 0, 0, 0] = float("inf")     # as after an exploding step
    trainer = Trainer(model, train_set, out_dir=tmp_path, batch_size=2, max_iter=2, progress=False)
    summary = trainer.run()
    assert summary["skipped_steps"] == 2 and summary["iteration"] == 2


def test_frozen_backbone_and_batchnorm_do_not_change(train_set, tmp_path):
    trainer = Trainer(new_model(), train_set, out_dir=tmp_path, batch_size=2, max_iter=3, freeze_backbone=True,
                      progress=False)
    backbone = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}
    head = trainer.model.prediction_layers[0].bbox_layer.weight.clone()
    trainer.run()
    assert all(torch.equal(v, trainer.model.backbone.state_dict()[k]) for k, v in backbone.items())
    assert not torch.equal(head, trainer.model.prediction_layers[0].bbox_layer.weight)
    assert trainer.freeze_bn                                    # batch 2 < 6: the original's rule
    fpn_bn_free = Trainer(new_model(), train_set, out_dir=tmp_path / "bn", batch_size=2, max_iter=1,
                          freeze_bn=False, progress=False)
    stats = trainer.model.backbone.bn1.running_mean.clone()
    assert torch.equal(stats, trainer.model.backbone.bn1.running_mean)
    fpn_bn_free.run()
    assert not torch.equal(new_model().backbone.bn1.running_mean, fpn_bn_free.model.backbone.bn1.running_mean)


def test_class_count_mismatch_is_explained(train_set, tmp_path):
    model = ye.Yolact(ye.get_config("yolact_tiny").replace(max_size=128))    # 80 classes
    with pytest.raises(ValueError, match="80 classes but the training set has 6"):
        Trainer(model, train_set, out_dir=tmp_path)


def test_fine_tuning_reinitialises_only_the_mismatched_heads(tmp_path, capsys):
    torch.manual_seed(0)
    coco = ye.Yolact(ye.get_config("yolact_tiny").replace(max_size=128))
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    model = new_model(seed=1)
    fresh_conf = model.prediction_layers[0].conf_layer.weight.clone()
    report = load_matching(model, tmp_path / "coco.pth")
    out = capsys.readouterr().out
    assert sorted(k.split(" ")[0] for k in report["reinitialised"]) == [
        "prediction_layers.0.conf_layer.bias", "prediction_layers.0.conf_layer.weight",
        "semantic_seg_conv.bias", "semantic_seg_conv.weight"]
    file_shape = tuple(coco.prediction_layers[0].conf_layer.weight.shape)      # 81 columns per anchor
    assert "reinitialised (4)" in out and f"conf_layer.weight (file {file_shape}" in out
    assert torch.equal(model.prediction_layers[0].conf_layer.weight, fresh_conf)
    assert torch.equal(model.prediction_layers[0].bbox_layer.weight, coco.prediction_layers[0].bbox_layer.weight)
    assert torch.equal(model.backbone.conv1.weight, coco.backbone.conv1.weight)
    other = ye.Yolact(ye.get_config("yolact_resnet50").replace(max_size=128))
    with pytest.raises(CheckpointError, match="different architecture"):
        load_matching(other, tmp_path / "coco.pth")


def test_overfitting_two_images_learns_their_masks(shapes, tmp_path):
    """A few hundred CPU steps on two images: the loss must fall by half and the predicted masks
    must reach IoU > 0.5 with the ground truth (the whole pipeline learns, not just runs)."""
    data = CocoDataset(shapes["train_annotations"], shapes["train_images"], max_size=128, verbose=False)
    two = torch.utils.data.Subset(data, [0, 1])
    two.num_classes, two.category_ids = data.num_classes, data.category_ids
    cfg = small_config(optimizer="adamw", lr=1e-3, lr_warmup_until=20, lr_schedule="cosine")
    torch.manual_seed(0)
    trainer = Trainer(ye.Yolact(cfg), two, out_dir=tmp_path, batch_size=2, max_iter=300, log_every=10,
                      progress=False, freeze_bn=False)
    trainer.run()
    log = read_log(tmp_path / "log.csv")
    assert log["total"][-1] < 0.5 * log["total"][0]
    model = trainer.model.eval()
    for index in (0, 1):
        image, target = data[index]
        detections = model.detect(model(image[None]), [target["orig_size"]])[0]
        truth = torch.nn.functional.interpolate(target["masks"][None], target["orig_size"], mode="nearest")[0] > 0.5
        for gt_mask in truth:                                    # every object found by some good mask
            inter = (detections.masks & gt_mask).flatten(1).sum(1).float()
            union = (detections.masks | gt_mask).flatten(1).sum(1).float()
            assert (inter / union.clamp(min=1)).max() > 0.5


@needs_native_bf16
def test_bf16_channels_last_training_steps_and_resumes_exactly(train_set, tmp_path):
    """The fast training settings (yolact-edu train --fast): bf16 autocast on the CPU, channels-last
    weights and images; the loss is finite, the weights move, and resuming still gives the weights
    of an unbroken run."""
    kwargs = dict(batch_size=2, max_iter=6, seed=3, progress=False, log_every=1, checkpoint_every=3,
                  amp="bf16", channels_last=True)
    straight = Trainer(new_model(), train_set, out_dir=tmp_path / "straight", **kwargs)
    assert straight.autocast_dtype == torch.bfloat16 and not straight.use_amp
    conv = straight.model.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    before = conv.detach().clone()
    straight.run()
    assert not torch.equal(before, straight.model.backbone.conv1.weight)
    log = read_log(tmp_path / "straight" / "log.csv")
    assert all(torch.isfinite(torch.tensor(log["total"])))

    def stop_at_three(event, info):
        if event == "log" and info["iteration"] == 3:
            first.request_stop()
    first = Trainer(new_model(), train_set, out_dir=tmp_path / "broken", callbacks=[stop_at_three], **kwargs)
    first.run()
    second = Trainer(new_model(seed=1), train_set, out_dir=tmp_path / "broken", resume="auto", **kwargs)
    second.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    with pytest.raises(ValueError, match="amp must be True, False or 'bf16'"):
        Trainer(new_model(), train_set, out_dir=tmp_path / "bad", amp="fp8")
