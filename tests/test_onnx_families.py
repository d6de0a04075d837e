"""Every family exported to ONNX (issue 27): in onnxruntime the raw outputs are PyTorch's within
1e-4 (relative to each output's scale) and the family's own ``detect`` finds the same detections
(same count and classes, boxes within a pixel, masks at IoU >= 0.95); the per-detection heads
(CenterMask's, YOLACT++'s) run as graphs of their own; ``export`` treats its earlier output as
``predict`` and ``eval`` treat theirs."""
import json

import numpy as np
import pytest
import torch

import yolact_edu as ye
from yolact_edu.cli import main
from yolact_edu.deploy.onnx import (
    OnnxModel,
    compare_with_pytorch,
    description_path,
    export_graph,
    export_onnx,
    head_path,
)
from yolact_edu.deploy.onnx_families import OnnxHead, register_deformable_convolution
from yolact_edu.files.output_folder import OutputConflict
from yolact_edu.lessons.pretrained import shapes_dataset, shipped_model
from yolact_edu.model.backbone import ModulatedDeformConv

RELATIVES = ["condinst_tiny", "blendmask_tiny", "centermask_tiny", "solov2_tiny", "maskrcnn_tiny"]


@pytest.fixture(scope="module")
def images():
    """A validation image and a blank one (no detection: the empty paths of every runner)."""
    return [shapes_dataset("val").load_image(0), np.zeros((96, 160, 3), np.uint8)]


def assert_same_as_pytorch(model, runtime, images):
    report = compare_with_pytorch(model, runtime, images)
    assert report["raw"] < 1e-4, report["raw"]
    for index, found in enumerate(report["detections"]):
        ours, theirs = found["counts"]
        assert ours == theirs and (ours > 0 or index == 1), (index, found)
        assert found["agrees"], (index, found)
    assert report["agrees"]
    return report


@pytest.mark.parametrize("name", RELATIVES)
def test_every_relative_runs_in_onnxruntime_as_in_pytorch(name, images, tmp_path):
    model = shipped_model(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    runtime = OnnxModel(path)
    assert_same_as_pytorch(model, runtime, images)
    meta = json.loads(description_path(path).read_text())
    assert meta["family"] == model.cfg.family and meta["config"]["name"] == name
    assert meta["batch"] == ("one image per run" if name == "maskrcnn_tiny" else "dynamic")
    # detect ran on a weightless model: every weight it used came from the ONNX files
    assert all(p.device.type == "meta" for p in runtime.model.parameters())
    if name == "centermask_tiny":
        assert isinstance(runtime.model.mask_head, OnnxHead) and head_path(path, "mask_head").is_file()
        assert "mask_head.onnx" in meta["postprocessing"]
    else:
        assert meta["heads"] == {}


@pytest.fixture(scope="module")
def yolact_plus():
    """A small YOLACT++: the shipped yolact_tiny's weights in a config with DCNv2 in the last three
    stages and the mask re-scoring net, the offsets made non-zero so the deformation is exercised."""
    shipped = shipped_model("yolact_tiny")
    torch.manual_seed(0)
    model = ye.build_model(shipped.cfg.replace(name="yolact_plus_tiny", dcn_layers=(0, 1, 1, 1), use_maskiou=True))
    missing, unexpected = model.load_state_dict(shipped.state_dict(), strict=False)
    assert not unexpected and all("conv_offset_mask" in k or "maskiou" in k or k.endswith("conv2.bias")
                                  for k in missing)
    deformable = [m for m in model.modules() if isinstance(m, ModulatedDeformConv)]
    assert len(deformable) == 3
    for layer in deformable:
        torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.01)
    return model.eval()


def test_yolact_plus_exports_its_deformable_convolutions_and_rescoring(yolact_plus, images, tmp_path):
    import onnx

    path = export_onnx(yolact_plus, tmp_path / "plus.onnx")
    meta = json.loads(description_path(path).read_text())
    assert meta["opset"] == 19 and "maskiou_net" in meta["heads"]
    assert sum(node.op_type == "DeformConv" for node in onnx.load(str(path)).graph.node) == 3
    runtime = OnnxModel(path)
    assert isinstance(runtime.model.maskiou_net, OnnxHead)
    assert_same_as_pytorch(yolact_plus, runtime, images)
    ours, theirs = yolact_plus.predict(images[0]), runtime.predict(images[0])
    assert ours.mask_scores is not None and len(ours) > 0
    assert torch.allclose(ours.mask_scores, theirs.mask_scores, atol=1e-5)


def test_an_operation_without_onnx_form_is_refused_in_one_line(tmp_path):
    """Why YOLACT++ is exported at opset 19: ONNX has DeformConv only from there on; below, the
    refusal names the operation."""
    register_deformable_convolution()
    layer = ModulatedDeformConv(4, 4).eval()
    with pytest.raises(ValueError, match="^dcn cannot be exported to ONNX: the operation torchvision::deform_conv2d "
                                         "has no ONNX form at opset 17$"):
        export_graph(layer, torch.zeros(1, 4, 8, 8), tmp_path / "dcn.onnx", "image", ["out"], {}, 17, "dcn")
    assert list(tmp_path.iterdir()) == []                 # no partial graph left


def test_export_replaces_its_own_earlier_files_and_no_others(tmp_path):
    torch.manual_seed(0)
    centermask, condinst = ye.build_model("centermask_tiny").eval(), ye.build_model("condinst_tiny").eval()
    out = tmp_path / "out"
    export_onnx(centermask, out / "m.onnx")
    assert head_path(out / "m.onnx", "mask_head").is_file()
    export_onnx(condinst, out / "m.onnx")                 # its own: replaced, without force
    assert sorted(p.name for p in out.iterdir()) == [".yolact_edu_outputs.json", "m.json", "m.onnx"]
    assert OnnxModel(out / "m.onnx").family == "condinst"

    users = head_path(out / "u.onnx", "mask_head")        # a user's file where a companion would go
    users.write_bytes(b"mine")
    with pytest.raises(OutputConflict, match="u.mask_head.onnx exists and was not written by yolact_edu"):
        export_onnx(centermask, out / "u.onnx")
    assert users.read_bytes() == b"mine" and not (out / "u.onnx").exists()
    with pytest.raises(OutputConflict, match="u.mask_head.onnx is the input"):    # an input: not even with force
        export_onnx(centermask, out / "u.onnx", force=True, protect=[users])
    assert users.read_bytes() == b"mine"
    export_onnx(centermask, out / "u.onnx", force=True)
    assert isinstance(OnnxModel(out / "u.onnx").model.mask_head, OnnxHead)


def test_cli_exports_a_relative_and_refuses_a_users_file(tmp_path, capsys):
    out = tmp_path / "centermask.onnx"
    assert main(["export", "--config", "centermask_tiny", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "centermask.json, centermask.mask_head.onnx" in printed and "onnxruntime vs PyTorch" in printed
    users = tmp_path / "mine.json"                        # the JSON an export to mine.onnx would write
    users.write_text("{}")
    assert main(["export", "--config", "solov2_tiny", "--output", str(tmp_path / "mine.onnx"), "--no-check"]) == 1
    assert "mine.json exists and was not written by yolact_edu; pass --force" in capsys.readouterr().err
    assert users.read_text() == "{}" and not (tmp_path / "mine.onnx").exists()
