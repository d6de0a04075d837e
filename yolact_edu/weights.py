"""Loading (and fetching) the original implementation's official checkpoints.

The released ``.pth`` files are plain ``state_dict``s, usually saved from CUDA
tensors. :func:`load_official` reads them on any device with
``weights_only=True`` (no code runs from the file), applies the original's two
legacy fix-ups and then insists on an exact key and shape match, so a wrong
file fails loudly instead of loading half a model.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .config import OFFICIAL_CONFIGS, YolactConfig, get_config, list_configs
from .model import Yolact

# Released files (Hugging Face mirrors listed in the original README). There is no
# released yolact_im400 checkpoint.
OFFICIAL_FILES = {
    "yolact_base": "yolact_base_54_800000.pth",
    "yolact_im700": "yolact_im700_54_800000.pth",
    "yolact_resnet50": "yolact_resnet50_54_800000.pth",
    "yolact_darknet53": "yolact_darknet53_54_800000.pth",
    "yolact_plus_base": "yolact_plus_base_54_800000.pth",
    "yolact_plus_resnet50": "yolact_plus_resnet50_54_800000.pth",
}
DEFAULT_BASE_URL = "https://huggingface.co/dbolya"


def official_url(name: str, base_url: str | None = None) -> str:
    """Download URL of the official checkpoint of config ``name``.

    ``base_url`` (or the environment variable ``YOLACT_EDU_WEIGHTS_URL``) replaces
    the Hugging Face host, for a mirror: the file is then ``{base_url}/{file name}``.
    """
    if name not in OFFICIAL_FILES:
        raise KeyError(f"no released checkpoint for {name!r}; released: {', '.join(OFFICIAL_FILES)}")
    filename = OFFICIAL_FILES[name]
    base_url = base_url or os.environ.get("YOLACT_EDU_WEIGHTS_URL")
    if base_url:
        return f"{base_url.rstrip('/')}/{filename}"
    repo = name.replace("_", "-")
    return f"{DEFAULT_BASE_URL}/{repo}/resolve/main/{filename}?download=true"


def weights_dir() -> Path:
    """Where downloaded weights live: ``$YOLACT_EDU_HOME/weights`` or ``~/.cache/yolact_edu/weights``."""
    home = os.environ.get("YOLACT_EDU_HOME")
    root = Path(home) if home else Path.home() / ".cache" / "yolact_edu"
    return root / "weights"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the requested model."""


def config_from_filename(path: str | os.PathLike) -> str:
    """Config name from an original-style file name:
    ``yolact_base_54_800000.pth`` -> ``yolact_base``; ``*_interrupt.pth`` too."""
    stem = Path(path).name
    stem = stem[:-4] if stem.endswith(".pth") else stem
    stem = re.sub(r"(_\d+)?_\d+(_interrupt)?$", "", stem)
    stem = re.sub(r"_config$", "", stem)
    if stem not in list_configs():
        raise CheckpointError(
            f"cannot tell the config from the file name {Path(path).name!r} "
            f"(expected '<config>_<epoch>_<iter>.pth' with config one of {', '.join(list_configs())}); "
            f"pass config=... explicitly")
    return stem


def read_checkpoint_file(path: str | os.PathLike):
    """Whatever a ``.pth`` file holds, loaded onto the CPU with ``weights_only=True`` (no code
    runs from the file). FileNotFoundError if it is missing, :class:`CheckpointError` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # A cut or foreign file surfaces as whatever the unpickler tripped on (UnpicklingError,
        # EOFError, IndexError, KeyError, struct.error, OSError, ...): all mean "not readable".
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint "
                              f"(truncated download or another format?): {exc}") from exc


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (:func:`read_checkpoint_file`); unwrap a ``{"model": ...}`` /
    ``{"state_dict": ...}`` wrapper if present."""
    return as_state_dict(read_checkpoint_file(path), str(path))


