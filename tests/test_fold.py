"""BatchNorm folded into convolutions: the same outputs, fewer layers."""
import pytest
import torch
from torch import nn

import yolact_edu as ye
from yolact_edu.model.backbone import DarkNetBackbone, ResNetBackbone
from yolact_edu.model.fold import fold_batchnorm


def randomise_batchnorm(module: nn.Module) -> None:
    """Running statistics and affine parameters far from the defaults, so that a wrong fold shows."""
    generator = torch.Generator().manual_seed(0)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator) * 0.5)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=generator) * 0.2)


@pytest.mark.parametrize("backbone", [lambda: ResNetBackbone("resnet18", width=16),
                                      lambda: ResNetBackbone("resnet50", width=8),
                                      lambda: DarkNetBackbone((1, 1, 1, 1, 1))])
def test_folded_backbones_give_the_same_features_without_batchnorm(backbone):
    torch.manual_seed(0)
    net = backbone()
    randomise_batchnorm(net)
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        count = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
        assert fold_batchnorm(net) == count > 0
        after = net(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    for a, b in zip(before, after):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


def test_a_whole_yolact_folds_and_detects_the_same():
    torch.manual_seed(0)
    model = ye.build_model(ye.get_config("yolact_tiny").replace(max_size=128))
    randomise_batchnorm(model)
    model.eval()
    image = (torch.rand(100, 120, 3) * 255).to(torch.uint8).numpy()
    before = model.predict(image, score_threshold=0.0, conf_threshold=0.0, top_k=20)
    assert fold_batchnorm(model) > 0
    after = model.predict(image, score_threshold=0.0, conf_threshold=0.0, top_k=20)
    assert torch.equal(before.labels, after.labels)
    assert torch.allclose(before.boxes, after.boxes, atol=1.0)


def test_folding_refuses_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(ResNetBackbone("resnet18", width=8))
