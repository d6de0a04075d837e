"""Fixed inputs and comparison helpers for the golden outputs of the ORIGINAL implementation.

tests/golden/<config>.npz hold numbers computed once by the original YOLACT code (dbolya/yolact),
run outside this repository on the CPU, from exactly the inputs this module makes:

    image = golden_image()                       # 120x160x3 uint8 RGB, from a seed
    state = golden_state_dict("yolact_base")     # random weights with the original's keys
    model = golden_model("yolact_base")          # yolact_edu model with those weights, eval mode

Every test that checks yolact_edu (eager, an optimised path, an exported model) against them
uses the same helpers::

    golden = load_golden("yolact_base")
    raw = model(model.preprocess(image))                 # or the arrays of an ONNX session
    compare_raw(raw, golden)                             # raises AssertionError with details
    compare_detections(model.detect(raw, image.shape[:2], score_threshold=0)[0], golden)

Both return the differences they measured (dicts), for reports.

The golden files were made by a harness kept outside the repository, because none of the
original's code may enter it (in the workspace where they were made:
outputs/issue16/golden_harness/, git-ignored; its README.md gives the patches applied to the
original for a CPU run and the command that regenerates the files). Each file's "meta" names the
original's commit, the torch version, the seeds and checksums of the inputs, and the margins
that show how far the detections are from decisions a rounding difference could flip.
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

GOLDEN_DIR = Path(__file__).with_name("golden")
GOLDEN_CONFIGS = ("yolact_base", "yolact_resnet50", "yolact_darknet53", "yolact_plus_resnet50")
IMAGE_SEED = 16
WEIGHT_SEED = 0

# Raw outputs whose values the golden files keep at a subsample of priors (name in the file,
# number of columns is the array's): box regressions, class probabilities, mask coefficients.
RAW_FIELDS = ("loc", "softmax_conf", "coef")


# -- inputs ------------------------------------------------------------------------------------
def golden_image(height: int = 120, width: int = 160, seed: int = IMAGE_SEED) -> np.ndarray:
    """A fixed HxWx3 uint8 RGB image: a colour gradient, a few filled ellipses and rectangles,
    plus noise. ``np.random.RandomState`` (a frozen bit stream) makes it the same everywhere."""
    rng = np.random.RandomState(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.empty((height, width, 3))
    for c in range(3):
        a, b, d = rng.uniform(-1, 1, 3)
        image[..., c] = 128 + 60 * (a * ys / height + b * xs / width) + 20 * np.sin(d * 6 * xs / width)
    for _ in range(6):
        colour = rng.uniform(0, 255, 3)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.08, 0.3) * height, rng.uniform(0.08, 0.3) * width
        if rng.rand() < 0.5:
            inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
        else:
            inside = (np.abs(ys - cy) <= ry) & (np.abs(xs - cx) <= rx)
        image[inside] = colour
    image += rng.normal(0, 8, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _bn_prefixes(keys) -> set[str]:
    return {k[: -len(".running_var")] for k in keys if k.endswith(".running_var")}


def _residual_end(prefix: str) -> bool:
    """BatchNorms that end a residual branch (ResNet ``bn3``; DarkNet's second conv of a residual
    block): small gains keep the stream from growing over the 23 blocks of ResNet-101's stage 4
    and DarkNet's 8-block stages."""
    return prefix.endswith(".bn3") or (prefix.startswith("backbone.layers.") and prefix.endswith(".conv2.1"))


def _darknet_stage_entry(prefix: str) -> bool:
    """DarkNet's stride-2 conv that opens each stage (``layers.N.0``): the whole stream passes it."""
    parts = prefix.split(".")
    return len(parts) == 5 and parts[:2] == ["backbone", "layers"] and parts[3:] == ["0", "1"]


# Gain (std x sqrt(fan_in)) of a conv's weights, by key prefix or suffix (the first entry that
# matches wins); the other convs get He's sqrt(2).
_CONV_GAINS = {
    "fpn.downsample_layers.": 2.0,                        # strong P6/P7: large boxes among the detections
    "fpn.": 1.0,                                          # FPN convs see no ReLU'd input (but P5)
    "proto_net.10.weight": 3.0,                           # prototypes and their linear combinations
    "conv_offset_mask.weight": 0.8,                       # DCN: offsets of about 1 px, masks 0.2..0.8
    "prediction_layers.0.bbox_layer.weight": 1.5,         # box regressions of about +-1
    "prediction_layers.0.conf_layer.weight": 4.5,         # class logits spread over a few units
    "prediction_layers.0.mask_layer.weight": 1.0,         # coefficients mostly inside tanh's range
}


