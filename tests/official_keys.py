"""Key -> shape maps of the ORIGINAL (dbolya/yolact) checkpoints, built from the
reference description (shared/reference/yolact_reference.md §1.2, §1.8, §6) and
nothing else: this module never imports yolact_edu's model code, so the tests
that compare our loader against it check two independent descriptions.

    official_shapes("yolact_base")      # {"backbone.conv1.weight": (64, 3, 7, 7), ...}
    make_state_dict("yolact_base", 0)   # same keys, random CPU tensors

The order of the top-level parts follows the original ``state_dict``: backbone, proto_net,
(maskiou_net), fpn, prediction_layers.0, semantic_seg_conv. Inside a ResNet backbone the stem
(conv1, bn1) comes first here, where the original registers ``layers`` before it; loading goes by
key, so the order does not matter there.
"""

from __future__ import annotations

import torch

NUM_CLASSES = 80  # COCO foreground classes; the conf layer adds background
NUM_PROTOS = 32
FPN = 256

# name -> (backbone, ResNet blocks per stage or None, dcn_layers, dcn_interval, anchors per cell)
_CONFIGS: dict[str, tuple[str, tuple[int, ...] | None, tuple[int, ...], int, int]] = {
    "yolact_base": ("resnet", (3, 4, 23, 3), (0, 0, 0, 0), 1, 3),
    "yolact_im400": ("resnet", (3, 4, 23, 3), (0, 0, 0, 0), 1, 3),
    "yolact_im700": ("resnet", (3, 4, 23, 3), (0, 0, 0, 0), 1, 3),
    "yolact_resnet50": ("resnet", (3, 4, 6, 3), (0, 0, 0, 0), 1, 3),
    "yolact_darknet53": ("darknet", None, (0, 0, 0, 0, 0), 1, 3),
    "yolact_plus_base": ("resnet", (3, 4, 23, 3), (0, 4, 23, 3), 3, 9),
    "yolact_plus_resnet50": ("resnet", (3, 4, 6, 3), (0, 4, 6, 3), 1, 9),
}
OFFICIAL_NAMES: tuple[str, ...] = tuple(_CONFIGS)

# Parameter totals from the reference (§6; BN running stats and counters excluded).
REFERENCE_PARAM_TOTALS = {
    "yolact_base": 50_157_071,
    "yolact_resnet50": 31_164_943,
    "yolact_darknet53": 47_783_087,
    "yolact_plus_base": 52_571_142,
    "yolact_plus_resnet50": 33_766_460,
}

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _bn(out: dict, prefix: str, channels: int) -> None:
    out[f"{prefix}.weight"] = (channels,)
    out[f"{prefix}.bias"] = (channels,)
    out[f"{prefix}.running_mean"] = (channels,)
    out[f"{prefix}.running_var"] = (channels,)
    out[f"{prefix}.num_batches_tracked"] = ()


