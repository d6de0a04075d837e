"""YOLACT as an ONNX model, run by onnxruntime with the same detections as PyTorch (issue 16).

What is exported is the network: a normalised batch ``image`` [B,3,S,S] (float32, dynamic batch)
-> ``loc`` [B,P,4], ``conf`` [B,P,C+1] (logits), ``coef`` [B,P,k], ``proto`` [B,Hp,Wp,k], exactly
:meth:`Yolact.forward`'s raw outputs in eval mode. Beside ``model.onnx`` go

* ``model.priors.npy``  the priors [P,4] (cx, cy, w, h relative), a constant of the input size;
* ``model.json``        the config (input size S, normalisation, class names, NMS settings), the
                        output names and what post-processing the outputs need.

Post-processing (softmax, box decoding, Fast NMS, mask assembly, crop, upsampling) stays outside
the graph: its output count depends on the data, and in PyTorch it is a few small, readable steps.
:class:`OnnxYolact` runs the file with onnxruntime and hands the outputs to the same
:func:`yolact_edu.postprocess.detect` as PyTorch does, so detections agree to rounding::

    path = export_onnx(model, "out/yolact_tiny.onnx")
    found = OnnxYolact(path).predict(image)            # Detections, as model.predict(image)

Needs the optional extra: ``pip install "yolact_edu[onnx]"`` (onnx, onnxruntime). YOLACT++'s
deformable convolutions and its mask re-scoring network are not exported (``export_onnx`` refuses
a YOLACT++ config in one line).
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import YolactConfig, config_from_dict, config_to_dict
from ..detections import Detections
from ..files.atomic_write import create_temporary, write_atomically
from ..files.download import file_sha256
from ..files.output_folder import OutputFolder
from ..model.segmenter import as_image_list, image_size
from ..ops.preprocess import preprocess_images
from ..postprocess import detect

OUTPUT_NAMES = ("loc", "conf", "coef", "proto")
OPSET = 17
POSTPROCESSING = ("softmax(conf) over classes (column 0 = background); decode loc against the priors "
                  "(SSD variances 0.1, 0.2); class-specific Fast NMS; masks = sigmoid(proto @ coef^T) cropped "
                  "to each box and bilinearly upsampled to the image, > 0.5 (yolact_edu.postprocess.detect)")


class _RawOutputs(nn.Module):
    """The model's forward as a tuple (loc, conf, coef, proto), the form the exporter traces."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        raw = self.model(image)
        return tuple(raw[name] for name in OUTPUT_NAMES)


def require_onnxruntime():
    """The onnxruntime module, or an ImportError saying which extra installs it."""
    try:
        import onnxruntime  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ImportError('ONNX support needs onnx and onnxruntime: pip install "yolact_edu[onnx]"') from exc
    return onnxruntime