def _random_tensor(key: str, shape: tuple[int, ...], bn_prefixes: set[str], seed: int) -> torch.Tensor:
    # One generator per key (seeded from the key's CRC32), so a tensor's values depend on its key
    # and shape only, not on the order or number of the other keys.
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    prefix, leaf = key.rsplit(".", 1)

    def normal(std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=gen, dtype=torch.float32) * (high - low) + low

    if leaf == "num_batches_tracked":
        return torch.tensor(800_000 + zlib.crc32(key.encode()) % 1000, dtype=torch.int64)
    if prefix in bn_prefixes:
        if leaf == "running_var":
            return uniform(0.5, 1.5)
        if leaf == "running_mean":
            return normal(0.1)
        if leaf == "weight":                               # BN gain
            if _residual_end(prefix):
                return uniform(0.1, 0.2)
            if prefix.endswith(".downsample.1"):           # ResNet's projection shortcut
                return uniform(0.2, 0.4)
            if _darknet_stage_entry(prefix):
                return uniform(0.35, 0.6)
            return uniform(0.7, 1.2)
        return normal(0.1)                                 # BN bias
    if leaf == "weight" and len(shape) == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        gain = next((g for part, g in _CONV_GAINS.items() if key.endswith(part) or key.startswith(part)), 2 ** 0.5)
        return normal(gain / fan_in ** 0.5)
    if leaf == "bias" and key.endswith("conv_offset_mask.bias"):
        return normal(0.5)
    if key == "proto_net.10.bias":
        return normal(0.3, mean=-1.0)                      # sparse prototypes: masks with a shape
    if key == "prediction_layers.0.mask_layer.bias":
        return normal(1.0)                                 # coefficients set mostly by the anchor shape
    if key == "prediction_layers.0.bbox_layer.bias":
        return normal(0.5)
    if leaf == "bias":
        return normal(0.1)
    raise ValueError(f"no rule for golden weight {key!r} of shape {shape}")


def random_weights_like(template: Mapping[str, torch.Tensor], seed: int = WEIGHT_SEED) -> dict[str, torch.Tensor]:
    """Random CPU tensors with ``template``'s keys (in its order), shapes and dtypes (see
    :func:`golden_state_dict`)."""
    bn = _bn_prefixes(template)
    out = {}
    for key, value in template.items():
        tensor = _random_tensor(key, tuple(value.shape), bn, seed)
        if tensor.dtype != value.dtype:
            raise ValueError(f"golden weight {key!r}: made {tensor.dtype}, the model has {value.dtype}")
        out[key] = tensor
    return out


def golden_state_dict(config_name: str, seed: int = WEIGHT_SEED) -> dict[str, torch.Tensor]:
    """Random weights for ``yolact_edu.build_model(config_name)``, whose state-dict keys are the
    original's checkpoint keys (same keys and shapes for the golden configs; the original lists
    ResNet's ``conv1``/``bn1`` after ``layers``, which does not matter here).

    Every tensor is random: BatchNorm statistics included (running variances in [0.5, 1.5]),
    DCN offset/mask convs non-zero (offsets of about a pixel, so the deformable path matters).
    Convs are He-scaled and the BatchNorms that end residual branches get small gains, so that
    features neither vanish nor explode through ResNet-101 or DarkNet-53; the FPN's P6/P7 and
    the head are scaled so that with the default seed every golden config gives 100 detections
    with well separated scores below 1, of many classes, small and large boxes, non-empty masks.

    Deterministic across machines: one CPU ``torch.Generator`` per key, seeded from ``seed`` and
    the key. Changing a rule or the seed invalidates tests/golden/ (the golden test notices it
    through the weights checksum)."""
    import yolact_edu as ye

    return random_weights_like(ye.build_model(config_name).state_dict(), seed)


def golden_model(config_name: str, seed: int = WEIGHT_SEED) -> torch.nn.Module:
    """``yolact_edu.build_model(config_name)`` loaded with :func:`golden_state_dict`, eval mode, CPU."""
    import yolact_edu as ye

    model = ye.build_model(config_name)
    model.load_state_dict(random_weights_like(model.state_dict(), seed))
    return model.eval()


