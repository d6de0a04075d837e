"""CUDA inference (skipped on machines without a GPU, such as CI)."""
import numpy as np
import pytest
import torch
from conftest import spread_scores

import yolact_edu as ye

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("name", ["yolact_resnet50", "yolact_plus_resnet50"])
def test_cuda_matches_cpu(name):
    torch.manual_seed(0)
    model = spread_scores(ye.Yolact(name)).eval()
    image = (np.random.RandomState(0).rand(360, 480, 3) * 255).astype(np.uint8)
    cpu = model.predict(image)
    gpu = model.cuda().predict(image).cpu()
    assert len(cpu) == len(gpu) > 0
    assert torch.equal(cpu.labels[:20], gpu.labels[:20])
    assert torch.allclose(cpu.scores, gpu.scores, atol=1e-4)
    assert torch.allclose(cpu.boxes_rel[:20], gpu.boxes_rel[:20], atol=1e-3)
    assert (cpu.boxes[:20] - gpu.boxes[:20]).abs().max() <= 1   # whole pixels, truncated


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_autocast(precision):
    torch.manual_seed(0)
    model = spread_scores(ye.Yolact("yolact_base")).eval().cuda()
    image = (np.random.RandomState(1).rand(400, 400, 3) * 255).astype(np.uint8)
    full = model.predict(image)
    mixed = model.predict(image, autocast=precision)
    assert mixed.boxes.dtype == torch.float32 and len(mixed) > 0
    assert torch.allclose(full.scores[:10], mixed.scores[:10], atol=0.05)
