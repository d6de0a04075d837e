"""The main job: train ``yolact_tiny`` on the bundled synthetic shapes set and show what it learnt.

    yolact-edu demo               # about 9 minutes wherever it runs: the budget sets the iterations
    yolact-edu demo --minutes 5   # a shorter budget
    yolact-edu demo --max-iter N  # exactly N iterations (repeats a budgeted run: it prints its N)
    yolact-edu demo --quick       # about a minute: the same steps, far too short to learn much

Steps: create the shapes set if missing -> measure what a training iteration costs here and plan
the iterations that fit the budget (:mod:`yolact_edu.training.budget`) -> train -> COCO box and mask
AP on the val split -> write to ``out_dir``: the checkpoint, detections drawn on val images, the
prototype grid of one val image, the loss curve and ``metrics.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..bench.timing import machine_name, median_seconds
from ..config import get_config
from ..data import CocoDataset, make_shapes
from ..files.output_folder import OutputFolder
from ..lessons.tables import markdown_table
from ..model import Yolact
from ..training.budget import BudgetPlan, Deadline, plan_iterations, seconds_per_iteration
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
    positive_float,
    positive_int,
    refuse_bf16_option,
)
from .common import device as chosen_device

# The full demo's wall-clock budget, data and evaluation included: under the 10 minutes it promises,
# with room for a machine whose steps slow down after the probe. Quick: enough to exercise every step.
DEMO_MINUTES = 9.0
QUICK_ITERATIONS = 40
QUICK_VAL_IMAGES = 20
CHECKPOINT = "yolact_tiny_shapes.pth"


def run_demo(out_dir: str | Path = "outputs/demo", data_root: str | Path = "data/shapes", *,
             quick: bool = False, max_iter: int | None = None, minutes: float | None = None,
             device: str | torch.device | None = None, seed: int = 0, num_drawn: int = 8, progress: bool = True,
             force: bool = False, fast: bool = False, protect=()) -> dict:
    """Train, evaluate and draw; returns the metrics dict also written to ``metrics.json``.

    minutes: the wall-clock budget of the whole run (None: :data:`DEMO_MINUTES`), which sets the
    iteration count (:mod:`~yolact_edu.training.budget`); max_iter: train exactly this many
    iterations instead (a budgeted run records its count, so this repeats it); quick: a few
    iterations only. fast: train under bf16 autocast (``yolact-edu train --fast``; refused on a CPU
    without native bf16). Training always runs in channels-last memory format (faster on every CPU
    measured; the numbers differ from contiguous only by float rounding).

    Files in ``out_dir`` that an earlier demo wrote are replaced; a file of the user's in the way
    stops it before training (:class:`~yolact_edu.files.output_folder.OutputConflict`) unless ``force``;
    the files and folders in ``protect`` (the command's inputs) never."""
    if minutes is not None and (max_iter is not None or quick):
        raise ValueError("a time budget (--minutes) and an iteration count (--max-iter, --quick) are one choice: "
                         "give one of them")
    if minutes is not None and not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes!r}")
    start = time.perf_counter()
    out_dir, data_root = Path(out_dir), Path(data_root)
    device = torch.device(device) if device is not None else default_device()
    paths = make_shapes(data_root, progress=progress)          # reused when already complete
    cfg = get_config("yolact_tiny")
    train_set = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=cfg.max_size,
                            augment=cfg.augmentation, verbose=False)        # yolact_tiny's: "light"
    val_set = CocoDataset(paths["val_annotations"], paths["val_images"], max_size=cfg.max_size, verbose=False)
    cfg = cfg.with_classes(train_set.class_names)
    # Every output name is checked before training, so a file of the user's stops the demo at once,
    # not after minutes of training.
    outputs = OutputFolder(out_dir, force=force, protect=protect)
    drawn_names = [f"detections/{Path(str(val_set.image_info(i)['file_name'])).stem}.png"
                   for i in range(min(num_drawn, len(val_set)))]
    outputs.check([CHECKPOINT, "prototypes.png", LOSS_CURVE, "metrics.json", *drawn_names])
    torch.manual_seed(seed)
    model = Yolact(cfg)
    amp = "bf16" if fast else True
    plan = None
    if quick and max_iter is None:
        max_iter = QUICK_ITERATIONS
    if max_iter is None:
        plan = _plan(model, train_set, val_set, len(drawn_names), 60.0 * (minutes or DEMO_MINUTES), start,
                     device=device, amp=amp, seed=seed)
        max_iter = plan.iterations
    run_dir = out_dir / "train"
    OutputFolder(run_dir).clear()            # a demo starts afresh (`yolact-edu train` resumes): the
                                             # earlier demo's files go, anything else there stays
    print(f"training {cfg.name} on {len(train_set)} synthetic images ({device}) for {max_iter} iterations; "
          f"Ctrl+C stops early and still evaluates")
    trainer = Trainer(model, train_set, out_dir=run_dir, max_iter=max_iter, device=device, seed=seed,
                      checkpoint_every=10**9, keep_checkpoints=1, log_every=5 if quick else 20,
                      progress=progress, amp=amp, channels_last=True)
    deadline = None
    if plan is not None:           # steps that slow down after the probe must not break the budget
        deadline = Deadline(trainer, plan.training_seconds * DEADLINE_FACTOR + DEADLINE_SLACK)
        trainer.callbacks.append(deadline)
    summary = trainer.run()
    train_seconds = time.perf_counter() - start

    val_images = QUICK_VAL_IMAGES if quick else None
    result = evaluate(trainer.model, val_set, max_images=val_images, progress=progress, verbose=False)
    model = trainer.model.eval()
    checkpoint = outputs.write_bytes(CHECKPOINT, Path(summary["checkpoint"]).read_bytes(), fsync=True)
    drawn = _draw_val_detections(model, val_set, outputs, drawn_names)
    outputs.write_bytes("prototypes.png", encode_image(prototype_grid(_prototypes(model, val_set, 0))))
    write_run_figures(outputs, "yolact_tiny on the shapes set", log=run_dir / "log.csv")

    metrics = {"config": cfg.name, "device": str(device), "machine": machine_name(device), "quick": quick,
               "iterations": summary["iteration"], "interrupted": summary["interrupted"],
               "budget": None if plan is None else plan.as_dict(),
               "stopped_at_deadline": bool(deadline is not None and deadline.reached),
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
    if metrics["stopped_at_deadline"]:
        print(f"note: the steps ran slower than measured, so training stopped at iteration {summary['iteration']} "
              f"of {max_iter} to keep the budget")
    print(f"look at {out_dir}/: detections/*.png (what it finds), prototypes.png (its 32 prototypes), "
          f"loss_curve.png, metrics.json; {CHECKPOINT} is the model (yolact-edu predict --weights ...)")
    seed_option = f" --seed {seed}" if seed else ""
    if plan is not None and summary["iteration"] == max_iter:
        print(f"to repeat this run (exactly, on this machine): yolact-edu demo --max-iter {max_iter}{seed_option}")
    elif plan is not None:       # cut short (deadline, Ctrl+C): its schedule was planned for max_iter
        print(f"this run stopped at iteration {summary['iteration']} of the {max_iter} planned; "
              f"yolact-edu demo --max-iter {max_iter}{seed_option} trains all of them")
    return metrics


# The probe's step time is a median of a few steps: allow later steps to run this much slower before
# the deadline stops training (the budget's margin, DEMO_MINUTES < 10, absorbs the rest).
DEADLINE_FACTOR, DEADLINE_SLACK = 1.1, 10.0
# Evaluation, drawing and figures after training: COCOeval and the PNGs, beyond the predictions.
AFTER_TRAINING_SECONDS = 10.0


def _plan(model, train_set, val_set, num_drawn: int, budget: float, start: float, *, device, amp,
          seed: int) -> BudgetPlan:
    """Measure a training step and a prediction here, plan the iterations that fit ``budget`` (of a
    run that began at ``start``, a ``time.perf_counter()``) and say what the run will do and how long
    it expects to take."""
    print("measuring a training step on this machine ...")
    step = seconds_per_iteration(model, train_set, device=device, amp=amp, channels_last=True, seed=seed)
    predicted = _seconds_per_prediction(model, val_set, device)
    reserved = AFTER_TRAINING_SECONDS + (len(val_set) + num_drawn + 1) * predicted
    plan = plan_iterations(budget, time.perf_counter() - start, reserved, step)
    print(f"plan: {plan.iterations} iterations of batch {model.cfg.batch_size} at {model.cfg.max_size} px, "
          f"{step:.2f} s each on {machine_name(device)}: about {plan.training_seconds / 60:.1f} min of "
          f"training, then about {reserved:.0f} s to evaluate on {len(val_set)} val images and draw; about "
          f"{plan.expected_total / 60:.1f} min in all (budget {budget / 60:g} min, --minutes changes it)")
    return plan


def _seconds_per_prediction(model, dataset, device) -> float:
    """Seconds of ``predict`` on one val image (median of 2 after 1 untimed), on an eval-mode copy of
    ``model`` (an untrained model keeps every candidate: the slowest case)."""
    copied, image = model.eval_copy().to(device), dataset.load_image(0)
    return median_seconds(lambda: copied.predict(image, score_threshold=0.0), repeats=2, device=device)


# What a recorded run keeps of metrics.json (docs/demo_runs/*.json): no paths, which name the machine.
RECORDED_KEYS = ("machine", "device", "iterations", "budget", "stopped_at_deadline", "train_seconds",
                 "total_seconds", "val_images", "box_AP", "mask_AP", "mask_AP50", "command")


def recorded_run(metrics: dict, command: str) -> dict:
    """A demo's ``metrics.json`` as docs/demo_runs keeps it: ``command`` (how it was run) and the
    figures of :data:`RECORDED_KEYS`."""
    return {key: value for key, value in {**metrics, "command": command}.items() if key in RECORDED_KEYS}


def demo_runs_table(folder: str | Path) -> str:
    """The recorded demo runs in ``folder`` (``*.json`` of :func:`recorded_run`, by name) as the
    README's Markdown table: every figure read from the files."""
    rows = []
    for path in sorted(Path(folder).glob("*.json")):
        run = json.loads(path.read_text())
        budget = run.get("budget") or {}
        rows.append({"machine": run["machine"], "command": f"`{run['command']}`",
                     "budget": f"{budget['budget'] / 60:g} min" if budget else "-",
                     "iterations": run["iterations"],
                     "s / iteration": f"{budget['seconds_per_iteration']:.2f}" if budget else "-",
                     "data and training": f"{run['train_seconds']:.0f} s", "whole run": f"{run['total_seconds']:.0f} s",
                     "box AP": f"{run['box_AP']:.3f}", "mask AP": f"{run['mask_AP']:.3f}",
                     "mask AP50": f"{run['mask_AP50']:.3f}"})
    return markdown_table(rows)


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
        epilog="examples:\n  yolact-edu demo                 # ~9 min on any machine: the budget sets the iterations\n"
               "  yolact-edu demo --minutes 5     # a shorter budget\n"
               "  yolact-edu demo --max-iter 900  # exactly 900 iterations (repeats a budgeted run)\n"
               "  yolact-edu demo --quick         # ~1 min, checks every step\n"
               "  yolact-edu demo --device cuda --output outputs/demo_gpu")
    demo.add_argument("--quick", action="store_true", help="a few iterations only (what CI runs)")
    demo.add_argument("--output", default="outputs/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--data", default=SHAPES_ROOT, help="shapes set folder, made if missing (default: %(default)s)")
    demo.add_argument("--minutes", type=positive_float,
                      help=f"wall-clock budget of the whole run, which sets the iteration count from a step "
                           f"measured on this machine (default: {DEMO_MINUTES:g})")
    demo.add_argument("--max-iter", type=positive_int,
                      help="train exactly this many iterations instead of a budget (the demo prints the count "
                           "a budgeted run reached, so this repeats it)")
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
    run_demo(args.output, args.data, quick=args.quick, max_iter=args.max_iter, minutes=args.minutes,
             device=chosen, seed=args.seed, force=args.force, fast=args.fast, protect=command_inputs(args))
    return 0


__all__ = ["run_demo", "recorded_run", "demo_runs_table", "DEMO_MINUTES", "RECORDED_KEYS"]
