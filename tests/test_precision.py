"""bf16 runs only where the CPU computes it (issue 29): on a CPU that would emulate it, every way of
asking for it -- the fast path, predict's autocast, the Trainer and each command -- is refused in one
line before anything is written; "auto" picks fp32 there. These tests run on every CPU: the CPU's
features are replaced by those of the two kinds the project runs on."""
import numpy as np
import pytest
import torch

from yolact_edu.bench import cpu
from yolact_edu.bench.cpu import CpuFeatures, parse_cpuinfo, refuse_emulated_bf16
from yolact_edu.build import build_model
from yolact_edu.cli.main import main
from yolact_edu.config import get_config
from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.model.fast_path import autocast_reason, resolve_autocast
from yolact_edu.training.trainer import Trainer

XEON = CpuFeatures("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
                   frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"}))
EPYC_BF16 = CpuFeatures("AMD EPYC 9R14", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
FAMILY_MODELS = ["yolact_tiny", "maskrcnn_tiny", "condinst_tiny", "solov2_tiny", "blendmask_tiny", "centermask_tiny"]


@pytest.fixture
def without_bf16(monkeypatch):
    """This process's CPU, as far as the package can tell, is the Xeon without native bf16."""
    monkeypatch.setattr(cpu, "this_cpu", lambda: XEON)
    monkeypatch.delenv(cpu.EMULATED_BF16_VARIABLE, raising=False)
    return XEON


@pytest.fixture
def with_bf16(monkeypatch):
    monkeypatch.setattr(cpu, "this_cpu", lambda: EPYC_BF16)
    return EPYC_BF16


def test_cpuinfo_is_read_for_x86_and_arm():
    one = "model name\t: Intel(R) Xeon(R) Gold\nflags\t\t: fpu avx2 avx512f avx512_vnni\n"
    x86 = parse_cpuinfo(f"processor\t: 0\n{one}processor\t: 1\n{one}")
    assert x86.model == "Intel(R) Xeon(R) Gold" and x86.simd == "AVX-512"
    assert x86.vnni and not x86.native_bf16
    assert x86.describe() == "Intel(R) Xeon(R) Gold (AVX-512; native bf16: no; VNNI: yes (avx512_vnni))"
    assert parse_cpuinfo("flags : fpu amx_bf16 amx_tile\n").native_bf16
    assert parse_cpuinfo("flags : fpu avx512f avx512_bf16\n").native_bf16
    zen3 = parse_cpuinfo("model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma\n")
    assert zen3.simd == "AVX2" and not zen3.native_bf16 and not zen3.vnni
    arm = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU implementer\t: 0x41\n")
    assert arm.native_bf16 and arm.simd == "Arm ASIMD" and arm.model        # no model name line: named anyway
    assert cpu.cpu_has_native_bf16("flags : avx512_bf16\n") and not cpu.cpu_has_native_bf16("flags : avx2\n")


def test_the_refusal_is_one_line_naming_the_cpu(without_bf16):
    with pytest.raises(ValueError) as refused:
        refuse_emulated_bf16("cpu")
    message = str(refused.value)
    assert "\n" not in message and XEON.model in message and "avx512_bf16" in message and "fp32" in message
    refuse_emulated_bf16("cuda")                  # a GPU computes bf16 itself: nothing to refuse
    refuse_emulated_bf16(torch.device("cuda", 1))


def test_auto_picks_fp32_and_bf16_is_refused_without_native_bf16(without_bf16):
    assert resolve_autocast("auto", torch.device("cpu")) is None
    assert resolve_autocast("fp32", torch.device("cpu")) is None
    assert resolve_autocast("bf16", torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="would only emulate it"):
        resolve_autocast("bf16", torch.device("cpu"))


def test_auto_says_what_it_picks_and_which_flags_decided(without_bf16, monkeypatch):
    line = autocast_reason("cpu")
    assert line.startswith("auto -> fp32") and XEON.model in line and "avx512_bf16" in line
    assert "VNNI: yes" in line and "int8 is not offered" in line and "\n" not in line
    assert autocast_reason("cuda") == "auto -> fp16: a CUDA device"
    monkeypatch.setattr(cpu, "this_cpu", lambda: EPYC_BF16)
    assert autocast_reason("cpu") == f"auto -> bf16: {EPYC_BF16.model} computes bf16 in hardware"


def test_bf16_is_chosen_where_it_is_native(with_bf16):
    assert resolve_autocast("auto", torch.device("cpu")) == "bf16"
    assert resolve_autocast("bf16", torch.device("cpu")) == "bf16"
    refuse_emulated_bf16("cpu")


def test_emulated_bf16_can_be_asked_for_to_measure_it(without_bf16, monkeypatch):
    monkeypatch.setenv(cpu.EMULATED_BF16_VARIABLE, "1")
    with pytest.warns(UserWarning, match="emulated"):
        assert resolve_autocast("bf16", torch.device("cpu")) == "bf16"
    monkeypatch.setenv(cpu.EMULATED_BF16_VARIABLE, "yes")      # only "1" opts in
    with pytest.raises(ValueError):
        resolve_autocast("bf16", torch.device("cpu"))


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_every_family_refuses_emulated_bf16_the_same_way(name, without_bf16):
    torch.manual_seed(0)
    model = build_model(name).eval()
    image = np.full((64, 80, 3), 90, np.uint8)
    with pytest.raises(ValueError, match="would only emulate it"):
        model.optimize(autocast="bf16")
    with pytest.raises(ValueError, match="would only emulate it"):
        model.predict(image, autocast="bf16")
    assert model.optimize().fast_path.autocast is None            # auto: fp32 on this CPU
    assert model.training is False


def test_the_trainer_refuses_before_writing_anything(without_bf16, tmp_path):
    root = make_shapes(tmp_path / "shapes", num_train=2, num_val=1, seed=5, progress=False)
    data = CocoDataset(root["train_annotations"], root["train_images"], max_size=64)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="would only emulate it"):
        Trainer(build_model(get_config("yolact_tiny").with_classes(data.class_names)), data, out_dir=out,
                amp="bf16", device="cpu", progress=False)
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["predict", "--autocast", "bf16"],
    ["predict", "--fast", "--autocast", "bf16"],
    ["video", "SOURCE", "--autocast", "bf16", "--max-frames", "1"],
    ["bench", "speed", "--autocast", "bf16", "--configs", "yolact_tiny"],
    ["train", "--fast", "--max-iter", "1"],
    ["demo", "--fast", "--quick"],
], ids=lambda command: " ".join(command[:3]))
def test_every_command_refuses_emulated_bf16_in_one_line(command, without_bf16, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"not read: the refusal comes first")
    command = [str(source) if part == "SOURCE" else part for part in command]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*command, "--device", "cpu", "--output", str(tmp_path / "out")]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: bf16 needs a CPU") and XEON.model in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == before       # nothing written: no output, no data
