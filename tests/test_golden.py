"""yolact_edu reproduces the ORIGINAL implementation (dbolya/yolact) on fixed inputs.

tests/golden/<config>.npz were computed once by the original's own code (model, FastBaseTransform,
Detect with Fast NMS, postprocess), run on the CPU outside this repository, from the weights and
the image that tests/golden_inputs.py makes; see that module for what the files hold and for
the comparison helpers, which other tests reuse for other inference paths.
"""
import numpy as np
import pytest
import torch
from cpu_support import needs_native_bf16
from golden_inputs import (
    GOLDEN_CONFIGS,
    GOLDEN_DIR,
    compare_detections,
    compare_input,
    compare_raw,
    golden_image,
    golden_masks,
    golden_model,
    image_checksum,
    load_golden,
    weights_checksum,
)


@pytest.fixture(scope="module")
def image():
    return golden_image()


@pytest.mark.parametrize("config_name", GOLDEN_CONFIGS)
def test_yolact_edu_reproduces_the_original(config_name, image):
    golden = load_golden(config_name)
    meta = golden["meta"]
    assert meta["config"] == config_name and list(image.shape) == meta["image_shape"]
    assert image_checksum(image) == meta["image_checksum"], (
        "golden_image() no longer makes the image the golden files were computed from")
    model = golden_model(config_name)
    assert weights_checksum(model.state_dict()) == pytest.approx(meta["weights_checksum"], rel=1e-9), (
        "the golden weights are not those the golden files were computed from: a changed rule or seed in "
        "golden_inputs, changed state-dict keys or shapes of the model, or changed torch random numbers; "
        "regenerate the files if intended (see golden_inputs)")

    with torch.no_grad():
        x = model.preprocess(image)
        raw = model(x)
    compare_input(x, golden)
    compare_raw(raw, golden)
    found = model.detect(raw, image.shape[:2], score_threshold=0.0)
    assert len(found) == 1
    compare_detections(found[0], golden)


def test_the_detection_comparison_notices_changes():
    """compare_detections accepts the original's own detections and refuses altered ones
    (cheap: no model; the model tests above fail when one weight is changed)."""
    golden = load_golden("yolact_plus_resnet50")
    original = {"classes": golden["classes"], "scores": golden["scores"], "boxes": golden["boxes"],
                "masks": golden_masks(golden), "mask_scores": golden["mask_scores"]}
    assert compare_detections(original, golden)["mask_pixels"] == 0

    def altered(**changes):
        return {**original, **changes}

    # two neighbours of other classes whose scores are far apart: swapping their classes is an error
    i = next(i for i in range(99) if original["classes"][i] != original["classes"][i + 1]
             and original["scores"][i] - original["scores"][i + 1] > 1e-4)
    swapped = original["classes"].copy()
    swapped[[i, i + 1]] = swapped[[i + 1, i]]
    shifted = original["boxes"].copy()
    shifted[7, 2] += 1
    flipped = original["masks"].copy()
    flipped[0, :3, :3] = ~flipped[0, :3, :3]
    # near-tied neighbours (here: within a looser score_atol) may come in either order
    j = next(j for j in range(99) if original["classes"][j] != original["classes"][j + 1]
             and original["scores"][j] - original["scores"][j + 1] < 1e-3)
    tie_swapped = {key: value[np.r_[:j, j + 1, j, j + 2:100]] for key, value in original.items()}
    assert compare_detections(tie_swapped, golden, score_atol=1e-3)["reordered"] == 2

    for bad, message in ((altered(classes=swapped), "class order"),
                         (altered(scores=original["scores"] + 2e-5), "scores"),
                         (altered(boxes=shifted), "boxes"),
                         (altered(masks=flipped), "9 pixels differ"),
                         (altered(mask_scores=original["mask_scores"] * 1.001), "mask_scores"),
                         (altered(mask_scores=None), "mask_scores"),
                         ({key: value[:-1] for key, value in original.items()}, "99 detections")):
        with pytest.raises(AssertionError, match=message):
            compare_detections(bad, golden)


def test_the_golden_files_are_small_and_complete():
    sizes = {path.name: path.stat().st_size for path in GOLDEN_DIR.glob("*.npz")}
    assert sorted(sizes) == sorted(f"{name}.npz" for name in GOLDEN_CONFIGS)
    assert sum(sizes.values()) < 2_000_000, sizes
    for config_name in GOLDEN_CONFIGS:
        golden = load_golden(config_name)
        meta = golden["meta"]
        assert meta["original"] == "dbolya/yolact" and len(meta["original_commit"]) == 40
        assert len(golden["classes"]) == len(golden["scores"]) == len(golden["boxes"]) == meta["num_detections"]
        assert np.all(np.diff(golden["scores"]) <= 0), "the original returns detections sorted by score"
        assert golden_masks(golden).any(axis=(1, 2)).sum() >= 10, "too few non-empty masks to test masks"
        assert ("mask_scores" in golden) == config_name.startswith("yolact_plus")


@pytest.mark.parametrize("config_name", GOLDEN_CONFIGS)
def test_the_fast_path_reproduces_the_original(config_name, image):
    """model.optimize() in fp32: BatchNorm folded, channels-last, batched post-processing and
    box-window upsampling give the original's numbers too."""
    fast = golden_model(config_name).optimize(autocast="fp32")
    golden = load_golden(config_name)
    x = fast.preprocess(image)
    raw = fast.network(x)
    compare_raw(raw, golden)
    compare_detections(fast.detect(raw, image.shape[:2], score_threshold=0.0)[0], golden)


@needs_native_bf16
def test_the_bf16_fast_path_stays_near_the_original(image):
    """bf16 keeps 8 bits of mantissa: the raw outputs stay within 3% of the original's scale, value
    by value and in the column sums of loc, class scores and coefficients. (The prototypes' column
    sums, sums of ~20k non-negative values each, drift by up to 20% on these random weights, and
    random weights put many detections within 1e-3 of each other, so detection-level checks of bf16
    use the trained model: tests/test_fast_path.py.)"""
    fast = golden_model("yolact_resnet50").optimize(autocast="bf16")
    raw = {name: value.float() for name, value in fast.network(fast.preprocess(image)).items()}
    assert fast.fast_path.autocast == "bf16"
    checked = ("loc", "softmax_conf", "coef", "proto", "priors", "loc_colsum", "softmax_conf_colsum", "coef_colsum")
    measured = compare_raw(raw, load_golden("yolact_resnet50"), rtol=1.0)
    assert all(measured[name] < 0.03 for name in checked), measured
    assert max(measured.values()) > 1e-4        # bf16 did run: fp32 rounding stays far below this
    other = compare_raw(raw, load_golden("yolact_base"), rtol=np.inf)
    assert any(other[name] > 0.03 for name in checked), other   # 3% still tells two models apart


@pytest.mark.parametrize("config_name", ["yolact_resnet50", "yolact_darknet53"])
def test_the_onnx_model_reproduces_the_original(config_name, image, tmp_path):
    from yolact_edu.deploy.onnx import OnnxYolact, export_onnx

    runtime = OnnxYolact(export_onnx(golden_model(config_name), tmp_path / f"{config_name}.onnx"))
    golden = load_golden(config_name)
    compare_raw(runtime.raw(runtime.preprocess(image)), golden)
    compare_detections(runtime.predict(image, score_threshold=0.0), golden)
