"""Notebook 02 §3's experiment: each model's best prototype per role, and sentences that follow
the numbers whichever model turns out stronger."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from yolact_edu.lessons import prototype_roles as roles  # noqa: E402
from yolact_edu.lessons.prototypes import average_properties  # noqa: E402


def properties(x, edges, foreground, classes):
    """Averaged r [k=4] per property, with the given best values placed on distinct prototypes."""
    found = {"x in box": np.array([0.05, x, 0.0, -0.1], np.float32),
             "y in box": np.array([0.1, 0.0, -0.12, 0.0], np.float32),
             "edges": np.array([0.0, 0.0, edges, 0.1], np.float32),
             "foreground": np.array([foreground, 0.2, 0.0, 0.0], np.float32)}
    for name, r in classes.items():
        found[f"class {name}"] = np.array([0.0, 0.0, 0.0, r], np.float32)
    return found


def test_role_strengths_take_the_largest_magnitude_and_the_best_class():
    found = roles.role_strengths(properties(-0.45, 0.2, 0.7, {"star": 0.3, "ring": -0.6}))
    assert found["x in box"] == (1, pytest.approx(-0.45), "x in box")
    assert found["y in box"] == (2, pytest.approx(-0.12), "y in box")
    assert found["a class"] == (3, pytest.approx(-0.6), "class ring")
    table = roles.role_table({"shapes": properties(0.1, 0.2, 0.7, {"star": 0.8}),
                              "crowded": properties(0.5, 0.4, 0.6, {"star": 0.3})})
    assert "| x in box | P1: r = +0.10 | P1: r = +0.50 |" in table
    assert "| a class | P3: r = +0.80 (star) | P3: r = +0.30 (star) |" in table


@pytest.mark.parametrize("flip", [False, True])
def test_the_comparison_says_which_model_is_stronger_whichever_it_is(flip):
    shapes, crowded = properties(0.14, 0.2, 0.7, {"star": 0.8}), properties(0.5, 0.22, 0.68, {"star": 0.3})
    compared = {"crowded": crowded, "shapes": shapes} if flip else {"shapes": shapes, "crowded": crowded}
    text = roles.describe_role_comparison(compared)
    assert "**x in box**: crowded's best prototype follows it more closely: |r| = 0.50 against 0.14 for shapes" in text
    assert "**a class**: shapes's best prototype follows it more closely: |r| = 0.80 against 0.30" in text
    assert "**foreground**: about as closely in both" in text
    assert "**y in box**: neither model has a prototype that follows it" in text
    assert "**edges**: neither model" in text                    # 0.20 and 0.22, both below 0.3
    assert "shapes's strongest role is **a class**" in text and "crowded's strongest role is **foreground**" in text
    with pytest.raises(ValueError, match="compares two models"):
        roles.describe_role_comparison({"one": shapes})


def test_compare_roles_measures_each_model_on_the_same_images():
    seen = []

    class Dataset:
        class_names = ("a", "b")

        def load_image(self, index):
            seen.append(index)
            return np.zeros((16, 16, 3), np.uint8)

        def load_target(self, index):
            masks = np.zeros((1, 16, 16), np.uint8)
            masks[0, 2:14, 2:14] = 1
            return {"masks": torch.from_numpy(masks), "labels": torch.tensor([0])}

    class Model(torch.nn.Module):
        def __init__(self, proto):
            super().__init__()
            self.proto = proto

        def preprocess(self, image):
            return torch.zeros(1)

        def forward(self, _):
            return {"proto": self.proto[None]}

    ramp = torch.arange(16.0).repeat(16, 1)[..., None]              # bright on the right: "x in box"
    models = {"ramp": Model(torch.cat([ramp, torch.rand(16, 16, 1)], -1)),
              "noise": Model(torch.rand(16, 16, 2, generator=torch.Generator().manual_seed(0)))}
    compared = roles.compare_roles(models, Dataset(), range(2))
    assert seen == [0, 1, 0, 1]
    assert roles.role_strengths(compared["ramp"])["x in box"][:2] == (0, pytest.approx(1.0, abs=1e-5))
    assert abs(roles.role_strengths(compared["noise"])["x in box"][1]) < 0.9
    for key, values in average_properties(models["noise"], Dataset(), range(2)).items():
        assert np.allclose(compared["noise"][key], values)
    fig = roles.draw_role_comparison(compared, {k: m.proto for k, m in models.items()}, np.zeros((16, 16, 3), np.uint8))
    assert len(fig.axes) == 2 * (len(roles.ROLES) + 1) + 1
    assert fig.axes[1].get_title().startswith("x in box: P0, r = +1.00")
