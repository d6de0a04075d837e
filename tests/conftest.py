import numpy as np
import pytest
import torch

import yolact_edu as ye


def spread_scores(model: ye.Yolact, gain: float = 20.0) -> ye.Yolact:
    """Scale the class head so an untrained model gives clearly separated scores
    (a fresh head is almost flat at 1/(C+1), which makes orderings tie-prone)."""
    with torch.no_grad():
        model.prediction_layers[0].conf_layer.weight.mul_(gain)
    return model


@pytest.fixture(scope="session")
def tiny_model():
    torch.manual_seed(0)
    return spread_scores(ye.Yolact(ye.get_config("yolact_tiny"))).eval()


@pytest.fixture(scope="session")
def images():
    rng = np.random.RandomState(0)
    a = (rng.rand(240, 320, 3) * 255).astype(np.uint8)
    b = (rng.rand(300, 200, 3) * 255).astype(np.uint8)
    return a, b
