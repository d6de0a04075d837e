"""The architecture figure is drawn from the model: its shapes are a real forward pass's."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import yolact_edu as ye  # noqa: E402
from yolact_edu.viz.architecture import draw_architecture, trace_shapes  # noqa: E402


@pytest.mark.parametrize("changes", [{}, {"num_protos": 8, "max_size": 320, "num_classes": 3}])
def test_traced_shapes_are_those_of_a_forward_pass(changes):
    cfg = ye.get_model_config("yolact_tiny").replace(**changes)
    model = ye.build_model(cfg).train()
    shapes = trace_shapes(model)
    assert model.training, "tracing must leave the model's mode as it was"
    with torch.no_grad():
        raw = model.eval()(torch.zeros(1, 3, cfg.max_size, cfg.max_size))
    assert shapes.proto == tuple(raw["proto"].shape) and shapes.num_protos == cfg.num_protos
    assert shapes.coef == tuple(raw["coef"].shape) and shapes.conf == tuple(raw["conf"].shape)
    assert sum(loc[1] for loc, _, _ in shapes.head) == raw["loc"].shape[1]
    assert shapes.fpn[0][-1] == cfg.max_size // 8 and len(shapes.backbone) == len(cfg.selected_layers)


def test_the_figure_prints_the_traced_shapes():
    cfg = ye.get_model_config("yolact_tiny").replace(num_protos=8, max_size=320, num_classes=3)
    shapes = trace_shapes(ye.build_model(cfg))
    ax = draw_architecture(shapes, num_detections=5)
    text = "\n".join(t.get_text() for t in ax.texts) + ax.get_title()
    assert "prototypes P [80,80,8]" in text
    assert f"coef [{shapes.coef[1]},8]" in text and "conf" in text and f"[{shapes.conf[1]},4]" in text
    assert "-> [5,80,80]" in text and "320x320 input" in text
    plt.close(ax.figure)
