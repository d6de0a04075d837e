"""The main job: train ``yolact_tiny`` on the bundled synthetic shapes set and show what it learnt.

    yolact-edu demo            # about 8 minutes on a 2-core CPU, much less on a GPU
    yolact-edu demo --quick    # about a minute: the same steps, far too short to learn much

Steps: create the shapes set if missing -> train -> COCO box and mask AP on the val split ->
write to ``out_dir``: the checkpoint, detections drawn on val images, the prototype grid of one
val image, the loss curve and ``metrics.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..config import get_config
from ..data import CocoDataset, make_shapes
from ..files.output_folder import OutputFolder
from ..model import Yolact
from ..training.distributed import default_device
from ..training.evaluation import evaluate
from ..training.log import LOSS_CURVE, write_run_figures
from ..training.trainer import Trainer
from ..viz.draw import draw_detections, encode_image, prototype_grid
from .common import (
    SHAPES_ROOT,
    add_device_option,
    command_inputs,
    formatter,
    non_negative_int,
    positive_int,
    refuse_bf16_option,
)
from .common import device as chosen_device

# Full demo: iterations of yolact_tiny at its batch size. Quick: enough to exercise every step.
FULL_ITERATIONS = None          # None: the config's own max_iter
QUICK_ITERATIONS = 40
QUICK_VAL_IMAGES = 20
CHECKPOINT = "yolact_tiny_shapes.pth"


def run_demo(out_dir: str | Path = "outputs/demo", data_root: str | Path = "data/shapes", *,
             quick: bool = False, max_iter: int | None = None, device: str | torch.device | None = None,
             seed: int = 0, num_drawn: int = 8, progress: bool = True, force: bool = False,
             fast: bool = False, protect=()) -> dict:
    """Train, evaluate and draw; returns the metrics dict also written to ``metrics.json``.

    fast: train under bf16 autocast in channels-last (``yolact-edu train --fast``).

    Files in ``out_dir`` that an earlier demo wrote are replaced; a file of the user's in the way
    stops it before training (:class:`~yolact_edu.files.output_folder.OutputConflict`) unless ``force``;
    the files and folders in ``protect`` (the command's inputs) never."""
    start = time.perf_counter()
    out_dir, data_root = Path(out_dir), Path(data_root)
    device = torch.device(device) if device is not None else default_device()
    paths = make_shapes(data_root, progress=progress)          # reused when already complete
    cfg = get_config("yolact_tiny")
    train_set = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=cfg.max_size,
                            augment=cfg.augmentation, verbose=False)        # yolact_tiny's: "light"
    val_set = CocoDataset(paths["val_annotations"], paths["val_images"], max_size=cfg.max_size, verbose=False)
    cfg = cfg.with_classes(train_set.class_names)
    if max_iter is None:
        max_iter = QUICK_ITERATIONS if quick else FULL_ITERATIONS
    # Every output name is checked before training, so a file of the user's stops the demo at once,
    # not after minutes of training.
    outputs = OutputFolder(out_dir, force=force, protect=protect)
    drawn_names = [f"detections/{Path(str(val_set.image_info(i)['file_name'])).stem}.png"
                   for i in range(min(num_drawn, len(val_set)))]
    outputs.check([CHECKPOINT, "prototypes.png", LOSS_CURVE, "metrics.json", *drawn_names])
    torch.manual_seed(seed)
    model = Yolact(cfg)
    run_dir = out_dir / "train"
    OutputFolder(run_dir).clear()            # a demo starts afresh (`yolact-edu train` resumes): the
                                             # earlier demo's files go, anything else there stays
    print(f"training {cfg.name} on {len(train_set)} synthetic images ({device}); "
          f"Ctrl+C stops early and still evaluates")
    trainer = Trainer(model, train_set, out_dir=run_dir, max_iter=max_iter, device=device, seed=seed,
                      checkpoint_every=10**9, keep_checkpoints=1, log_every=5 if quick else 20,
                      progress=progress, amp="bf16" if fast else True, channels_last=fast)
    summary = trainer.run()
    train_seconds = time.perf_counter() - start

    val_images = QUICK_VAL_IMAGES if quick else None
    result = evaluate(trainer.model, val_set, max_images=val_images, progress=progress, verbose=False)
    model = trainer.model.eval()
    checkpoint = outputs.write_bytes(CHECKPOINT, Path(summary["checkpoint"]).read_bytes(), fsync=True)
    drawn = _draw_val_detections(model, val_set, outputs, drawn_names)
    outputs.write_bytes("prototypes.png", encode_image(prototype_grid(_prototypes(model, val_set, 0))))
    write_run_figures(outputs, "yolact_tiny on the shapes set", log=run_dir / "log.csv")

    metrics = {"config": cfg.name, "device": str(device), "quick": quick,
               "iterations": summary["iteration"], "interrupted": summary["interrupted"],
               "skipped_steps": summary["skipped_steps"], "train_seconds": round(train_seconds, 1),
               "val_images": result["num_images"],
               "box_AP": result["bbox"]["AP"], "box_AP50": result["bbox"]["AP50"],
               "mask_AP": result["segm"]["AP"], "mask_AP50": result["segm"]["AP50"],
               "mask_AP75": result["segm"]["AP75"], "bbox": result["bbox"], "segm": result["segm"],
               "checkpoint": str(checkpoint), "drawn": [str(p) for p in drawn],
               "total_seconds": round(time.perf_counter() - start, 1)}
    outputs.write_text("metrics.json", json.dumps(metrics, indent=1))
    print(f"box AP {metrics['box_AP']:.3f} (AP50 {metrics['box_AP50']:.3f}), "
          f"mask AP {metrics['mask_AP']:.3f} (AP50 {metrics['mask_AP50']:.3f}) "
          f"on {metrics['val_images']} val images; {metrics['total_seconds']:.0f} s in all")
    print(f"outputs in {out_dir}/: yolact_tiny_shapes.pth, detections/, prototypes.png, loss_curve.png, "
          "metrics.json")
    return metrics


