"""ONNX export checked with onnxruntime on the CPU: same raw outputs within 1e-4 (relative to each
output's scale), same detections, any batch size; the CLI's export and its refusals."""
import json

import numpy as np
import pytest
import torch

import yolact_edu as ye
from yolact_edu.cli import main
from yolact_edu.deploy.onnx import OUTPUT_NAMES, OnnxYolact, export_onnx, sidecar_paths
from yolact_edu.files.output_folder import OutputConflict
from yolact_edu.lessons.pretrained import shapes_dataset, shipped_model


@pytest.fixture(scope="module")
def shipped():
    return shipped_model("yolact_tiny")


@pytest.fixture(scope="module")
def exported(shipped, tmp_path_factory):
    return export_onnx(shipped, tmp_path_factory.mktemp("onnx") / "yolact_tiny.onnx")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("batch", [1, 3])
def test_raw_outputs_match_pytorch_at_any_batch(shipped, exported, batch):
    dataset = shapes_dataset("val")
    x = shipped.preprocess([dataset.load_image(i) for i in range(batch)])
    with torch.no_grad():
        reference = shipped.eval()(x)
    runtime = OnnxYolact(exported)
    raw = runtime.raw(x)
    for name in OUTPUT_NAMES:
        assert raw[name].shape == reference[name].shape
        assert relative_error(raw[name], reference[name]) < 1e-4, name
    assert torch.equal(raw["priors"], reference["priors"])


def test_same_detections_as_pytorch(shipped, exported):
    dataset = shapes_dataset("val")
    images = [dataset.load_image(i) for i in range(4)]
    runtime = OnnxYolact(exported)
    batch = torch.from_numpy(images[0]).permute(2, 0, 1)[None]          # a 4-D tensor is a batch, as in predict
    assert [len(d) for d in runtime.predict(batch)] == [len(shipped.predict(images[0]))]
    for reference, found in zip(shipped.predict(images), runtime.predict(images)):
        assert len(reference) == len(found) > 0
        assert torch.equal(reference.labels, found.labels)
        assert torch.equal(reference.boxes, found.boxes)
        assert torch.allclose(reference.scores, found.scores, atol=1e-5)
        assert (reference.masks != found.masks).sum() <= 5


def test_sidecar_files_describe_the_model(exported, shipped):
    priors_path, meta_path = sidecar_paths(exported)
    meta = json.loads(meta_path.read_text())
    assert meta["config"]["name"] == "yolact_tiny" and meta["input"]["shape"][1:] == [3, 256, 256]
    assert meta["outputs"]["proto"][-1] == shipped.cfg.num_protos
    assert np.load(priors_path).shape == (meta["outputs"]["loc"][0], 4)


def test_refusals(shipped, exported, tmp_path):
    users = tmp_path / "users.json"             # the sidecar's name, a file yolact_edu did not write
    users.write_text("{}")
    with pytest.raises(OutputConflict, match="users.json exists and was not written by yolact_edu"):
        export_onnx(shipped, tmp_path / "users.onnx")
    assert users.read_text() == "{}" and not (tmp_path / "users.onnx").exists()
    with pytest.raises(ValueError, match="must end in .onnx"):
        export_onnx(shipped, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="optimize"):
        export_onnx(shipped.optimize(autocast="fp32"), tmp_path / "fast.onnx")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(exported.read_bytes())
    with pytest.raises(FileNotFoundError, match="lone.json is missing"):
        OnnxYolact(lone)
    (tmp_path / "lone.json").write_bytes(sidecar_paths(exported)[1].read_bytes())
    with pytest.raises(FileNotFoundError, match="lone.priors.npy is missing"):
        OnnxYolact(lone)
    runtime = OnnxYolact(exported)
    with pytest.raises(ValueError, match="takes \\[B,3,256,256\\] input"):
        runtime.raw(torch.zeros(1, 3, 128, 128))


