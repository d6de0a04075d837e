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
    with pytest.raises(ValueError, match="YOLACT\\+\\+"):
        export_onnx(ye.build_model("yolact_plus_resnet50").eval(), tmp_path / "plus.onnx")
    with pytest.raises(ValueError, match="optimize"):
        export_onnx(shipped.optimize(autocast="fp32"), tmp_path / "fast.onnx")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(exported.read_bytes())
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
