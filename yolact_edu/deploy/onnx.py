"""Any family of the package as an ONNX model, run by onnxruntime with the same detections as
PyTorch (issues 16 and 27).

What is exported is the network: a normalised batch ``image`` [B,3,S,S] (float32, dynamic batch)
-> the tensors of ``model(x)`` in eval mode, named as in its raw dict (YOLACT: ``loc`` [B,P,4],
``conf`` [B,P,C+1], ``coef`` [B,P,k], ``proto`` [B,Hp,Wp,k]; the relatives: see
:mod:`.onnx_families`). Beside ``OUT.onnx`` go

* ``OUT.json``             the config, the outputs' shapes, the SHA-256 of every file of the export
                           and, in words, the post-processing the outputs still need;
* ``OUT.<name>.npy``       raw outputs that are constants of the input size (YOLACT's ``priors``);
* ``OUT.<head>.onnx``      the per-detection heads ``detect`` runs (CenterMask's ``mask_head``,
                           YOLACT++'s ``maskiou_net``), each a graph of its own.

Post-processing (thresholds, NMS, the per-detection mask steps) stays outside the graph: its
output count depends on the data, and in PyTorch it is a few small, readable steps.
:class:`OnnxModel` runs the file with onnxruntime and hands the outputs to the family's own
``detect`` -- on a weightless copy of the model (its parameters on PyTorch's "meta" device, so a
step that needed the weights would fail loudly, not silently use random ones), with its heads
replaced by their graphs -- so detections agree with PyTorch's to rounding::

    path = export_onnx(model, "out/condinst_tiny.onnx")
    found = OnnxModel(path).predict(image)            # Detections, as model.predict(image)

Mask R-CNN is exported whole (torchvision supports it), one image per run. YOLACT++'s deformable
convolutions become ONNX ``DeformConv`` (opset 19). Needs the optional extra:
``pip install "yolact_edu[onnx]"`` (onnx, onnxruntime).
"""
from __future__ import annotations

import copy
import errno
import hashlib
import io
import json
import math
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..build import build_model, config_from_dict
from ..config import config_to_dict
from ..detections import Detections
from ..files.atomic_write import create_temporary, write_atomically
from ..files.download import file_sha256
from ..files.output_folder import OutputFolder
from ..model.segmenter import as_image_list, image_size
from ..ops.agreement import detection_agreement
from ..ops.preprocess import preprocess_images
from .onnx_families import (
    DEFORMABLE_OPSET,
    OPSET,
    YOLACT_POSTPROCESSING,
    FamilyExport,
    HeadOutputs,
    OnnxHead,
    family_export,
    register_deformable_convolution,
)

FORMAT = "yolact_edu onnx"
OUTPUT_NAMES = ("loc", "conf", "coef", "proto")        # YOLACT's graph outputs
POSTPROCESSING = YOLACT_POSTPROCESSING                  # YOLACT's; each family's goes into its JSON
ONE_IMAGE = "one image per run"


class _RawOutputs(nn.Module):
    """The model's forward as a tuple of its raw dict's ``names``, the form the exporter traces;
    ``per_image``: the one image's entries of a raw dict of lists (Mask R-CNN)."""

    def __init__(self, model: nn.Module, names: list[str], per_image: bool):
        super().__init__()
        self.model, self.names, self.per_image = model, names, per_image

    def forward(self, image: torch.Tensor):
        raw = self.model(image)
        return tuple(raw[name][0] if self.per_image else raw[name] for name in self.names)


def require_onnxruntime():
    """The onnxruntime module, or an ImportError saying which extra installs it."""
    try:
        import onnxruntime  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ImportError('ONNX support needs onnx and onnxruntime: pip install "yolact_edu[onnx]"') from exc
    return onnxruntime


def description_path(path: str | os.PathLike) -> Path:
    """The JSON that describes the export ``path`` (``OUT.onnx`` -> ``OUT.json``)."""
    return Path(path).with_suffix(".json")


