"""Shipping a model: export strips a real training checkpoint to float16 and stores figures that
are the exported weights' own; `bench compare` scores and times two models side by side."""
import json
import os
import tempfile
from pathlib import Path

import pytest
import torch

import yolact_edu as ye
from yolact_edu.cli import main
from yolact_edu.data import SHAPE_CLASSES, CocoDataset, make_shapes
from yolact_edu.lessons.two_ways.comparison import latency_curve, paper_scale
from yolact_edu.lessons.two_ways.maskrcnn import coco_weights_path
from yolact_edu.training.checkpoint import load_model, read_checkpoint, save_checkpoint
from yolact_edu.training.evaluation import evaluate
from yolact_edu.training.export import CHECK_IMAGES, export_small, shipped_metadata
from yolact_edu.training.trainer import Trainer

SIZE = 128
FAMILY_MODELS = ("yolact_tiny", "maskrcnn_tiny", "condinst_tiny", "solov2_tiny", "blendmask_tiny", "centermask_tiny")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=CHECK_IMAGES + 2, seed=11,
                       min_size=128, max_size=160)


def dataset(shapes, split="val", **kwargs):
    return CocoDataset(shapes[f"{split}_annotations"], shapes[f"{split}_images"], max_size=SIZE, verbose=False,
                       **kwargs)


@pytest.fixture(scope="module")
def runs(shapes, tmp_path_factory):
    """A few training steps of each family: real training checkpoints (fp32, optimiser state)."""
    out = {}
    for name in FAMILY_MODELS:
        torch.manual_seed(0)
        model = ye.build_model(ye.get_model_config(name).with_classes(SHAPE_CLASSES).replace(max_size=SIZE))
        run_dir = tmp_path_factory.mktemp(name)
        summary = Trainer(model, dataset(shapes, "train", augment="light"), out_dir=run_dir, batch_size=2,
                          max_iter=4, log_every=2, device="cpu", progress=False).run()
        out[name] = (run_dir, summary["checkpoint"])
    return out


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_export_strips_halves_and_records_the_exported_weights_figures(runs, shapes, tmp_path, name):
    run_dir, checkpoint = runs[name]
    out = export_small(checkpoint, tmp_path / "small.pth", val_dataset=dataset(shapes), run_dir=run_dir,
                       command="yolact-edu train ...")
    source, exported = read_checkpoint(checkpoint), read_checkpoint(out)
    assert "optimizer" in source and "optimizer" not in exported and "rng" not in exported
    assert out.stat().st_size < 0.4 * Path(checkpoint).stat().st_size        # fp16, no optimiser state
    assert exported["config"] == source["config"] and exported["category_ids"] == source["category_ids"]
    for key, value in source["model"].items():
        if value.is_floating_point():
            assert exported["model"][key].dtype == torch.float16
            assert torch.equal(exported["model"][key], value.half()), key
    # The figures are those of the file as it loads (fp16 weights in an fp32 model), not the run's.
    meta = shipped_metadata(out)
    loaded = load_model(out).float()
    full = evaluate(loaded, dataset(shapes), progress=False, verbose=False)
    assert meta["val"]["mask_AP"] == full["segm"]["AP"] and meta["val"]["box_AP90"] == full["bbox"]["AP90"]
    assert meta["val"]["images"] == CHECK_IMAGES + 2 and meta["val"]["generator"]["seed"] == 11
    check = evaluate(loaded, dataset(shapes), max_images=CHECK_IMAGES, progress=False, verbose=False)
    assert meta["check"] == {"annotations": "instances_val.json", "images": CHECK_IMAGES,
                             "box_AP": check["bbox"]["AP"], "mask_AP": check["segm"]["AP"]}
    training = meta["training"]
    assert training["iterations"] == 4 and training["batch_size"] == 2 and training["command"] == "yolact-edu train ..."
    assert training["train_seconds"] > 0 and training["images_per_second"] > 0
    with pytest.raises(ValueError, match="replace its input"):
        export_small(out, out)


def test_export_from_the_command_line_refuses_to_overwrite(runs, shapes, tmp_path, capsys):
    _, checkpoint = runs["maskrcnn_tiny"]
    target = tmp_path / "mine.pth"
    target.write_text("the user's file")
    args = ["weights", "export", checkpoint, str(target), "--annotations", str(shapes["val_annotations"]),
            "--images", str(shapes["val_images"])]
    assert main(args) == 1 and "pass --force" in capsys.readouterr().err
    assert target.read_text() == "the user's file"
    assert main([*args, "--force", "--command", "yolact-edu train --config maskrcnn_tiny"]) == 0
    assert "mask AP" in capsys.readouterr().out
    assert shipped_metadata(target)["training"]["command"] == "yolact-edu train --config maskrcnn_tiny"


