"""Where a training step of yolact_tiny goes (issue 28): loading, forward (by network part), loss,
backward and the optimiser, as the demo trains it.

    python benchmarks/training_step.py                      # fp32, contiguous and channels-last
    python benchmarks/training_step.py --steps 30 --settings cl

One process, one Trainer per setting on the shapes train split (batch 8, 256 px, light
augmentation, no loader workers), settings interleaved step by step so drift of the machine hits
each alike; the first 3 steps of each are untimed. Each phase is the Trainer's own code run in
order: the loader's next batch, ``model(images)`` (with forward hooks on the backbone, FPN,
protonet and head), ``criterion(raw, targets)``, ``loss.backward()`` and ``optimizer.step()``.
Prints median milliseconds per phase and its share of the step.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from yolact_edu.bench.speed import part_timer
from yolact_edu.bench.timing import clock, machine_name
from yolact_edu.build import build_model
from yolact_edu.config import get_config
from yolact_edu.data import CocoDataset
from yolact_edu.data.shapes import make_shapes
from yolact_edu.training.trainer import Trainer

SETTINGS = {"fp32": {}, "cl": {"channels_last": True}}
PHASES = ("load batch", "forward", "loss", "backward", "optimizer")


def timed_step(trainer: Trainer, batches) -> dict[str, float]:
    """One optimiser step of ``trainer`` split into phases (seconds); the forward's parts too."""
    device = trainer.device
    times: dict[str, float] = {}
    start = clock(device)
    images, targets = next(batches)
    images = images.to(device)
    if trainer.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    loaded = clock(device)
    with part_timer(trainer.model, times, device):
        raw = trainer.network(images)
    forward = clock(device)
    losses = trainer.criterion({k: v.float() for k, v in raw.items()}, targets)
    total = sum(losses.values())
    trainer.optimizer.zero_grad(set_to_none=True)
    computed = clock(device)
    total.backward()
    backward = clock(device)
    trainer.optimizer.step()
    done = clock(device)
    times.update({"load batch": loaded - start, "forward": forward - loaded, "loss": computed - forward,
                  "backward": backward - computed, "optimizer": done - backward})
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--data", default="data/shapes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--settings", default="fp32,cl", help=f"from {', '.join(SETTINGS)}")
    args = parser.parse_args()
    paths = make_shapes(args.data)
    cfg = get_config("yolact_tiny")
    train_set = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=cfg.max_size,
                            augment=cfg.augmentation, verbose=False)
    cfg = cfg.with_classes(train_set.class_names)
    runs = {}
    for name in args.settings.split(","):
        torch.manual_seed(0)
        trainer = Trainer(build_model(cfg), train_set, out_dir=tempfile.mkdtemp(), max_iter=100_000,
                          device=args.device, amp=False, progress=False, **SETTINGS[name])
        trainer.sampler.set_epoch(0)
        runs[name] = (trainer, iter(trainer.loader), [])
    for step in range(args.steps + 3):
        for trainer, batches, records in runs.values():
            times = timed_step(trainer, batches)
            if step >= 3:
                records.append(times)
    print(f"yolact_tiny, batch {cfg.batch_size}, {cfg.max_size} px, {args.steps} steps per setting; "
          f"{machine_name(args.device)}")
    for name, (_, _, records) in runs.items():
        step = statistics.median(sum(r[p] for p in PHASES) for r in records)
        print(f"\n{name}: {step * 1e3:.0f} ms per step ({cfg.batch_size / step:.1f} images/s)")
        print("| phase | ms | share |\n|---|---|---|")
        for phase in PHASES:
            ms = statistics.median(r[phase] for r in records) * 1e3
            print(f"| {phase} | {ms:.1f} | {ms / (step * 1e3):.0%} |")
        for part in ("backbone", "FPN", "protonet", "head"):
            values = [r.get(part, 0.0) for r in records]
            ms = statistics.median(values) * 1e3
            print(f"| forward: {part} | {ms:.1f} | {ms / (step * 1e3):.0%} |")


if __name__ == "__main__":
    main()
