"""Loading the original implementation's checkpoints (yolact_edu.weights).

The expected keys and shapes come from tests/official_keys.py, which is built
from the reference description alone (never from yolact_edu's model code) and
is itself checked against the reference's parameter totals below.
"""

from __future__ import annotations

import functools
import os
import random

import pytest
import torch
from official_keys import (
    OFFICIAL_NAMES,
    REFERENCE_PARAM_TOTALS,
    dcn_positions,
    is_bn_buffer,
    make_state_dict,
    official_shapes,
    parameter_total,
)

from yolact_edu import CheckpointError, Yolact, get_config, load_official
from yolact_edu.weights import (
    OFFICIAL_FILES,
    apply_legacy_fixups,
    config_from_filename,
    read_state_dict,
)

CONF = "prediction_layers.0.conf_layer.weight"


@functools.lru_cache(maxsize=3)  # bounded: a ResNet-101 dict is ~200 MB
def _cached(name: str) -> dict[str, torch.Tensor]:
    return make_state_dict(name, seed=OFFICIAL_NAMES.index(name))


def sd_of(name: str) -> dict[str, torch.Tensor]:
    """A fresh dict (shared, never-mutated tensors) of random weights for ``name``."""
    return dict(_cached(name))


def file_name(name: str) -> str:
    return OFFICIAL_FILES.get(name, f"{name}_54_800000.pth")


def assert_holds_exactly(model: Yolact, state_dict: dict[str, torch.Tensor]) -> None:
    """Every tensor of ``state_dict`` is in the model, bit for bit, and nothing else is."""
    got = model.state_dict()
    assert set(got) == set(state_dict), (
        f"missing {sorted(set(state_dict) - set(got))[:5]}, extra {sorted(set(got) - set(state_dict))[:5]}")
    for key, expected in state_dict.items():
        assert got[key].shape == expected.shape, key
        assert got[key].dtype == expected.dtype, key
        assert torch.equal(got[key], expected), key


def assert_eval(model: Yolact) -> None:
    assert not model.training
    assert not any(m.training for m in model.modules())