def constant_path(path: str | os.PathLike, name: str) -> Path:
    """Where the constant raw output ``name`` of the export ``path`` goes (``OUT.priors.npy``)."""
    return Path(path).with_suffix(f".{name}.npy")


def head_path(path: str | os.PathLike, attribute: str) -> Path:
    """Where the head ``attribute`` of the export ``path`` goes (``OUT.mask_head.onnx``)."""
    return Path(path).with_suffix(f".{attribute}.onnx")


def sidecar_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(priors .npy, description .json) beside a YOLACT export (the two files of issue 16)."""
    return constant_path(path, "priors"), description_path(path)


def companion_paths(path: str | os.PathLike, meta: dict) -> list[Path]:
    """The files, besides the graph ``path`` and its JSON, of the export that ``meta`` describes
    (named after the graph, so the set of files can be renamed together)."""
    return ([constant_path(path, name) for name in constant_entries(meta)]
            + [head_path(path, attribute) for attribute in meta.get("heads", {})])


def constant_entries(meta: dict) -> dict[str, dict]:
    """name -> {"file", "sha256"} of the export's constants (an issue-16 JSON names only its priors)."""
    if "constants" in meta:
        return meta["constants"]
    return {"priors": {"file": meta["priors"], "sha256": meta.get("priors_sha256")}} if "priors" in meta else {}