def weights_checksum(state: Mapping[str, torch.Tensor]) -> float:
    """A float64 fingerprint of a state dict's keys and values, independent of the key order (so a
    test can tell "the weights changed" -- e.g. a new torch random-number algorithm -- from "the
    model computes something else"). Coarse on purpose: it sees wholesale changes (another rule,
    seed or generator) but not one element off by 1e-3, which the output comparisons do see; and
    last-bit differences of the random numbers between CPUs stay far inside ``rel=1e-9``."""
    total = 0.0
    for key, value in state.items():
        total += (zlib.crc32(key.encode()) % 997 + 1) * float(value.double().abs().sum())
    return total


def image_checksum(image: np.ndarray) -> int:
    return int(zlib.crc32(np.ascontiguousarray(image).tobytes()))


# -- golden files --------------------------------------------------------------------------------
def load_golden(config_name: str, directory: Path | str = GOLDEN_DIR) -> dict:
    """The arrays of ``<directory>/<config_name>.npz``, with ``meta`` decoded to a dict
    (config, the original's commit, torch version, image shape, seeds, checksums, margins...)."""
    with np.load(Path(directory) / f"{config_name}.npz") as data:
        golden = {name: data[name] for name in data.files}
    golden["meta"] = json.loads(str(golden["meta"]))
    return golden


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def raw_to_arrays(raw: Mapping, batch_index: int = 0) -> dict[str, np.ndarray]:
    """yolact_edu's raw outputs for one image as the golden files hold them.

    raw: ``Yolact.forward``'s dict, as torch tensors or numpy arrays (e.g. from an ONNX session),
    with or without the batch dimension: "loc" [B,P,4], "conf" [B,P,C+1] logits (or
    "softmax_conf", probabilities), "coef" [B,P,k], "proto" [B,Hp,Wp,k], "priors" [P,4].
    Returns float32 arrays loc, softmax_conf, coef, proto, priors without the batch dimension;
    the softmax is taken in float32 over the last axis, as the original does."""
    def one(name, batched_ndim):
        value = raw[name]
        if value.ndim == batched_ndim:
            value = value[batch_index]
        return _numpy(value).astype(np.float32)

    out = {"loc": one("loc", 3), "coef": one("coef", 3), "proto": one("proto", 4),
           "priors": _numpy(raw["priors"]).astype(np.float32)}
    if "softmax_conf" in raw:
        out["softmax_conf"] = one("softmax_conf", 3)
    else:
        out["softmax_conf"] = torch.softmax(torch.from_numpy(one("conf", 3)), dim=-1).numpy()
    return out


def _check(failures: list, name: str, measured: float, limit: float, detail: str) -> None:
    if not measured <= limit:            # also catches NaN
        failures.append(f"{name}: {detail} (limit {limit:.3g})")


def compare_input(x, golden: Mapping, atol: float = 1e-4) -> float:
    """Compare the preprocessed network input (``model.preprocess(golden_image())``, [1,3,S,S] or
    [3,S,S]) with the original's FastBaseTransform output at the saved pixels. Returns the max
    absolute difference; raises AssertionError beyond ``atol``."""
    x = _numpy(x).astype(np.float32)
    if x.ndim == 4:
        x = x[0]
    index = golden["input_index"]
    if x.shape[-1] <= index[-1]:
        raise AssertionError(f"input is {x.shape[-2]}x{x.shape[-1]}, the golden one at least {index[-1] + 1} wide")
    diff = float(np.abs(x[:, index][:, :, index] - golden["input"]).max())
    failures: list = []
    _check(failures, "input", diff, atol, f"max |diff| {diff:.3g}")
    if failures:
        raise AssertionError(f"{golden['meta']['config']}: preprocessing differs from the original's: {failures[0]}")
    return diff