def _draw_val_detections(model, dataset, outputs: OutputFolder, names: list[str],
                         score_threshold: float = 0.3) -> list[Path]:
    written = []
    for index, name in enumerate(names):
        image = dataset.load_image(index)
        if image is None:
            continue
        with torch.no_grad():
            detections = model.predict(image).cpu().filter(score_threshold)
        written.append(outputs.write_bytes(name, encode_image(draw_detections(image, detections))))
    return written


def _prototypes(model, dataset, index: int) -> torch.Tensor:
    image = dataset.load_image(index)
    with torch.no_grad():
        return model(model.preprocess(image))["proto"][0]


def add_parser(sub) -> None:
    demo = sub.add_parser(
        "demo", help="train yolact_tiny on the synthetic shapes set, evaluate, draw (the main job)",
        formatter_class=formatter,
        description="Create the synthetic shapes set if missing, train yolact_tiny on it (GPU if present), "
                    "evaluate box and mask AP on its val split and write the checkpoint, drawn detections, "
                    "the prototype grid, the loss curve and metrics.json.",
        epilog="examples:\n  yolact-edu demo                 # ~8 min on a 2-core CPU\n"
               "  yolact-edu demo --quick         # ~1 min, checks every step\n"
               "  yolact-edu demo --device cuda --output outputs/demo_gpu")
    demo.add_argument("--quick", action="store_true", help="a few iterations only (what CI runs)")
    demo.add_argument("--output", default="outputs/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--data", default=SHAPES_ROOT, help="shapes set folder, made if missing (default: %(default)s)")
    demo.add_argument("--max-iter", type=positive_int, help="override the number of iterations")
    add_device_option(demo)
    demo.add_argument("--seed", type=non_negative_int, default=0)
    demo.add_argument("--fast", action="store_true",
                      help="train under bf16 autocast in channels-last: much faster on a GPU or a CPU with "
                           "native bf16 (AVX512-BF16 or AMX); refused on a CPU without it, where emulated bf16 "
                           "is slower than fp32 (docs/benchmarks.md has the figures)")
    demo.add_argument("--force", action="store_true",
                      help="replace files in the output folder that yolact-edu did not write")


def run(args) -> int:
    refuse_bf16_option(args, args.fast)
    chosen = chosen_device(args.device)
    run_demo(args.output, args.data, quick=args.quick, max_iter=args.max_iter, device=chosen,
             seed=args.seed, force=args.force, fast=args.fast, protect=command_inputs(args))
    return 0


__all__ = ["run_demo"]