def load_error(*args, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_official(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# The independent key map agrees with the reference before it is used as the yardstick.

@pytest.mark.parametrize("name", sorted(REFERENCE_PARAM_TOTALS))
def test_key_map_parameter_totals_match_reference(name):
    assert parameter_total(official_shapes(name)) == REFERENCE_PARAM_TOTALS[name]


def test_key_map_details_match_reference():
    base = official_shapes("yolact_base")
    # §6.1 spot checks.
    assert base["backbone.conv1.weight"] == (64, 3, 7, 7)
    assert base["backbone.layers.2.22.conv3.weight"] == (1024, 256, 1, 1)
    assert base["backbone.layers.3.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    assert base["backbone.layers.0.1.conv1.weight"] == (64, 256, 1, 1)
    assert base["backbone.bn1.num_batches_tracked"] == ()
    assert base["fpn.lat_layers.0.weight"] == (256, 2048, 1, 1)
    assert base["fpn.lat_layers.2.weight"] == (256, 512, 1, 1)
    assert base[CONF] == (243, 256, 3, 3)
    assert base["proto_net.10.weight"] == (32, 256, 1, 1)
    assert base["semantic_seg_conv.weight"] == (80, 256, 1, 1)
    assert "backbone.layers.2.23.conv1.weight" not in base
    assert official_shapes("yolact_im400") == base == official_shapes("yolact_im700")
    # Top-level order of the original state dict.
    order = list(dict.fromkeys(k.split(".")[0] for k in official_shapes("yolact_plus_base")))
    assert order == ["backbone", "proto_net", "maskiou_net", "fpn", "prediction_layers", "semantic_seg_conv"]
    dark = official_shapes("yolact_darknet53")
    assert dark["fpn.lat_layers.0.weight"] == (256, 1024, 1, 1)
    assert dark["backbone.layers.4.4.conv2.0.weight"] == (1024, 512, 3, 3)
    plus = official_shapes("yolact_plus_base")
    assert plus[CONF] == (729, 256, 3, 3)
    assert plus["maskiou_net.maskiou_net.10.weight"] == (80, 128, 1, 1)
    assert plus["backbone.layers.2.21.conv2.conv_offset_mask.weight"] == (27, 256, 3, 3)
    assert "backbone.layers.2.22.conv2.bias" not in plus


def test_dcn_positions_match_reference():
    assert dcn_positions("yolact_plus_base") == (
        [(1, 0), (1, 3)] + [(2, b) for b in (0, 3, 6, 9, 12, 15, 18, 21)] + [(3, 0)])
    assert dcn_positions("yolact_plus_resnet50") == (
        [(1, b) for b in range(4)] + [(2, b) for b in range(6)] + [(3, b) for b in range(3)])
    assert dcn_positions("yolact_base") == []


# ---------------------------------------------------------------------------------------------
# Round trips

@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_state_dict_round_trip(name):
    sd = sd_of(name)
    assert set(sd) == set(official_shapes(name))
    model = load_official(sd, config=name)
    assert isinstance(model, Yolact)
    assert model.cfg.name == name
    assert_eval(model)
    assert_holds_exactly(model, sd)


# One file per backbone family (ResNet-101, ResNet-50, DarkNet-53, ResNet-50 + DCN).
@pytest.mark.parametrize("name", ["yolact_base", "yolact_resnet50", "yolact_darknet53",
                                  "yolact_plus_resnet50"])
def test_file_round_trip_config_from_file_name(tmp_path, name):
    sd = sd_of(name)
    path = tmp_path / file_name(name)
    torch.save(sd, path)
    model = load_official(path, config=None)
    assert model.cfg.name == name
    assert_eval(model)
    assert_holds_exactly(model, sd)


def test_file_path_as_str_and_explicit_config_with_free_file_name(tmp_path):
    sd = sd_of("yolact_resnet50")
    path = tmp_path / "my_finetuned.pth"
    torch.save(sd, path)
    model = load_official(str(path), config="yolact_resnet50")
    assert_holds_exactly(model, sd)
    # A config object is accepted as well as a name.
    model = load_official(str(path), config=get_config("yolact_resnet50"))
    assert model.cfg == get_config("yolact_resnet50")


def test_legacy_serialization_format(tmp_path):
    # The released files were written by PyTorch 1.x, before the zip format.
    sd = sd_of("yolact_resnet50")
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    with open(path, "rb") as fh:
        assert fh.read(2) != b"PK"
    assert_holds_exactly(load_official(path), sd)


def test_config_inferred_from_tensors_when_unambiguous():
    model = load_official(sd_of("yolact_darknet53"))
    assert model.cfg.name == "yolact_darknet53"
    assert load_official(sd_of("yolact_plus_resnet50")).cfg.name == "yolact_plus_resnet50"


def test_config_inference_refuses_to_guess_between_input_sizes():
    message = load_error(sd_of("yolact_base"))
    for name in ("yolact_base", "yolact_im400", "yolact_im700"):
        assert name in message
    assert "config=" in message


def test_three_class_checkpoint_loads_into_a_three_class_config():
    sd = make_state_dict("yolact_resnet50", seed=3, num_classes=3)
    assert sd[CONF].shape == (12, 256, 3, 3) and sd["semantic_seg_conv.weight"].shape == (3, 256, 1, 1)
    cfg = get_config("yolact_resnet50").replace(num_classes=3)
    assert_holds_exactly(load_official(sd, config=cfg), sd)


# ---------------------------------------------------------------------------------------------
# File-name inference

@pytest.mark.parametrize("filename, expected", [
    ("yolact_base_54_800000.pth", "yolact_base"),
    ("yolact_plus_resnet50_54_800000.pth", "yolact_plus_resnet50"),
    ("yolact_plus_base_54_800000.pth", "yolact_plus_base"),
    ("yolact_resnet50_54_800000.pth", "yolact_resnet50"),
    ("yolact_im700_54_800000.pth", "yolact_im700"),
    ("yolact_im400_54_800000.pth", "yolact_im400"),
    ("yolact_darknet53_54_800000.pth", "yolact_darknet53"),
    ("yolact_darknet53_10_32100_interrupt.pth", "yolact_darknet53"),   # Ctrl+C save of train.py
    ("yolact_base_10_32100.pth", "yolact_base"),
    (os.path.join("some", "dir", "yolact_resnet50_54_800000.pth"), "yolact_resnet50"),
])
def test_config_from_filename(filename, expected):
    assert config_from_filename(filename) == expected


@pytest.mark.parametrize("name", OFFICIAL_FILES)
def test_released_file_names_map_back_to_their_config(name):
    assert config_from_filename(OFFICIAL_FILES[name]) == name


@pytest.mark.parametrize("filename", ["my_model.pth", "yolact_huge_54_800000.pth", "resnet101_reducedfc.pth"])
def test_unknown_file_name(filename, tmp_path):
    with pytest.raises(CheckpointError, match=filename):
        config_from_filename(tmp_path / filename)
    # load_official says the same (before reading anything) when no config is given.
    path = tmp_path / filename
    torch.save(sd_of("yolact_resnet50"), path)
    message = load_error(path)
    assert filename in message and "config=" in message


# ---------------------------------------------------------------------------------------------
# The original's two legacy fix-ups, and old BN counters

def test_legacy_fixups_drop_old_keys_and_loading_succeeds():
    sd = sd_of("yolact_resnet50")
    with_legacy = dict(sd)
    with_legacy["backbone.layer1.0.conv1.weight"] = torch.randn(64, 64, 1, 1)   # pre-rename name
    with_legacy["fpn.downsample_layers.2.weight"] = torch.randn(256, 256, 3, 3)  # v1.0 extra conv
    with_legacy["fpn.downsample_layers.2.bias"] = torch.randn(256)
    model = load_official(with_legacy, config="yolact_resnet50")
    assert_holds_exactly(model, sd)
    assert "backbone.layer1.0.conv1.weight" in with_legacy  # the caller's dict is left alone


def test_apply_legacy_fixups_keeps_everything_else():
    sd = sd_of("yolact_base")
    extra = dict(sd, **{"backbone.layer4.2.bn3.weight": torch.zeros(1),
                        "fpn.downsample_layers.3.weight": torch.zeros(1)})
    out = apply_legacy_fixups(extra, get_config("yolact_base"))
    assert list(out) == list(sd)
    assert all(out[k] is sd[k] for k in sd)


def test_checkpoint_without_num_batches_tracked_loads():
    sd = make_state_dict("yolact_resnet50", seed=5, num_batches_tracked=False)
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    model = load_official(sd, config="yolact_resnet50")
    got = model.state_dict()
    for key, value in sd.items():
        assert torch.equal(got[key], value), key
    assert got["backbone.bn1.num_batches_tracked"].dtype == torch.int64


# ---------------------------------------------------------------------------------------------
# Errors name the problem

def test_missing_key_is_named():
    sd = sd_of("yolact_resnet50")
    del sd["fpn.lat_layers.1.bias"]
    message = load_error(sd, config="yolact_resnet50")
    assert "missing" in message and "fpn.lat_layers.1.bias" in message


def test_missing_running_stats_are_not_excused():
    sd = sd_of("yolact_resnet50")
    del sd["backbone.layers.1.0.bn2.running_var"]
    assert "backbone.layers.1.0.bn2.running_var" in load_error(sd, config="yolact_resnet50")


def test_unexpected_key_is_named():
    sd = sd_of("yolact_resnet50")
    sd["prediction_layers.1.bbox_layer.weight"] = torch.zeros(12, 256, 3, 3)
    message = load_error(sd, config="yolact_resnet50")
    assert "unexpected" in message and "prediction_layers.1.bbox_layer.weight" in message


def test_three_class_checkpoint_in_an_80_class_config():
    sd = make_state_dict("yolact_resnet50", seed=4, num_classes=3)
    message = load_error(sd, config="yolact_resnet50")
    assert "conf_layer.weight" in message and "semantic_seg_conv.weight" in message
    assert "(12, 256, 3, 3)" in message and "(243, 256, 3, 3)" in message
    assert "3 classes" in message and "80" in message
    assert "num_classes=3" in message


def test_resnet50_weights_with_yolact_base_config(tmp_path):
    path = tmp_path / "yolact_base_54_800000.pth"  # a renamed file: the name says base
    torch.save(sd_of("yolact_resnet50"), path)
    message = load_error(path)
    assert "missing" in message and "backbone.layers.2.6." in message
    assert "yolact_resnet50" in message
    assert str(path) in message


def test_base_weights_with_resnet50_config_suggests_the_resnet101_configs():
    message = load_error(sd_of("yolact_base"), config="yolact_resnet50")
    assert "unexpected" in message and "backbone.layers.2.6." in message
    assert "yolact_base" in message


def test_plus_weights_with_plain_config():
    message = load_error(sd_of("yolact_plus_resnet50"), config="yolact_resnet50")
    assert "unexpected" in message and "conv2.conv_offset_mask.weight" in message
    assert "51 in all" in message  # 13 DCN x 3 keys + 12 maskiou keys
    assert "conf_layer.weight (file (729, 256, 3, 3), model (243, 256, 3, 3))" in message
    assert "it fits config yolact_plus_resnet50" in message


@pytest.mark.parametrize("weights, config", [("yolact_plus_resnet50", "yolact_resnet50"),
                                             ("yolact_resnet50", "yolact_plus_resnet50")])
def test_anchor_count_mismatch_is_not_blamed_on_classes(weights, config):
    # Both files have 80 classes; the conf layer differs because of 9 vs 3 anchors per cell.
    # A hint such as "the file has 242 classes" (729 // 3 - 1) or "26 classes" (243 // 9 - 1)
    # sends the user the wrong way.
    message = load_error(sd_of(weights), config=config)
    assert "classes" not in message or "the file has 80 classes" in message


def test_nonexistent_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope_54_800000.pth"):
        load_official(tmp_path / "nope_54_800000.pth", config="yolact_base")


def test_random_bytes_file(tmp_path):
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    path.write_bytes(random.Random(7).randbytes(100_000))
    message = load_error(path)
    assert "not a readable" in message and str(path) in message


@pytest.mark.parametrize("payload", [
    b"\x80\x02.",          # pickle STOP on an empty stack (IndexError inside torch)
    b"\x80\x02h\x05.",     # memo lookup of a missing entry (KeyError inside torch)
    b"\x80\x02J\x00",      # BININT cut short (struct.error inside torch)
], ids=["empty-stack", "bad-memo", "short-int"])
def test_malformed_pickle_stream_is_a_checkpoint_error(tmp_path, payload):
    # Roughly 1 in 12 random byte strings ends up in one of these torch-internal errors.
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    path.write_bytes(payload)
    message = load_error(path)
    assert "not a readable" in message and str(path) in message


@pytest.fixture(scope="module")
def resnet50_file_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "full.pth"
    torch.save(sd_of("yolact_resnet50"), path)
    return path.read_bytes()


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_checkpoint(tmp_path, resnet50_file_bytes, fraction):
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    path.write_bytes(resnet50_file_bytes[: int(len(resnet50_file_bytes) * fraction)])
    message = load_error(path)
    assert "not a readable" in message and str(path) in message


def test_truncated_small_checkpoint(tmp_path):
    # A download cut after a few kB: torch raises OSError(EINVAL) for such files.
    full = tmp_path / "full.pth"
    torch.save({"a": torch.randn(1000), "b": torch.randn(3000)}, full)
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    path.write_bytes(full.read_bytes()[:8000])
    message = load_error(path)
    assert "not a readable" in message and str(path) in message


class _Payload:
    """Unpickling this would create a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_code_does_not_run(tmp_path):
    marker = tmp_path / "code_ran"
    sd = sd_of("yolact_resnet50")
    sd["backbone.conv1.weight"] = _Payload(marker)
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(sd, path)
    message = load_error(path)
    assert not marker.exists()
    assert "not a readable" in message and str(path) in message

    # Control: an unrestricted unpickler would have run it, so the check above means something.
    control = tmp_path / "control"
    path2 = tmp_path / "control.pth"
    torch.save({"x": _Payload(control)}, path2)
    torch.load(path2, weights_only=False)
    assert control.is_dir()


class _Plain:
    pass


def test_pickled_arbitrary_class_is_rejected(tmp_path):
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save({"model": _Plain()}, path)
    assert "not a readable" in load_error(path)


@pytest.mark.parametrize("obj", [
    {"backbone.conv1.weight": 1.0},
    {"lr": 0.001, "iteration": 800000},
    [torch.zeros(3)],
    {},
    {1: torch.zeros(3)},
], ids=["float-value", "no-tensors", "list", "empty", "int-key"])
def test_file_without_a_state_dict(tmp_path, obj):
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(obj, path)
    message = load_error(path)
    assert "does not hold a state dict" in message and str(path) in message
    if isinstance(obj, dict):  # the same object passed in memory
        assert "does not hold a state dict" in load_error(obj, config="yolact_resnet50")


@pytest.mark.parametrize("wrapper", ["model", "state_dict"])
def test_wrapped_state_dict(tmp_path, wrapper):
    sd = sd_of("yolact_resnet50")
    assert_holds_exactly(load_official({wrapper: sd, "iteration": 800000}, config="yolact_resnet50"), sd)
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save({wrapper: sd, "epoch": 54}, path)
    assert_holds_exactly(load_official(path), sd)
    assert read_state_dict(path).keys() == sd.keys()


# ---------------------------------------------------------------------------------------------
# Unusual tensor layouts and dtypes in the file

def test_non_contiguous_and_odd_layout_tensors(tmp_path):
    sd = sd_of("yolact_resnet50")
    odd = dict(sd)
    # A transposed view (non-contiguous strides), a channels_last tensor, and BN weights that
    # are views into one shared storage.
    odd[CONF] = sd[CONF].transpose(0, 1).contiguous().transpose(0, 1)
    odd["fpn.pred_layers.0.weight"] = sd["fpn.pred_layers.0.weight"].to(
        memory_format=torch.channels_last)
    bn_keys = [k for k in sd if k.endswith("bn1.weight")]
    flat = torch.cat([sd[k] for k in bn_keys])
    offset = 0
    for k in bn_keys:
        odd[k] = flat[offset: offset + sd[k].numel()]
        offset += sd[k].numel()
    assert not odd[CONF].is_contiguous()
    assert not odd["fpn.pred_layers.0.weight"].is_contiguous()
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(odd, path)
    model = load_official(path)
    assert_holds_exactly(model, sd)
    assert model.prediction_layers[0].conf_layer.weight.is_contiguous()  # the model's own layout


def test_half_precision_checkpoint_loads_as_float32(tmp_path):
    sd = sd_of("yolact_resnet50")
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(half, path)
    model = load_official(path)
    got = model.state_dict()
    for key, value in half.items():
        assert got[key].dtype == sd[key].dtype, key
        assert torch.equal(got[key], value.to(sd[key].dtype)), key


def test_meta_skeletons_do_not_leak_into_the_model():
    # The guessing in error messages builds models on the meta device; a later load must
    # still give real tensors.
    load_error(sd_of("yolact_resnet50"), config="yolact_base")
    model = load_official(sd_of("yolact_resnet50"), config="yolact_resnet50")
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert not any(is_bn_buffer(k) and v.is_meta for k, v in model.state_dict().items())