def sidecar_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(priors .npy, metadata .json) that sit beside an exported ``.onnx`` file."""
    path = Path(path)
    return path.with_suffix(".priors.npy"), path.with_suffix(".json")


def export_onnx(model: nn.Module, path: str | os.PathLike, *, batch: int = 1, force: bool = False,
                protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Export a YOLACT's network to ``path`` (``.onnx``) with a dynamic batch, plus the priors and a
    JSON description beside it (:func:`sidecar_paths`). The model is traced in eval mode on CPU in
    float32 (a copy: ``model`` itself is not moved or changed). The three files go through the
    folder's :class:`~yolact_edu.files.output_folder.OutputFolder`: an earlier export's are replaced,
    a file of the user's only with ``force``, and the files in ``protect`` (the inputs, e.g. the
    checkpoint) never. Returns the ``.onnx`` path."""
    cfg = model.cfg
    if not isinstance(cfg, YolactConfig):
        raise ValueError(f"ONNX export covers YOLACT; {cfg.name} is a {cfg.family} model")
    if cfg.use_maskiou or any(cfg.dcn_layers):
        raise ValueError(f"{cfg.name} is YOLACT++: its deformable convolutions and mask re-scoring are not "
                         "exported; export a YOLACT config (e.g. yolact_resnet50)")
    if getattr(model, "fast_path", None) is not None:
        raise ValueError("export the model itself, not an optimize()d copy (its BatchNorm is folded, its "
                         "layout channels-last)")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"the exported file must end in .onnx, got {path}")
    priors_path, meta_path = sidecar_paths(path)
    outputs = OutputFolder(path.parent, force=force, protect=protect)
    outputs.check([path.name, priors_path.name, meta_path.name])
    require_onnxruntime()
    import copy

    traced = copy.deepcopy(model).float().cpu().eval()
    wrapper = _RawOutputs(traced).eval()
    example = torch.zeros(batch, 3, cfg.max_size, cfg.max_size)
    with torch.no_grad():
        raw = traced(example)
    dynamic = {name: {0: "batch"} for name in ("image", *OUTPUT_NAMES)}
    outputs.claim(path.name, priors_path.name, meta_path.name)
    # The graph is written under a temporary name that the next run in this folder sweeps if this
    # process is killed; any other failure removes it here, and a full disk is named by its file.
    partial = create_temporary(path)
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter warns that it is deprecated, and the tracer that the priors'
            # numpy grid is a constant: it is, for a fixed input size, and is saved beside the model
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (example,), str(partial), dynamo=False, input_names=["image"],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=OPSET)
        priors = io.BytesIO()
        np.save(priors, raw["priors"].numpy())
        write_atomically(priors_path, priors.getvalue())
        # The sidecars are bound to this graph: OnnxYolact refuses a JSON or priors of another export.
        meta = {"format": "yolact_edu onnx", "opset": OPSET, "config": config_to_dict(cfg),
                "input": {"name": "image", "shape": ["batch", 3, cfg.max_size, cfg.max_size], "dtype": "float32",
                          "normalization": cfg.normalization},
                "outputs": {name: list(raw[name].shape[1:]) for name in OUTPUT_NAMES},
                "priors": priors_path.name, "graph_sha256": file_sha256(partial),
                "priors_sha256": hashlib.sha256(priors.getvalue()).hexdigest(),
                "postprocessing": POSTPROCESSING, "torch": torch.__version__}
        write_atomically(meta_path, json.dumps(meta, indent=1) + "\n")
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        if isinstance(exc, RuntimeError) and "No space left on device" in str(exc):   # from the C++ writer
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    return path


def read_description(meta_path: Path) -> dict:
    """The export's JSON description, checked: one ValueError naming the file for anything wrong."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path} is not valid JSON ({exc.msg}, line {exc.lineno}): export again") from None
    except UnicodeDecodeError:
        raise ValueError(f"{meta_path} is not a text file: export again") from None
    if not isinstance(meta, dict) or meta.get("format") != "yolact_edu onnx":
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{meta_path} is not a yolact_edu ONNX description (field 'format' is {found!r})")
    for key in ("config", "graph_sha256"):
        if key not in meta:
            raise ValueError(f"{meta_path} has no {key!r} field (an export older than the sidecar check, or "
                             "an edited file): export again")
    return meta


def read_priors(priors_path: Path, meta: dict) -> np.ndarray:
    """The export's priors [P,4] (cx, cy, w, h in [0, 1]), checked against the description."""
    data = priors_path.read_bytes()
    if "priors_sha256" in meta and hashlib.sha256(data).hexdigest() != meta["priors_sha256"]:
        raise ValueError(f"{priors_path} is not the priors of this export (its SHA-256 differs): export again")
    try:
        priors = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{priors_path} is not a .npy array ({exc}): export again") from None
    if priors.ndim != 2 or priors.shape[1] != 4 or not np.issubdtype(priors.dtype, np.floating):
        raise ValueError(f"{priors_path} holds a {priors.dtype} array of shape {priors.shape}, not priors [P,4]")
    if not np.isfinite(priors).all():
        raise ValueError(f"{priors_path} holds non-finite priors: export again")
    recorded = meta.get("outputs", {}).get("loc")
    if recorded and recorded[0] != len(priors):
        raise ValueError(f"{priors_path} holds {len(priors)} priors, but the export it sits beside has "
                         f"{recorded[0]}: the files are of different exports")
    return priors.astype(np.float32, copy=False)