def compare_raw(raw: Mapping, golden: Mapping, rtol: float = 1e-4, batch_index: int = 0) -> dict[str, float]:
    """Compare raw outputs (see :func:`raw_to_arrays`) with the original's.

    Checks the number of priors and the proto shape; loc, softmax_conf, coef and priors at the
    saved prior indices and proto at the saved rows/columns, each to ``rtol`` x (largest golden
    magnitude of that array); and the float64 column sums of the full arrays to ``rtol`` x (the
    column's sum of magnitudes, at least a thousandth of the largest column's). Returns {name: max
    difference / its scale}; raises AssertionError listing every check beyond ``rtol``."""
    config = golden["meta"]["config"]
    arrays = raw_to_arrays(raw, batch_index)
    num_priors = golden["meta"]["num_priors"]
    shapes = {name: arrays[name].shape for name in arrays}
    if shapes["loc"][0] != num_priors or shapes["softmax_conf"][0] != num_priors or shapes["coef"][0] != num_priors:
        raise AssertionError(f"{config}: {shapes} but the original has {num_priors} priors")
    if tuple(shapes["proto"]) != tuple(golden["proto_shape"]):
        raise AssertionError(f"{config}: proto {shapes['proto']}, the original's {tuple(golden['proto_shape'])}")
    failures: list = []
    measured: dict[str, float] = {}
    index = golden["prior_index"]
    proto_index = golden["proto_index"]
    samples = {name: arrays[name][index] for name in (*RAW_FIELDS, "priors")}
    samples["proto"] = arrays["proto"][proto_index][:, proto_index]
    for name, ours in samples.items():
        reference = golden[name]
        if ours.shape != reference.shape:
            raise AssertionError(f"{config}: {name} sample {ours.shape}, the golden one {reference.shape}")
        diff = np.abs(ours.astype(np.float64) - reference)
        scale = max(float(np.abs(reference).max()), 1e-12)
        worst = np.unravel_index(int(np.nanargmax(diff)) if np.isfinite(diff).any() else 0, diff.shape)
        measured[name] = float(diff.max()) / scale
        _check(failures, name, measured[name], rtol,
               f"max |diff| {float(diff.max()):.3g} = {measured[name]:.3g} x scale {scale:.3g}, at sample {worst}: "
               f"ours {float(ours[worst]):.7g}, original {float(reference[worst]):.7g}")
    for name in (*RAW_FIELDS, "priors", "proto"):
        full = arrays[name].astype(np.float64).reshape(-1, arrays[name].shape[-1])
        diff = np.abs(full.sum(0) - golden[name + "_colsum"])
        # each column against its own sum of magnitudes, but a nearly dead column (a prototype that
        # is almost all zeros) against a thousandth of the largest column's: its own sum is below
        # what summing ~20k float32 values can resolve after any change of rounding (BatchNorm folded)
        colabs = golden[name + "_colabs"]
        ratio = diff / np.maximum(colabs, max(1e-3 * float(colabs.max()), 1e-12))
        column = int(np.nanargmax(ratio)) if np.isfinite(ratio).any() else 0
        measured[name + "_colsum"] = float(ratio.max())
        _check(failures, name + "_colsum", measured[name + "_colsum"], rtol,
               f"column {column}: sum {float(full[:, column].sum()):.9g}, original "
               f"{float(golden[name + '_colsum'][column]):.9g} (sum of magnitudes "
               f"{float(golden[name + '_colabs'][column]):.6g})")
    if failures:
        raise AssertionError(f"{config}: raw outputs differ from the original's:\n  " + "\n  ".join(failures))
    return measured


def _detection_arrays(dets) -> dict:
    values = dets.numpy() if hasattr(dets, "numpy") and not isinstance(dets, Mapping) else dict(dets)
    labels = values.get("labels", values.get("classes"))
    return {"classes": _numpy(labels).astype(np.int64), "scores": _numpy(values["scores"]).astype(np.float32),
            "boxes": _numpy(values["boxes"]), "masks": _numpy(values["masks"]).astype(bool),
            "mask_scores": None if values.get("mask_scores") is None else _numpy(values["mask_scores"])}


def golden_masks(golden: Mapping) -> np.ndarray:
    """The original's masks as bool [N,H,W]."""
    n, height, width = (int(v) for v in golden["mask_shape"])
    return np.unpackbits(golden["masks"], axis=1, count=height * width).reshape(n, height, width).astype(bool)


def _match_order(ours: dict, golden: Mapping, score_atol: float, window: int = 5):
    """Index array putting our detections in the original's order. Detection i keeps its place
    if it has the original's class; otherwise a near-tied neighbour (within ``window`` places,
    the original's class, a score within ``score_atol`` of the original's) may take it, the one
    with the closest box. Returns the first position nothing fits (an int) if there is one."""
    n = len(golden["classes"])
    boxes = np.asarray(ours["boxes"], dtype=np.float64)
    taken = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        if not taken[i] and ours["classes"][i] == golden["classes"][i]:
            k = i
        else:
            candidates = [k for k in range(max(0, i - window), min(n, i + window + 1))
                          if not taken[k] and ours["classes"][k] == golden["classes"][i]
                          and abs(float(ours["scores"][k]) - float(golden["scores"][i])) <= score_atol]
            if not candidates:
                return i
            k = min(candidates, key=lambda c: float(np.abs(boxes[c] - golden["boxes"][i]).sum()))
        taken[k] = True
        order[i] = k
    return order