# -- bench compare ------------------------------------------------------------------------------------
def test_bench_compare_scores_and_times_both_on_the_same_images(runs, shapes, tmp_path, capsys):
    out = tmp_path / "bench" / "compare.json"
    assert main(["bench", "compare", "--models", "yolact_tiny,maskrcnn_tiny", "--yolact", runs["yolact_tiny"][1],
                 "--maskrcnn", runs["maskrcnn_tiny"][1],
                 "--annotations", str(shapes["val_annotations"]), "--images", str(shapes["val_images"]),
                 "--counts", "1,5", "--repeats", "1", "--warmup", "0", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mask_AP90" in printed and "instances N" in printed
    result = json.loads(out.read_text())
    assert set(result["accuracy"]) == {"YOLACT", "Mask R-CNN"}
    for row in result["accuracy"].values():
        assert row["images"] == CHECK_IMAGES + 2 and 0 <= row["mask_AP90"] <= row["mask_AP75"] <= 1
    for curve in result["latency"].values():
        assert curve["counts"] == [1, 5] and all(ms > 0 for ms in curve["median_ms"])
    assert result["environment"]["machine"].startswith("CPU")


def test_bench_compare_puts_all_six_families_in_one_table_and_one_plot(runs, shapes, tmp_path, capsys):
    out, plot = tmp_path / "bench" / "compare.json", tmp_path / "bench" / "compare.png"
    weights = [arg for name in FAMILY_MODELS for arg in ("--weights", f"{name}={runs[name][1]}")]
    assert main(["bench", "compare", *weights, "--annotations", str(shapes["val_annotations"]),
                 "--images", str(shapes["val_images"]), "--counts", "1,4", "--repeats", "1", "--warmup", "0",
                 "--output", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert list(result["accuracy"]) == ["YOLACT", "Mask R-CNN", "CondInst", "SOLOv2", "BlendMask", "CenterMask"]
    assert "ms / instance" in printed and all(name in printed for name in result["accuracy"])
    for name, curve in result["latency"].items():
        assert curve["counts"] == [1, 4] and all(ms > 0 for ms in curve["median_ms"]), name
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a checkpoint of another family under a model's name is refused, naming both
    assert main(["bench", "compare", "--models", "yolact_tiny,condinst_tiny", "--weights",
                 f"condinst_tiny={runs['solov2_tiny'][1]}", "--yolact", runs["yolact_tiny"][1],
                 "--output", str(tmp_path / "other.json")]) == 1
    assert "holds a solov2 model" in capsys.readouterr().err
    assert main(["bench", "compare", "--models", "yolact_tiny",
                 "--weights", f"blendmask_tiny={runs['blendmask_tiny'][1]}",
                 "--output", str(tmp_path / "other.json")]) == 1
    assert "--models leaves out" in capsys.readouterr().err


def test_latency_curve_forces_the_number_of_instances(runs):
    models = {name: load_model(path) for name, (_, path) in runs.items()}
    image = (torch.rand(150, 170, 3) * 255).to(torch.uint8).numpy()
    curves = latency_curve(models, image, counts=(1, 7), repeats=1, warmup=0)
    for name, curve in curves.items():        # untrained, so candidates abound at score threshold 0
        assert curve["instances"] == [1, 7], name


def test_paper_scale_times_both_models_stage_by_stage():
    image = (torch.rand(120, 160, 3) * 255).to(torch.uint8).numpy()
    result = paper_scale(image, instances=5, repeats=1, warmup=0)
    assert result["yolact"]["detections"] == result["maskrcnn"]["detections"] == 5
    assert result["yolact"]["input"] == [1, 3, 550, 550] and result["maskrcnn"]["input"][2] == 800
    assert set(result["yolact"]["stages_ms"]) >= {"network", "decode + NMS"}
    assert result["ratio"] == pytest.approx(result["yolact"]["total_ms"] / result["maskrcnn"]["total_ms"])


def test_the_test_session_never_sees_the_users_torch_cache():
    """conftest.py gives the session (and the notebooks' kernels) an empty torch hub cache, so a
    user's cached COCO Mask R-CNN weights cannot change what the notebook tests run."""
    home = Path(os.environ["TORCH_HOME"])
    assert home.name.startswith("yolact_edu_test_torch_home_") and home.parent == Path(tempfile.gettempdir())
    assert not coco_weights_path().is_file() and coco_weights_path().is_relative_to(home)


def test_bench_compare_refuses_models_with_different_inputs(runs, tmp_path, capsys):
    other = ye.build_model(ye.get_model_config("maskrcnn_tiny").with_classes(SHAPE_CLASSES).replace(max_size=160))
    path = save_checkpoint(tmp_path / "other.pth", other)
    assert main(["bench", "compare", "--models", "yolact_tiny,maskrcnn_tiny", "--yolact", runs["yolact_tiny"][1],
                 "--maskrcnn", str(path), "--output", str(tmp_path / "compare.json")]) == 1
    assert "different inputs" in capsys.readouterr().err and not (tmp_path / "compare.json").exists()


def test_bench_compare_never_replaces_a_file_of_the_users(runs, tmp_path, capsys):
    mine = tmp_path / "compare.json"
    mine.write_text("the user's notes")
    assert main(["bench", "compare", "--models", "yolact_tiny,maskrcnn_tiny", "--yolact", runs["yolact_tiny"][1],
                 "--maskrcnn", runs["maskrcnn_tiny"][1], "--output", str(mine)]) == 1
    assert "--force" in capsys.readouterr().err and mine.read_text() == "the user's notes"