class OnnxYolact:
    """An exported YOLACT run by onnxruntime on the CPU, with :meth:`predict` and :meth:`detect` as
    the PyTorch model has them (same preprocessing, same post-processing code).

    path: the ``.onnx`` file written by :func:`export_onnx` (its ``.json`` and ``.priors.npy`` beside it).
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None):
        ort = require_onnxruntime()
        path = Path(path)
        priors_path, meta_path = sidecar_paths(path)
        for needed in (path, priors_path, meta_path):
            if not needed.is_file():
                raise FileNotFoundError(f"{needed} is missing: export_onnx writes the .onnx file with its "
                                        ".json and .priors.npy beside it")
        meta = read_description(meta_path)
        if meta["graph_sha256"] != file_sha256(path):
            raise ValueError(f"{meta_path} describes another export than {path} (the graph's SHA-256 differs): "
                             "keep the three files of one export together, or export again")
        try:
            self.cfg = config_from_dict(meta["config"], YolactConfig)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{meta_path}: its 'config' is not a YOLACT config ({exc})") from exc
        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.path = path
        self.priors = torch.from_numpy(read_priors(priors_path, meta))
        self._check_outputs(meta_path)

    def _check_outputs(self, meta_path: Path) -> None:
        """The graph's outputs against the config and priors: a mismatch would mislabel every detection."""
        shapes = {output.name: output.shape for output in self.session.get_outputs()}
        expected = {"loc": [len(self.priors), 4], "conf": [len(self.priors), self.cfg.num_classes + 1],
                    "coef": [len(self.priors), self.cfg.num_protos]}
        for name, dims in expected.items():
            found = shapes.get(name)
            known = None if found is None else list(found[1:])      # symbolic dims (str) match anything
            if known is None or len(known) != len(dims) or any(isinstance(d, int) and d != want
                                                              for d, want in zip(known, dims)):
                raise ValueError(f"{self.path}'s output {name!r} is {found}, but {meta_path} and its priors "
                                 f"describe [batch, {', '.join(map(str, dims))}]: the files are of different exports")

    def raw(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised batch [B,3,S,S] -> the raw dict of :meth:`Yolact.forward` (CPU tensors)."""
        expected = (3, self.cfg.max_size, self.cfg.max_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{self.path.name} takes [B,{','.join(map(str, expected))}] input, got {tuple(x.shape)}")
        outputs = self.session.run(list(OUTPUT_NAMES), {"image": x.detach().cpu().float().numpy()})
        raw = {name: torch.from_numpy(value) for name, value in zip(OUTPUT_NAMES, outputs)}
        if raw["loc"].shape[1] != len(self.priors):      # the graph's prior count is only known by running it
            raise ValueError(f"{self.path} gives {raw['loc'].shape[1]} priors per image, its priors file holds "
                             f"{len(self.priors)}: the files are of different exports")
        raw["priors"] = self.priors
        return raw

    def preprocess(self, images) -> torch.Tensor:
        """Images as :meth:`Yolact.preprocess` takes them -> [B,3,S,S] on the CPU."""
        return preprocess_images(as_image_list(images)[0], self.cfg.max_size, self.cfg.normalization, "cpu")

    def detect(self, raw: dict, image_sizes, **kwargs) -> list[Detections]:
        """:func:`yolact_edu.postprocess.detect` on the ONNX outputs."""
        return detect(raw, self.cfg, image_sizes, **kwargs)

    def predict(self, images, **detect_kwargs):
        """Images -> Detections (a list of them for a list of images or a 4-D tensor), as
        :meth:`Yolact.predict`."""
        image_list, batch = as_image_list(images)
        found = self.detect(self.raw(self.preprocess(image_list)), [image_size(im) for im in image_list],
                            **detect_kwargs)
        return found if batch else found[0]


__all__ = ["export_onnx", "OnnxYolact", "sidecar_paths", "require_onnxruntime", "OUTPUT_NAMES", "POSTPROCESSING"]
