"""int8 by onnxruntime's static quantisation, measured before it is offered (issue 28): does it keep
the fast path's guard and the AP, and is it faster than fp32 here?

    python benchmarks/int8_onnx.py                         # every scheme: guard + AP on yolact_tiny
    python benchmarks/int8_onnx.py --speed                 # and yolact_resnet50 at 640x480, 100 detections
    python benchmarks/int8_onnx.py --schemes backbone --images 100

The shipped ``yolact_tiny`` is exported (``export_onnx``), then quantised with
``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights, uint8 activations,
calibrated on ``--calibration`` shapes train images), in one of these schemes:

* ``all``: every operator onnxruntime can quantise;
* ``all-rr``: the same with ``reduce_range`` (7-bit weights), which onnxruntime advises on x86 CPUs
  without VNNI, where u8 x s8 products can saturate int16 in AVX2's ``vpmaddubsw``;
* ``convs-rr``: convolutions only, the output convolutions (box, class, coefficient and the last
  prototype layer) kept in fp32;
* ``backbone``: only the ResNet backbone's convolutions in int8, ``reduce_range``.

For each: the guard of the fast path against PyTorch fp32 (:func:`~yolact_edu.ops.agreement.detection_agreement`
on the detections scoring >= 0.3: same class, box within 1 px, mask IoU >= 0.95) on val images,
and COCO box and mask AP on the val split against the fp32 ONNX model's. ``--speed`` times the
same schemes on a random ``yolact_resnet50`` at 640x480 with 100 forced detections: eager PyTorch,
fp32 ONNX and each int8 file, interleaved, medians.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from yolact_edu.bench.speed import forced_detections
from yolact_edu.bench.timing import machine_name
from yolact_edu.build import build_model
from yolact_edu.deploy.onnx import OnnxModel, constant_path, description_path, export_onnx
from yolact_edu.files.download import file_sha256
from yolact_edu.lessons.pretrained import shapes_dataset, shipped_model
from yolact_edu.ops.agreement import detection_agreement
from yolact_edu.training.evaluation import coco_evaluate, detections_to_coco

SCHEMES = ("all", "all-rr", "convs-rr", "backbone")
OUTPUT_CONVS = ("mask_layer", "conf_layer", "bbox_layer", "proto_net.10")


def quantise(fp32: Path, target: Path, scheme: str, calibration: list[np.ndarray]) -> Path:
    """``fp32`` (an export_onnx file) -> ``target``, int8 by ``scheme``, with the export's JSON and
    constants beside it (the graph's SHA-256 updated) so :class:`OnnxModel` runs it."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter({"image": x} for x in calibration)

        def get_next(self):
            return next(self.items, None)

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    nodes = onnx.load(str(prepared)).graph.node
    exclude, op_types = [], None
    if scheme == "convs-rr":
        op_types = ["Conv"]
        exclude = [n.name for n in nodes if n.op_type == "Conv" and any(k in n.name for k in OUTPUT_CONVS)]
    elif scheme == "backbone":
        exclude = [n.name for n in nodes if "backbone" not in n.name]
    quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    reduce_range=scheme != "all", nodes_to_exclude=exclude, op_types_to_quantize=op_types)
    prepared.unlink()
    meta = json.loads(description_path(fp32).read_text())
    meta["graph_sha256"] = file_sha256(target)
    description_path(target).write_text(json.dumps(meta))
    for name in meta.get("constants", {}):
        shutil.copy(constant_path(fp32, name), constant_path(target, name))
    return target


def average_precision(runtime, dataset, count: int) -> dict:
    results = {"bbox": [], "segm": []}
    ids = []
    for index in range(count):
        found = runtime.predict(dataset.load_image(index), score_threshold=0.0)
        image_id = dataset.image_info(index)["id"]
        ids.append(image_id)
        for kind, entries in detections_to_coco(found, image_id, dataset.category_ids).items():
            results[kind] += entries
    metrics = coco_evaluate(dataset.coco, results, image_ids=ids, verbose=False)
    return {"box_AP": metrics["bbox"]["AP"], "mask_AP": metrics["segm"]["AP"]}


def accuracy(args, folder: Path) -> None:
    model = shipped_model("yolact_tiny")
    train, val = shapes_dataset("train"), shapes_dataset("val")
    calibration = [model.preprocess(train.load_image(i)).numpy() for i in range(args.calibration)]
    fp32 = export_onnx(model, folder / "yolact_tiny.onnx")
    runtimes = {"fp32": OnnxModel(fp32)}
    for scheme in args.schemes:
        runtimes[scheme] = OnnxModel(quantise(fp32, folder / f"yolact_tiny.{scheme}.onnx", scheme, calibration))
    print(f"shipped yolact_tiny, guard on val images 0-{args.images - 1} (detections >= 0.3), AP on the "
          f"{len(val)} val images; {machine_name()}")
    print("| model | guard holds | lowest mask IoU | largest box px | box AP | mask AP |\n|---|---|---|---|---|---|")
    for name, runtime in runtimes.items():
        holds, lowest, largest = 0, 1.0, 0.0
        for index in range(args.images):
            image = val.load_image(index)
            reference = model.predict(image)
            report = detection_agreement(reference[reference.scores >= 0.3], runtime.predict(image), top=20)
            holds += report["agrees"]
            lowest, largest = min(lowest, report["min_mask_iou"]), max(largest, report["max_box_px"])
        ap = average_precision(runtime, val, len(val))
        print(f"| {name} | {holds} of {args.images} | {lowest:.3f} | {largest:.0f} | {ap['box_AP']:.3f} | "
              f"{ap['mask_AP']:.3f} |", flush=True)


def speed(args, folder: Path) -> None:
    torch.manual_seed(0)
    model = build_model("yolact_resnet50").eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    calibration = [model.preprocess(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).numpy()
                   for _ in range(8)]
    fp32 = export_onnx(model, folder / "yolact_resnet50.onnx")
    forced = forced_detections(100)
    runs = {"eager PyTorch fp32": lambda: model.predict(image, **forced)}
    runs["ONNX fp32"] = (lambda runtime: lambda: runtime.predict(image, **forced))(OnnxModel(fp32))
    for scheme in args.schemes:
        runtime = OnnxModel(quantise(fp32, folder / f"yolact_resnet50.{scheme}.onnx", scheme, calibration))
        runs[f"ONNX int8 {scheme}"] = (lambda r: lambda: r.predict(image, **forced))(runtime)
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for round_ in range(args.repeats + 2):
            for name, call in runs.items():
                started = time.perf_counter()
                call()
                if round_ >= 2:
                    times[name].append(time.perf_counter() - started)
    eager = statistics.median(times["eager PyTorch fp32"])
    print(f"\nyolact_resnet50 (random weights), 640x480, 100 forced detections, median of {args.repeats}; "
          f"{machine_name()}")
    print("| run | ms | vs eager |\n|---|---|---|")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"| {name} | {ms * 1e3:.0f} | {ms / eager:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", type=lambda text: text.split(","), default=list(SCHEMES))
    parser.add_argument("--images", type=int, default=20, help="val images for the guard")
    parser.add_argument("--calibration", type=int, default=32, help="train images to calibrate on")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="int8_") as folder:
        accuracy(args, Path(folder))
        if args.speed:
            speed(args, Path(folder))


if __name__ == "__main__":
    main()