def _conv(out: dict, prefix: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
    out[f"{prefix}.weight"] = (cout, cin, k, k)
    if bias:
        out[f"{prefix}.bias"] = (cout,)


def uses_dcn(block: int, num_blocks: int, dcn_layers: int, dcn_interval: int) -> bool:
    """The original ``_make_layer`` rule (reference §1.2)."""
    if block == 0:
        return dcn_layers >= num_blocks
    return block + dcn_layers >= num_blocks and block % dcn_interval == 0


def dcn_positions(name: str) -> list[tuple[int, int]]:
    """(stage, block) of every DCN conv2 of config ``name``."""
    kind, depths, dcn_layers, interval, _ = _CONFIGS[name]
    if kind != "resnet":
        return []
    return [(s, b) for s, n in enumerate(depths) for b in range(n)
            if uses_dcn(b, n, dcn_layers[s], interval)]


def _resnet(out: dict, depths: tuple[int, ...], dcn_layers: tuple[int, ...], interval: int) -> list[int]:
    _conv(out, "backbone.conv1", 64, 3, 7, bias=False)
    _bn(out, "backbone.bn1", 64)
    cin = 64
    channels = []
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), depths)):
        for b in range(blocks):
            p = f"backbone.layers.{stage}.{b}"
            _conv(out, f"{p}.conv1", planes, cin, 1, bias=False)
            _bn(out, f"{p}.bn1", planes)
            if uses_dcn(b, blocks, dcn_layers[stage], interval):
                # DCNv2: weight + bias of its own, plus the offset/mask predictor.
                out[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                out[f"{p}.conv2.bias"] = (planes,)
                _conv(out, f"{p}.conv2.conv_offset_mask", 27, planes, 3)
            else:
                _conv(out, f"{p}.conv2", planes, planes, 3, bias=False)
            _bn(out, f"{p}.bn2", planes)
            _conv(out, f"{p}.conv3", planes * 4, planes, 1, bias=False)
            _bn(out, f"{p}.bn3", planes * 4)
            if b == 0:
                _conv(out, f"{p}.downsample.0", planes * 4, cin, 1, bias=False)
                _bn(out, f"{p}.downsample.1", planes * 4)
            cin = planes * 4
        channels.append(cin)
    return channels


def _darknet(out: dict) -> list[int]:
    _conv(out, "backbone._preconv.0", 32, 3, 3, bias=False)
    _bn(out, "backbone._preconv.1", 32)
    cin = 32
    channels = []
    for stage, blocks in enumerate((1, 2, 8, 8, 4)):
        c = 64 * 2 ** stage
        p = f"backbone.layers.{stage}"
        _conv(out, f"{p}.0.0", c, cin, 3, bias=False)  # stride-2 downsample conv
        _bn(out, f"{p}.0.1", c)
        for k in range(1, blocks + 1):
            _conv(out, f"{p}.{k}.conv1.0", c // 2, c, 1, bias=False)
            _bn(out, f"{p}.{k}.conv1.1", c // 2)
            _conv(out, f"{p}.{k}.conv2.0", c, c // 2, 3, bias=False)
            _bn(out, f"{p}.{k}.conv2.1", c)
        cin = c
        channels.append(c)
    return channels


def official_shapes(name: str, num_classes: int = NUM_CLASSES) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the original ``{name}_54_800000.pth`` (ordered as the original);
    ``num_classes`` (foreground) gives the shapes of a checkpoint trained on another dataset."""
    kind, depths, dcn_layers, interval, anchors = _CONFIGS[name]
    out: dict[str, tuple[int, ...]] = {}
    if kind == "resnet":
        channels = _resnet(out, depths, dcn_layers, interval)
        selected = (1, 2, 3)
    else:
        channels = _darknet(out)
        selected = (2, 3, 4)

    for i in (0, 2, 4, 8):
        _conv(out, f"proto_net.{i}", FPN, FPN, 3)
    _conv(out, "proto_net.10", NUM_PROTOS, FPN, 1)

    if anchors == 9:  # YOLACT++ mask re-scoring net
        for idx, (cout, cin) in zip((0, 2, 4, 6, 8), ((8, 1), (16, 8), (32, 16), (64, 32), (128, 64))):
            _conv(out, f"maskiou_net.maskiou_net.{idx}", cout, cin, 3)
        _conv(out, "maskiou_net.maskiou_net.10", num_classes, 128, 1)

    # lat_layers are built for the selected stages in reverse order (C5 first).
    for i, stage in enumerate(reversed(selected)):
        _conv(out, f"fpn.lat_layers.{i}", FPN, channels[stage], 1)
    for i in range(3):
        _conv(out, f"fpn.pred_layers.{i}", FPN, FPN, 3)
    for i in range(2):
        _conv(out, f"fpn.downsample_layers.{i}", FPN, FPN, 3)

    _conv(out, "prediction_layers.0.upfeature.0", FPN, FPN, 3)
    _conv(out, "prediction_layers.0.bbox_layer", anchors * 4, FPN, 3)
    _conv(out, "prediction_layers.0.conf_layer", anchors * (num_classes + 1), FPN, 3)
    _conv(out, "prediction_layers.0.mask_layer", anchors * NUM_PROTOS, FPN, 3)
    _conv(out, "semantic_seg_conv", num_classes, FPN, 1)
    return out


def is_bn_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in BN_BUFFERS


def parameter_total(shapes: dict[str, tuple[int, ...]]) -> int:
    """Number of learnable parameters (BN running stats and counters excluded)."""
    total = 0
    for key, shape in shapes.items():
        if is_bn_buffer(key):
            continue
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def make_state_dict(name: str, seed: int = 0, *, device: str | torch.device = "cpu",
                    num_batches_tracked: bool = True,
                    num_classes: int = NUM_CLASSES) -> dict[str, torch.Tensor]:
    """A state dict with the original's keys and shapes, filled with random values:
    float32 N(0, 1) (``running_var`` made positive), ``num_batches_tracked`` int64
    scalars. ``num_batches_tracked=False`` leaves the counters out, like checkpoints
    written before PyTorch 0.4.1."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for i, (key, shape) in enumerate(official_shapes(name, num_classes).items()):
        if key.endswith("num_batches_tracked"):
            if num_batches_tracked:
                out[key] = torch.tensor(800_000 + i, dtype=torch.int64, device=device)
            continue
        t = torch.randn(shape, generator=gen, dtype=torch.float32)
        if key.endswith("running_var"):
            t = t.abs() + 0.1
        out[key] = t.to(device)
    return out