def as_state_dict(obj, source: str) -> dict[str, torch.Tensor]:
    """A loaded checkpoint object -> its name-to-tensor dict (a ``{"model": ...}`` or
    ``{"state_dict": ...}`` wrapper unwrapped); :class:`CheckpointError` naming ``source`` if none."""
    if isinstance(obj, Mapping):
        for wrapper in ("model", "state_dict"):
            if wrapper in obj and isinstance(obj[wrapper], Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{source} does not hold a state dict (a mapping of names to tensors)")
    return dict(obj)


def apply_legacy_fixups(state_dict: dict[str, torch.Tensor], cfg: YolactConfig) -> dict:
    """The original's two fix-ups before its strict load: drop pre-rename
    ``backbone.layer*`` keys (not ``backbone.layers``) and extra
    ``fpn.downsample_layers.N`` for N >= ``cfg.fpn_num_downsample``."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("backbone.layer") and not key.startswith("backbone.layers"):
            continue
        if key.startswith("fpn.downsample_layers."):
            if int(key.split(".")[2]) >= cfg.fpn_num_downsample:
                continue
        out[key] = value
    return out


def _shape_problems(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]):
    expected = model.state_dict()
    # Checkpoints from before PyTorch 0.4.1 have no BatchNorm counters; they are not weights.
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [(k, tuple(state_dict[k].shape), tuple(v.shape)) for k, v in expected.items()
                  if k in state_dict and state_dict[k].shape != v.shape]
    return missing, unexpected, mis_shaped


def _describe(keys: list, limit: int = 8) -> str:
    shown = ", ".join(str(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_state_dict(model: Yolact, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` naming missing, unexpected and mis-shaped keys."""
    missing, unexpected, mis_shaped = _shape_problems(model, state_dict)
    if not (missing or unexpected or mis_shaped):
        return
    lines = [f"{source} does not fit config {model.cfg.name!r}:"]
    if missing:
        lines.append(f"  missing keys: {_describe(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys: {_describe(unexpected)}")
    if mis_shaped:
        lines.append("  mis-shaped keys: " + _describe(
            [f"{k} (file {f}, model {m})" for k, f, m in mis_shaped]))
    hint = _head_hint(model.cfg, state_dict)
    if hint:
        lines.append("  " + hint)
    guesses = [n for n in OFFICIAL_CONFIGS if n != model.cfg.name
               and not any(_shape_problems(_skeleton(n), state_dict))]
    if guesses:
        lines.append(f"  it fits config {' / '.join(guesses)} instead")
    raise CheckpointError("\n".join(lines))


def _head_hint(cfg: YolactConfig, state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Explain a mis-shaped head: a different class count, or a different number of anchors
    per cell (YOLACT 3 vs YOLACT++ 9), read off the file's box and class layers."""
    bbox = state_dict.get("prediction_layers.0.bbox_layer.weight")
    conf = state_dict.get("prediction_layers.0.conf_layer.weight")
    if bbox is None or conf is None or bbox.dim() == 0 or bbox.shape[0] % 4:
        return None
    file_anchors = bbox.shape[0] // 4
    if file_anchors != cfg.num_anchors:
        return (f"the file has {file_anchors} anchors per cell, the config {cfg.num_anchors}: "
                f"YOLACT++ checkpoints need a yolact_plus_* config and YOLACT ones a plain config")
    if conf.dim() == 0 or conf.shape[0] % file_anchors:
        return None
    file_classes = conf.shape[0] // file_anchors - 1
    if file_classes == cfg.num_classes:
        return None
    return (f"the file has {file_classes} classes, the config {cfg.num_classes}: use "
            f"cfg.replace(num_classes={file_classes}) or fine-tune with re-initialised heads")


_SKELETONS: dict[str, Yolact] = {}


def _skeleton(name: str) -> Yolact:
    """A model used only for its key names and shapes (built on the meta device: no memory)."""
    if name not in _SKELETONS:
        with torch.device("meta"):
            _SKELETONS[name] = Yolact(get_config(name))
    return _SKELETONS[name]


def load_official(path_or_state_dict, config: YolactConfig | str | None = None) -> Yolact:
    """Build the model and load an official checkpoint into it; returns it in eval mode on CPU.

    path_or_state_dict: a ``.pth`` path or an already loaded state dict.
    config: a config or its name; None infers it from the file name
        (``yolact_base_54_800000.pth`` -> ``yolact_base``), or for a state dict from
        its tensors when that is unambiguous.
    Raises :class:`CheckpointError` naming missing / unexpected / mis-shaped keys.
    """
    if isinstance(path_or_state_dict, Mapping):
        source = "state dict"
        state_dict = as_state_dict(path_or_state_dict, source)
        if config is None:
            config = _infer_config(state_dict)
    else:
        source = str(path_or_state_dict)
        if not Path(path_or_state_dict).is_file():      # say so before puzzling over its name
            raise FileNotFoundError(f"checkpoint not found: {source}")
        if config is None:
            config = config_from_filename(path_or_state_dict)
        state_dict = read_state_dict(path_or_state_dict)
    return official_model(state_dict, config, source)


def official_model(state_dict: Mapping[str, torch.Tensor], config: YolactConfig | str,
                   source: str) -> Yolact:
    """Build ``config``'s model and load an official state dict into it, strictly (eval mode,
    CPU); ``source`` names the file in errors. :func:`load_official` without the reading."""
    cfg = get_config(config) if isinstance(config, str) else config
    model = Yolact(cfg)
    state_dict = apply_legacy_fixups(state_dict, cfg)
    check_state_dict(model, state_dict, source)
    model.load_state_dict(state_dict, strict=False)  # strictness checked above, BN counters aside
    return model.eval()


def _infer_config(state_dict: Mapping[str, torch.Tensor]) -> str:
    fitting = [n for n in OFFICIAL_CONFIGS if not any(_shape_problems(_skeleton(n), state_dict))]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        raise CheckpointError("the state dict fits none of the official configs; pass config=...")
    raise CheckpointError(f"the state dict fits {', '.join(fitting)} (same tensors, different "
                          f"input sizes); pass config=... to choose")


def download_official(name: str, directory: str | os.PathLike | None = None, *,
                      base_url: str | None = None, overwrite: bool = False,
                      progress: bool = True, retries: int = 3) -> Path:
    """Fetch the official checkpoint of config ``name`` into ``directory`` (default
    :func:`weights_dir`): resumable, written atomically, and verified by loading it
    with :func:`load_official` before it takes its final name."""
    from .files.download import download_file

    directory = Path(directory) if directory is not None else weights_dir()
    url = official_url(name, base_url)
    return download_file(url, directory / OFFICIAL_FILES[name], overwrite=overwrite,
                         progress=progress, retries=retries,
                         verify=lambda part: load_official(part, config=name))


def load_matching(model: Yolact, path_or_state_dict, *, verbose: bool = True) -> dict[str, list[str]]:
    """Fine-tuning start: copy every tensor of a checkpoint whose name and shape fit ``model``.

    Typical use: official COCO weights (80 classes) into a model for your own classes. The
    class layer and the semantic-segmentation layer (and YOLACT++'s re-scoring output) then
    differ in shape; they keep ``model``'s fresh initialisation, and the user is told which.
    Accepts official files and yolact_edu checkpoints. Returns {"loaded", "reinitialised",
    "missing", "unexpected"} key lists. Raises :class:`CheckpointError` when fewer than half of
    the model's tensors can be loaded: that is another architecture, not a fine-tuning start.
    """
    source = "state dict" if isinstance(path_or_state_dict, Mapping) else str(path_or_state_dict)
    state_dict = (as_state_dict(path_or_state_dict, source) if isinstance(path_or_state_dict, Mapping)
                  else read_state_dict(path_or_state_dict))
    state_dict = apply_legacy_fixups(state_dict, model.cfg)
    own = model.state_dict()
    report: dict[str, list[str]] = {"loaded": [], "reinitialised": [], "missing": [], "unexpected": []}
    for key, value in own.items():
        if key not in state_dict:
            if not key.endswith("num_batches_tracked"):
                report["missing"].append(key)
        elif state_dict[key].shape != value.shape:
            report["reinitialised"].append(f"{key} (file {tuple(state_dict[key].shape)}, "
                                           f"model {tuple(value.shape)})")
        else:
            report["loaded"].append(key)
    report["unexpected"] = [k for k in state_dict if k not in own]
    weights = [k for k in own if not k.endswith("num_batches_tracked")]
    if len(report["loaded"]) < len(weights) / 2:
        raise CheckpointError(f"{source}: only {len(report['loaded'])} of the {len(weights)} tensors of "
                              f"{model.cfg.name!r} fit; it is a different architecture "
                              f"(missing e.g. {_describe(report['missing'], 3)})")
    model.load_state_dict({k: state_dict[k] for k in report["loaded"]}, strict=False)
    if verbose:
        print(f"loaded {len(report['loaded'])} tensors from {source}")
        for what in ("reinitialised", "missing", "unexpected"):
            if report[what]:
                print(f"  {what} ({len(report[what])}): {_describe(report[what])}")
    return report