def compare_detections(dets, golden: Mapping, score_atol: float = 1e-5, max_mask_pixels: int = 8,
                       boundary_px: float = 1e-4) -> dict[str, float]:
    """Compare detections of the golden image with the original's (Fast NMS, score threshold 0).

    dets: a :class:`~yolact_edu.detections.Detections`, or a mapping with "labels" (or
    "classes"), "scores", "boxes", "masks" [N,H,W] and optionally "mask_scores".
    Requires the same number of detections, the same classes in the same order (near-tied
    neighbours, scores within ``score_atol``, may swap places: "reordered" counts them), scores (and
    YOLACT++'s mask-rescored scores) within ``score_atol``, the same whole-pixel boxes -- a box
    side may be off by one only where the original's exact coordinate lies within
    ``boundary_px`` of a whole pixel -- and at most ``max_mask_pixels`` differing mask pixels
    in all. Returns the measured differences; raises AssertionError with details otherwise."""
    config = golden["meta"]["config"]
    ours = _detection_arrays(dets)
    n = len(golden["classes"])
    if len(ours["classes"]) != n:
        raise AssertionError(f"{config}: {len(ours['classes'])} detections, the original has {n} "
                             f"(scores ours {ours['scores'][-3:]}, original {golden['scores'][-3:]})")
    order = _match_order(ours, golden, score_atol)
    if isinstance(order, int):
        i = order
        window = slice(max(0, i - 2), i + 3)
        raise AssertionError(
            f"{config}: class order differs from detection {i} on: "
            f"ours {ours['classes'][window].tolist()} scores {np.round(ours['scores'][window], 7).tolist()}, "
            f"original {golden['classes'][window].tolist()} scores {np.round(golden['scores'][window], 7).tolist()}")
    ours = {key: None if value is None else value[order] for key, value in ours.items()}
    failures: list = []
    measured: dict[str, float] = {"detections": n, "reordered": int((order != np.arange(n)).sum())}
    score_diff = np.abs(ours["scores"].astype(np.float64) - golden["scores"])
    measured["scores"] = float(score_diff.max()) if n else 0.0
    if n:
        _check(failures, "scores", measured["scores"], score_atol,
               f"max |diff| {measured['scores']:.3g} at detection {int(score_diff.argmax())}")

    height, width = (int(v) for v in golden["mask_shape"][1:])
    exact = golden["boxes_rel"].astype(np.float64) * np.array([width, height, width, height])
    on_boundary = np.abs(exact - np.round(exact)) < boundary_px
    box_diff = np.abs(np.asarray(ours["boxes"], dtype=np.float64) - golden["boxes"])
    allowed = np.where(on_boundary, 1.0, 0.0)
    measured["boxes_px"] = float(box_diff.max()) if n else 0.0
    bad = np.argwhere(box_diff > allowed)
    if len(bad):
        i = int(bad[0][0])
        failures.append(f"boxes: {len(bad)} coordinates differ, first detection {i}: ours "
                        f"{np.asarray(ours['boxes'][i]).tolist()}, original {golden['boxes'][i].tolist()}")

    masks = golden_masks(golden)
    if ours["masks"].shape != masks.shape:
        raise AssertionError(f"{config}: masks {ours['masks'].shape}, the original's {masks.shape}")
    per_detection = (ours["masks"] != masks).reshape(n, -1).sum(1)
    measured["mask_pixels"] = int(per_detection.sum())
    _check(failures, "masks", measured["mask_pixels"], max_mask_pixels,
           f"{measured['mask_pixels']} pixels differ, in detections "
           f"{np.flatnonzero(per_detection).tolist()[:10]} (original areas "
           f"{masks.reshape(n, -1).sum(1)[per_detection > 0].tolist()[:10]})")

    if "mask_scores" in golden:
        if ours["mask_scores"] is None:
            failures.append("mask_scores: the original re-scores its masks (YOLACT++), ours has none")
        else:
            diff = np.abs(ours["mask_scores"].astype(np.float64) - golden["mask_scores"])
            measured["mask_scores"] = float(diff.max()) if n else 0.0
            _check(failures, "mask_scores", measured["mask_scores"], score_atol,
                   f"max |diff| {measured['mask_scores']:.3g}")
    if failures:
        raise AssertionError(f"{config}: detections differ from the original's:\n  " + "\n  ".join(failures))
    return measured
