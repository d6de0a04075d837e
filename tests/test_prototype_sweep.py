"""The k sweep: `yolact-edu train --num-protos`, `yolact-edu bench prototypes`, the shipped result."""
import numpy as np
import pytest
import torch

from yolact_edu.cli.main import main
from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.lessons.prototype_sweep import (
    PROTOTYPE_SWEEP,
    draw_sweep_models,
    load_sweep,
    mean_best_iou,
    summarize_sweep,
    sweep_masks,
)
from yolact_edu.training.checkpoint import list_checkpoints, load_model, read_checkpoint


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=6, seed=12,
                       min_size=128, max_size=160)


def _train(shapes, out, *extra):
    assert main(["train", "--train-annotations", str(shapes["train_annotations"]),
                 "--train-images", str(shapes["train_images"]), "--max-size", "128", "--batch-size", "2",
                 "--max-iter", "6", "--log-every", "3", "--output", str(out), "--device", "cpu",
                 "--no-freeze-bn", *extra]) == 0
    return list_checkpoints(out / "checkpoints")[-1]


@pytest.fixture(scope="module")
def sweep_runs(shapes, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    return {k: _train(shapes, root / f"k{k}", "--num-protos", str(k)) for k in (1, 4)}


@pytest.fixture(scope="module")
def val_set(shapes):
    return CocoDataset(shapes["val_annotations"], shapes["val_images"], max_size=128, verbose=False)


def test_num_protos_reaches_the_checkpoint_and_the_network(sweep_runs):
    for k, path in sweep_runs.items():
        assert read_checkpoint(path)["config"]["num_protos"] == k
        model = load_model(path)
        detections = model.predict(np.zeros((128, 128, 3), np.uint8), score_threshold=0.0)
        assert detections.proto.shape[-1] == k and detections.coefs.shape[1] == k


def test_num_protos_is_refused_for_a_model_without_prototypes(shapes, tmp_path, capsys):
    assert main(["train", "--config", "maskrcnn_tiny", "--num-protos", "4", "--train-annotations",
                 str(shapes["train_annotations"]), "--train-images", str(shapes["train_images"]),
                 "--max-iter", "1", "--output", str(tmp_path / "run")]) != 0
    assert "--num-protos 4: maskrcnn_tiny has no prototypes" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_summary_scores_each_k_and_its_stored_masks_are_predicts(sweep_runs, val_set):
    sweep = summarize_sweep(list(sweep_runs.values()), val_set, image_index=2, meta={"note": "test"})
    assert list(sweep["num_protos"]) == [1, 4] and list(sweep["iterations"]) == [6, 6]
    assert all(0.0 <= v <= 1.0 for name in ("box_AP", "mask_AP", "mask_AP75") for v in sweep[name])
    image = val_set.load_image(2)
    assert np.array_equal(sweep["image"], image) and sweep["meta"]["val_images"] == 6
    for k, path in sweep_runs.items():
        parts = sweep["per_k"][k]
        assert parts["proto"].dtype == np.float16 and parts["proto"].shape[-1] == k
        assert parts["coefs"].shape == (len(parts["scores"]), k) and (parts["scores"] >= 0.3).all()
        # the masks rebuilt from the stored prototypes and coefficients are the model's own
        predicted = load_model(path).predict(image, score_threshold=0.3)
        rebuilt = sweep_masks(sweep, k)
        assert rebuilt.shape == predicted.masks.shape
        if len(predicted):
            agree = (rebuilt == predicted.masks).float().mean()
            assert agree > 0.999, f"k = {k}: only {agree:.4f} of the mask pixels agree"


def test_bench_prototypes_writes_a_file_that_reads_back(sweep_runs, shapes, tmp_path, capsys):
    out = tmp_path / "sweep.npz"
    args = ["bench", "prototypes", *map(str, sweep_runs.values()), "--annotations", str(shapes["val_annotations"]),
            "--images", str(shapes["val_images"]), "--output", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mask AP" in printed and f"wrote {out}" in printed
    sweep = load_sweep(out)
    assert list(sweep["num_protos"]) == [1, 4] and set(sweep["per_k"]) == {1, 4}
    assert sweep["meta"]["command"].startswith("yolact-edu bench prototypes ")
    assert 0 <= sweep["image_index"] < 6
    # a file of the user's at --output is left alone without --force
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"my own file")
    assert main([*args[:-1], str(mine)]) != 0
    assert mine.read_bytes() == b"my own file"
    assert "mine.npz" in capsys.readouterr().err


def test_a_sweep_needs_distinct_k_over_otherwise_equal_models(sweep_runs, shapes, val_set, tmp_path):
    with pytest.raises(ValueError, match="a second checkpoint with k = 1"):
        summarize_sweep([sweep_runs[1], sweep_runs[1]], val_set, image_index=0)
    with pytest.raises(ValueError, match="at least two values of k"):
        summarize_sweep([sweep_runs[1]], val_set, image_index=0)
    other = _train(shapes, tmp_path / "other", "--num-protos", "2", "--max-size", "96")
    with pytest.raises(ValueError, match="more than num_protos"):
        summarize_sweep([sweep_runs[1], other], val_set, image_index=0)


def test_mean_best_iou():
    from yolact_edu.detections import Detections

    gt = torch.zeros(2, 8, 8, dtype=torch.bool)
    gt[0, :4, :4] = True
    gt[1, 4:, 4:] = True
    found = torch.zeros(1, 8, 8, dtype=torch.bool)
    found[0, :4, :2] = True                         # half of the first object, none of the second
    dets = Detections(boxes=torch.zeros(1, 4), scores=torch.ones(1), labels=torch.zeros(1, dtype=torch.long),
                      masks=found)
    assert mean_best_iou(dets, gt) == pytest.approx((0.5 + 0.0) / 2)


# -- the shipped sweep ---------------------------------------------------------------------------
def test_the_shipped_sweep_has_every_k_and_shows_what_k_is_worth():
    sweep = load_sweep()
    assert PROTOTYPE_SWEEP.stat().st_size < 2 * 2**20
    assert list(sweep["num_protos"]) == [1, 2, 4, 8, 16, 32]
    assert len(set(sweep["iterations"].tolist())) == 1                 # one schedule for all
    assert "--num-protos" in sweep["meta"]["training"] and "bench prototypes" in sweep["meta"]["command"]
    for k in sweep["num_protos"]:
        assert sweep["per_k"][int(k)]["proto"].shape[-1] == k
    # what notebook 02 §7 says about it: with k = 1 and 2 the masks are empty though the boxes are
    # learned (k = 1's prototype is zero everywhere); from k = 4 on mask AP climbs slowly with k
    ap = dict(zip(sweep["num_protos"].tolist(), sweep["mask_AP"].tolist()))
    box = dict(zip(sweep["num_protos"].tolist(), sweep["box_AP"].tolist()))
    assert ap[1] < 0.01 and ap[2] < 0.01 and min(box[1], box[2]) > box[32] - 0.05
    assert not sweep["per_k"][1]["proto"].any()
    steps = [ap[b] - ap[a] for a, b in ((4, 8), (8, 16), (16, 32))]
    assert all(0 < step < ap[4] - ap[2] for step in steps), steps


def test_sweep_figure_draws_one_column_per_k(sweep_runs, val_set):
    import matplotlib

    matplotlib.use("Agg")
    sweep = summarize_sweep(list(sweep_runs.values()), val_set, image_index=1)
    fig = draw_sweep_models(sweep)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("k = 1: mask AP") and titles[1].startswith("k = 4: mask AP")
    assert titles[2].startswith("its 1 prototype") and titles[3].startswith("its 4 prototypes")
    sweep["per_k"][4]["proto"][...] = 1
    sweep["per_k"][4]["proto"][..., :2] = 0                          # two maps that never fire are named
    assert draw_sweep_models(sweep).axes[3].get_title() == "its 4 prototypes (2 all zero)"
