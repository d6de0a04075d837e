"""CUDA inference (skipped on machines without a GPU, such as CI)."""
import numpy as np
import pytest
import torch

import yolact_edu as ye
from conftest import spread_scores

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


def test_cuda_training_with_amp_learns_and_resumes(tmp_path):
    """AMP training on CUDA: fp16 forward, fp32 loss, a gradient scaler; checkpoints carry the scaler."""
    from yolact_edu.data import CocoDataset, make_shapes
    from yolact_edu.training.checkpoint import read_checkpoint
    from yolact_edu.training.trainer import Trainer, read_log

    shapes = make_shapes(tmp_path / "shapes", num_train=4, num_val=1, seed=2, min_size=128, max_size=160)
    data = CocoDataset(shapes["train_annotations"], shapes["train_images"], max_size=160, verbose=False)
    cfg = ye.get_config("yolact_tiny").replace(num_classes=6, class_names=data.class_names, max_size=160)
    torch.manual_seed(0)
    trainer = Trainer(ye.Yolact(cfg), data, out_dir=tmp_path / "run", batch_size=4, max_iter=60,
                      device="cuda", freeze_bn=False, log_every=10, progress=False)
    assert trainer.use_amp
    summary = trainer.run()
    log = read_log(tmp_path / "run" / "log.csv")
    assert log["total"][-1] < log["total"][0]
    checkpoint = read_checkpoint(summary["checkpoint"])
    assert checkpoint["scaler"]["scale"] > 0 and checkpoint["rng"]["cuda"]