# -- export ------------------------------------------------------------------------------------------
def export_onnx(model: nn.Module, path: str | os.PathLike, *, batch: int = 1, force: bool = False,
                protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Export ``model``'s network to ``path`` (``.onnx``; dynamic batch, or one image for Mask R-CNN)
    with the files beside it that its post-processing needs (module docstring). The model is
    traced in eval mode on CPU in float32 (a copy: ``model`` itself is not moved or changed).

    The files go through the folder's :class:`~yolact_edu.files.output_folder.OutputFolder`, as
    ``predict`` and ``eval`` write theirs: an earlier export's are replaced (and those of its files
    this export no longer has are removed), a file of the user's only with ``force``, and the
    files in ``protect`` (the inputs, e.g. the checkpoint) never. Returns the ``.onnx`` path."""
    if getattr(model, "fast_path", None) is not None:
        raise ValueError("export the model itself, not an optimize()d copy (its BatchNorm is folded, its "
                         "layout channels-last)")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"the exported file must end in .onnx, got {path}")
    plan = family_export(model)
    cfg = model.cfg
    meta_path = description_path(path)
    constants = {name: constant_path(path, name) for name in plan.constants}
    heads = {head.attribute: head_path(path, head.attribute) for head in plan.heads}
    names = [path.name, meta_path.name, *(p.name for p in constants.values()), *(p.name for p in heads.values())]
    outputs = OutputFolder(path.parent, force=force, protect=protect)
    outputs.check(names)
    require_onnxruntime()
    earlier = _earlier_companions(outputs, path)

    traced = copy.deepcopy(model).float().cpu().eval()
    batch = 1 if plan.per_image else batch
    example = torch.zeros(batch, 3, cfg.max_size, cfg.max_size)
    with torch.no_grad():
        raw = traced(example)
    graph_names = [name for name in raw if name not in plan.constants]
    shapes = _output_shapes(raw, graph_names, plan, batch, cfg.name)
    axis = "detections" if plan.per_image else "batch"
    dynamic = {name: {0: axis} for name in graph_names}
    if not plan.per_image:
        dynamic["image"] = {0: "batch"}
    if plan.opset == DEFORMABLE_OPSET:
        register_deformable_convolution()
    outputs.claim(*names)
    # Every graph is written under a temporary name that the next run in this folder sweeps if this
    # process is killed; any other failure removes them here, and a full disk is named by its file.
    partials: dict[Path, Path] = {}
    try:
        partials[path] = export_graph(_RawOutputs(traced, graph_names, plan.per_image).eval(), example, path,
                                       "image", graph_names, dynamic, plan.opset, cfg.name)
        head_meta = {}
        for head in plan.heads:
            target = heads[head.attribute]
            partials[target], head_meta[head.attribute] = _export_head(traced, head, raw, target, plan.opset)
        constant_meta = {}
        for name, target in constants.items():
            buffer = io.BytesIO()
            np.save(buffer, raw[name].numpy())
            write_atomically(target, buffer.getvalue())
            constant_meta[name] = {"file": target.name, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                                   "shape": list(raw[name].shape)}
        # The companions are bound to this graph by their SHA-256: OnnxModel refuses those of another export.
        meta = {"format": FORMAT, "opset": plan.opset, "family": cfg.family, "config": config_to_dict(cfg),
                "input": {"name": "image", "shape": [1 if plan.per_image else "batch", 3, cfg.max_size, cfg.max_size],
                          "dtype": "float32", "normalization": cfg.normalization},
                "batch": ONE_IMAGE if plan.per_image else "dynamic",
                "outputs": shapes, "constants": constant_meta, "heads": head_meta,
                "graph_sha256": file_sha256(partials[path]), "postprocessing": plan.postprocessing,
                "torch": torch.__version__}
        write_atomically(meta_path, json.dumps(meta, indent=1) + "\n")
        for target, partial in partials.items():
            os.replace(partial, target)
    except BaseException as exc:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        if isinstance(exc, RuntimeError) and "No space left on device" in str(exc):   # from the C++ writer
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    for name in sorted(set(earlier) - set(names)):      # an earlier export's files this one has not
        outputs.remove(name)                            # (only those the ledger lists as ours)
    return path


def _earlier_companions(outputs: OutputFolder, path: Path) -> list[str]:
    """The companion files of the earlier export at this name, when its JSON is ours and readable."""
    meta_path = description_path(path)
    if not outputs.owns(meta_path.name) or not meta_path.is_file():
        return []
    try:
        return [p.name for p in companion_paths(path, json.loads(meta_path.read_text(encoding="utf-8")))]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _output_shapes(raw: dict, names: list[str], plan: FamilyExport, batch: int, model_name: str) -> dict:
    """The graph outputs' dims after the batch (or detection) axis, checked to have that axis."""
    shapes = {}
    for name in names:
        value = raw[name]
        if plan.per_image:
            value = value[0]
        elif not (torch.is_tensor(value) and value.dim() and value.shape[0] == batch):
            raise ValueError(f"{model_name}'s raw output {name!r} has no batch axis ({tuple(value.shape)}): "
                             "list it among its family's constants in deploy/onnx_families.py")
        shapes[name] = list(value.shape[1:])
    return shapes