def test_cli_export_checks_with_onnxruntime(tmp_path, capsys):
    out = tmp_path / "random_tiny.onnx"
    assert main(["export", "--format", "onnx", "--config", "yolact_tiny", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs PyTorch" in printed and out.is_file()
    # its own earlier export is replaced, as predict and eval replace theirs; a user's file is not
    assert main(["export", "--format", "onnx", "--output", str(out), "--no-check"]) == 0
    users = tmp_path / "users.onnx"
    users.write_bytes(b"mine")
    capsys.readouterr()
    assert main(["export", "--format", "onnx", "--output", str(users)]) == 1
    assert "was not written by yolact_edu; pass --force" in capsys.readouterr().err
    assert users.read_bytes() == b"mine"


# -- issue 24: the three files of an export cannot be mismatched; a failed export leaves nothing --------
@pytest.fixture
def trio(exported, tmp_path):
    """A copy of the shipped model's export, (graph, JSON, priors), to spoil."""
    priors, meta = sidecar_paths(exported)
    copies = []
    for source in (exported, meta, priors):
        target = tmp_path / source.name
        target.write_bytes(source.read_bytes())
        copies.append(target)
    return copies


def forget_priors_hash(meta):
    """A JSON that no longer checks the priors' bytes, so the priors' own checks are reached."""
    meta["constants"]["priors"].pop("sha256")


def spoil_json(meta_path, change):
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("spoil, message", [
    (lambda g, j, p: j.write_text("{not json"), r"json is not valid JSON \(.*line 1\)"),
    (lambda g, j, p: j.write_bytes(b"\xff\xfe\x00"), r"json is not a text file"),
    (lambda g, j, p: spoil_json(j, lambda m: m.pop("config")), r"json has no 'config' field"),
    (lambda g, j, p: spoil_json(j, lambda m: m.pop("graph_sha256")), r"json has no 'graph_sha256' field"),
    (lambda g, j, p: spoil_json(j, lambda m: m.update(graph_sha256="0" * 64)), r"json describes another export"),
    (lambda g, j, p: spoil_json(j, lambda m: m["config"].update(num_classes=80,
                                                                 class_names=[f"c{i}" for i in range(80)])),
     r"output 'conf' is \['batch', '\w+', 7\], but .*json's config describes \[batch, \d+, 81\]"),
    (lambda g, j, p: np.save(p, np.zeros((10, 4), np.float32)), r"priors.npy is not the priors of this export"),
    (lambda g, j, p: (np.save(p, np.full((4092, 4), np.nan, np.float32)),
                      spoil_json(j, forget_priors_hash)), r"priors.npy holds a float32 array with non-finite"),
    (lambda g, j, p: (np.save(p, np.zeros((4092, 3), np.float32)),
                      spoil_json(j, forget_priors_hash)), r"shape \(4092, 3\), but .*json's config needs \(4092, 4\)"),
    (lambda g, j, p: (np.save(p, np.zeros((10, 4), np.float32)),
                      spoil_json(j, forget_priors_hash)), r"priors.npy holds priors of shape \(10, 4\), but"),
])
def test_a_spoiled_or_foreign_sidecar_is_refused_in_one_line(trio, spoil, message):
    graph, meta, priors = trio
    spoil(graph, meta, priors)
    with pytest.raises(ValueError, match=message) as refused:
        OnnxYolact(graph)
    assert "\n" not in str(refused.value)


def test_the_sidecars_of_another_export_are_refused(trio, tmp_path):
    graph, meta, _ = trio
    torch.manual_seed(0)
    other = export_onnx(ye.build_model("yolact_tiny").eval(), tmp_path / "other" / "coco80.onnx")   # 80 classes
    meta.write_text(sidecar_paths(other)[1].read_text())          # its JSON beside the 6-class graph
    with pytest.raises(ValueError, match="describes another export"):
        OnnxYolact(graph)


def test_a_full_disk_during_export_is_one_line_naming_the_file_and_leaves_nothing(tmp_path):
    from test_bad_input import one_error_line, run_cli, small_disk

    disk = tmp_path / "disk"
    with small_disk(disk) as limit:
        result = run_cli(["export", "--format", "onnx", "--output", str(disk / "tiny.onnx"), "--no-check"],
                         cwd=tmp_path, preexec_fn=limit)
        left = sorted(p.name for p in disk.iterdir() if p.name != ".yolact_edu_outputs.json")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert str(disk / "tiny.onnx") in line and ("No space left on device" in line or "File too large" in line)
    assert left == []                                             # no .part graph, no half sidecar


def test_sigterm_during_export_leaves_no_partial_graph(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "yolact_edu.cli", "export", "--format", "onnx", "--config",
                                "yolact_resnet50", "--output", str(tmp_path / "r50.onnx"), "--no-check"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not any(".part" in p.name for p in tmp_path.iterdir()):     # the graph is being written
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name or p.suffix == ".onnx") == []