def export_graph(module: nn.Module, example: torch.Tensor, target: Path, input_name: str, output_names: list[str],
                 dynamic: dict, opset: int, model_name: str) -> Path:
    """torch.onnx.export (TorchScript tracer) of ``module`` to a temporary file beside ``target``;
    an operation without an ONNX form is refused in one line that names it."""
    partial = create_temporary(target)
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter warns that it is deprecated, and the tracer that constants
            # (the priors' numpy grid, torchvision's image sizes) are constants: they are, for a fixed input size
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(partial), dynamo=False, input_names=[input_name],
                              output_names=output_names, dynamic_axes=dynamic, opset_version=opset)
    except torch.onnx.errors.UnsupportedOperatorError as exc:
        partial.unlink(missing_ok=True)
        operation = re.search(r"\b(\w+::\w+)", str(exc))
        raise ValueError(f"{model_name} cannot be exported to ONNX: the operation "
                         f"{operation.group(1) if operation else str(exc).splitlines()[0]} has no ONNX form at "
                         f"opset {opset}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial


def _export_head(model: nn.Module, head, raw: dict, target: Path, opset: int) -> tuple[Path, dict]:
    """One per-detection head as its own graph (dynamic detection axis); returns (its temporary
    file, renamed to ``target`` with the others once all are written; its entry in the JSON)."""
    module = getattr(model, head.attribute)
    example = torch.randn(2, *head.example(model.cfg, raw))     # 2: no axis of length 1 to specialise on
    with torch.no_grad():
        out = module(example)
    found = out if isinstance(out, dict) else {"output": out}
    names = list(found)
    dynamic = {name: {0: "detections"} for name in ["input", *names]}
    partial = export_graph(HeadOutputs(module).eval(), example, target, "input", names, dynamic, opset,
                            f"{model.cfg.name}'s {head.attribute}")
    return partial, {"file": target.name, "sha256": file_sha256(partial), "input": ["detections", *example.shape[1:]],
                     "outputs": {name: list(value.shape[1:]) for name, value in found.items()},
                     "returns": "dict" if isinstance(out, dict) else "tensor"}


# -- reading an export back ----------------------------------------------------------------------------
def read_description(meta_path: Path) -> dict:
    """The export's JSON description, checked: one ValueError naming the file for anything wrong."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path} is not valid JSON ({exc.msg}, line {exc.lineno}): export again") from None
    except UnicodeDecodeError:
        raise ValueError(f"{meta_path} is not a text file: export again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{meta_path} is not a yolact_edu ONNX description (field 'format' is {found!r})")
    for key in ("config", "graph_sha256"):
        if key not in meta:
            raise ValueError(f"{meta_path} has no {key!r} field (an export older than the sidecar check, or "
                             "an edited file): export again")
    return meta


def read_constant(file: Path, entry: dict) -> np.ndarray:
    """A constant raw output (e.g. the priors [P,4]), checked against its entry in the description."""
    data = file.read_bytes()
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{file} is not the {file.suffixes[-2][1:]} of this export (its SHA-256 differs): "
                         "export again")
    try:
        value = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{file} is not a .npy array ({exc}): export again") from None
    if not np.issubdtype(value.dtype, np.floating) or not np.isfinite(value).all():
        raise ValueError(f"{file} holds a {value.dtype} array with non-finite or non-float values: export again")
    return value.astype(np.float32, copy=False)


def weightless_model(cfg) -> nn.Module:
    """The family's model for ``cfg`` with its parameters on the "meta" device: its ``detect`` and
    its output shapes without weights, memory or initialisation time."""
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    except (RuntimeError, NotImplementedError):    # an initialiser that reads a value (SOLOv2's .item())
        model = build_model(cfg).to("meta")
    return model.eval()


class OnnxModel:
    """An exported model run by onnxruntime on the CPU, with :meth:`predict` and :meth:`detect` as
    the PyTorch model has them (same preprocessing, the family's own ``detect``).

    path: the ``.onnx`` file written by :func:`export_onnx` (its ``.json`` and companions beside it).
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None):
        ort = require_onnxruntime()
        self.path = path = Path(path)
        meta_path = description_path(path)
        for needed in (path, meta_path):
            _require_file(needed)
        meta = read_description(meta_path)
        if meta["graph_sha256"] != file_sha256(path):
            raise ValueError(f"{meta_path} describes another export than {path} (the graph's SHA-256 differs): "
                             "keep the files of one export together, or export again")
        constants, heads = constant_entries(meta), meta.get("heads", {})
        for companion in companion_paths(path, meta):
            _require_file(companion)
        try:
            self.cfg = config_from_dict(meta["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{meta_path}: its 'config' is not a model config ({exc})") from exc
        self.family = self.cfg.family
        self.per_image = meta.get("batch") == ONE_IMAGE
        providers = providers or ["CPUExecutionProvider"]
        self.session = _session(ort, path, providers)
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.constants = {name: torch.from_numpy(read_constant(constant_path(path, name), entry))
                          for name, entry in constants.items()}
        self.model = weightless_model(self.cfg)
        for attribute, entry in heads.items():
            head_file = head_path(path, attribute)
            if entry.get("sha256") != file_sha256(head_file):
                raise ValueError(f"{head_file} is not the {attribute} of this export (its SHA-256 differs): "
                                 "export again")
            setattr(self.model, attribute, OnnxHead(_session(ort, head_file, providers), entry["outputs"],
                                                    entry.get("returns") == "dict"))
        self.expected = self._expected_shapes(meta)
        self._check_outputs(meta_path)

    def _expected_shapes(self, meta: dict) -> dict[str, tuple]:
        """name -> shape after the batch axis of every raw output, from the config (the weightless
        model's forward on a meta tensor), or from the JSON where the forward is data-dependent."""
        if self.per_image:
            return {name: tuple(dims) for name, dims in meta.get("outputs", {}).items()}
        size = self.cfg.max_size
        with torch.no_grad():
            raw = self.model(torch.empty(1, 3, size, size, device="meta"))
        return {name: tuple(value.shape if name in self.constants else value.shape[1:]) for name, value in raw.items()}

    def _check_outputs(self, meta_path: Path) -> None:
        """The graph's outputs and the constants against the config: a mismatch would mislabel every detection."""
        shapes = {output.name: output.shape for output in self.session.get_outputs()}
        for name, dims in self.expected.items():
            if name in self.constants:
                found = tuple(self.constants[name].shape)
                if found != dims:
                    raise ValueError(f"{self.path.with_suffix(f'.{name}.npy')} holds {name} of shape {found}, but "
                                     f"{meta_path}'s config needs {dims}: the files are of different exports")
                continue
            found = shapes.get(name)
            known = None if found is None else list(found[1:])      # symbolic dims (str) match anything
            if known is None or len(known) != len(dims) or any(isinstance(d, int) and d != want
                                                              for d, want in zip(known, dims)):
                raise ValueError(f"{self.path}'s output {name!r} is {found}, but {meta_path}'s config describes "
                                 f"[batch, {', '.join(map(str, dims))}]: the files are of different exports")

    def raw(self, x: torch.Tensor) -> dict:
        """Normalised batch [B,3,S,S] -> the raw dict of the model's forward (CPU tensors; lists of
        one tensor per image for Mask R-CNN, as its forward gives them)."""
        expected = (3, self.cfg.max_size, self.cfg.max_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{self.path.name} takes [B,{','.join(map(str, expected))}] input, got {tuple(x.shape)}")
        x = x.detach().cpu().float()
        names = self.output_names
        if self.per_image:
            runs = [self.session.run(names, {"image": x[i:i + 1].numpy()}) for i in range(len(x))]
            return {name: [torch.from_numpy(run[j]) for run in runs] for j, name in enumerate(names)}
        values = self.session.run(names, {"image": x.numpy()})
        raw = {name: torch.from_numpy(value) for name, value in zip(names, values)}
        for name, value in raw.items():          # dims the graph leaves symbolic are only known by running it
            if name in self.expected and tuple(value.shape[1:]) != self.expected[name]:
                raise ValueError(f"{self.path} gives {name} of shape {tuple(value.shape[1:])} per image, its config "
                                 f"describes {self.expected[name]}: the files are of different exports")
        return {**raw, **self.constants}

    def preprocess(self, images) -> torch.Tensor:
        """Images as the model's ``preprocess`` takes them -> [B,3,S,S] on the CPU."""
        return preprocess_images(as_image_list(images)[0], self.cfg.max_size, self.cfg.normalization, "cpu")

    def detect(self, raw: dict, image_sizes, **kwargs) -> list[Detections]:
        """The family's own ``detect`` on the ONNX outputs (same options, same meaning)."""
        return self.model.detect(raw, image_sizes, **kwargs)

    def predict(self, images, **detect_kwargs):
        """Images -> Detections (a list of them for a list of images or a 4-D tensor), as the
        model's ``predict``."""
        image_list, batch = as_image_list(images)
        found = self.detect(self.raw(self.preprocess(image_list)), [image_size(im) for im in image_list],
                            **detect_kwargs)
        return found if batch else found[0]


OnnxYolact = OnnxModel      # issue 16's name, when only YOLACT was exported


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: export_onnx writes the .onnx file with its .json and the "
                                "files the .json lists beside it, all named after the .onnx file")


def _session(ort, path: Path, providers: list[str]):
    """An onnxruntime session, or one line saying why this onnxruntime cannot run the file."""
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:        # onnxruntime raises its own classes (Fail, InvalidGraph, NotImplemented)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (" (YOLACT++'s DeformConv needs an onnxruntime that implements opset 19's DeformConv)"
                if "DeformConv" in str(exc) else "")
        raise ValueError(f"onnxruntime {ort.__version__} cannot load {path}: {first}{hint}") from None


# -- checking an export against PyTorch ------------------------------------------------------------------
def raw_difference(reference: dict, exported: dict, names: Iterable[str]) -> float:
    """Largest |exported - reference| of the outputs ``names``, relative to each output's largest
    value (lists, one tensor per image, compared image by image; a count that differs is inf)."""
    worst = 0.0
    for name in names:
        pairs = (list(zip(reference[name], exported[name])) if isinstance(reference[name], (list, tuple))
                 else [(reference[name], exported[name])])
        if isinstance(reference[name], (list, tuple)) and len(reference[name]) != len(exported[name]):
            return math.inf
        for ref, found in pairs:
            if ref.shape != found.shape:
                return math.inf
            if ref.numel():
                scale = ref.float().abs().max().clamp(min=1e-12)
                worst = max(worst, float((found.float() - ref.float()).abs().max() / scale))
    return worst


def compare_with_pytorch(model: nn.Module, runtime: OnnxModel, images, top: int = 100, **detect_kwargs) -> dict:
    """Run ``images`` (a list) through ``model`` (PyTorch, eval mode) and ``runtime`` (onnxruntime).

    Returns {"raw": largest relative difference of the graph outputs (:func:`raw_difference`),
    "detections": per image, :func:`~yolact_edu.ops.agreement.detection_agreement` of the two
    (top ``top``) plus "counts" (PyTorch's, onnxruntime's), "agrees": raw within 1e-4 and every
    image's detections agree (same count, boxes within a pixel, masks at IoU >= 0.95)}.
    """
    x = runtime.preprocess(images)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model(x.to(next(model.parameters()).device))
    finally:
        model.train(was_training)
    reference = {name: ([v.cpu() for v in value] if isinstance(value, (list, tuple)) else value.cpu())
                 for name, value in reference.items()}
    worst = raw_difference(reference, runtime.raw(x), runtime.output_names)
    reports = []
    for ours, theirs in zip(model.predict(images, **detect_kwargs), runtime.predict(images, **detect_kwargs)):
        ours, theirs = ours.cpu(), theirs.cpu()
        report = detection_agreement(ours, theirs, top=top)
        report["counts"] = (len(ours), len(theirs))
        reports.append(report)
    agrees = worst <= 1e-4 and all(r["agrees"] and r["counts"][0] == r["counts"][1] for r in reports)
    return {"raw": worst, "detections": reports, "agrees": agrees}


__all__ = ["export_onnx", "export_graph", "OnnxModel", "OnnxYolact", "weightless_model", "compare_with_pytorch",
           "raw_difference", "sidecar_paths", "description_path", "companion_paths", "constant_path", "head_path",
           "read_description", "read_constant", "require_onnxruntime", "OUTPUT_NAMES", "POSTPROCESSING", "OPSET",
           "FORMAT"]
