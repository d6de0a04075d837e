"""Training throughput of yolact_tiny as the demo trains it, fp32 against the fast settings.

    python benchmarks/training_speed.py                  # fp32, channels-last, bf16, both; 3 rounds
    python benchmarks/training_speed.py --steps 40 --rounds 5
    python benchmarks/training_speed.py --device cuda --config yolact_resnet50 --batch-size 32 \
        --workers 8 --settings fp32,amp,amp+cl           # a GPU: AMP (fp16 + gradient scaler)

One process, one Trainer per setting over the same shapes train split (the demo's: batch 8,
256 px, light augmentation), interleaved round by round so that drift of the machine hits every
setting alike. Each round times ``--steps`` optimiser steps after the loader has produced the
batch (the first 3 of a round untimed), then the loader alone on as many batches; the report gives
the median images/s of the steps, of steps plus loading (what a run sees), and the ratio to the first setting.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from yolact_edu.bench.timing import clock, machine_name
from yolact_edu.build import build_model
from yolact_edu.config import get_config
from yolact_edu.data import CocoDataset
from yolact_edu.data.shapes import make_shapes
from yolact_edu.training.trainer import Trainer

SETTINGS = {"fp32": {"amp": False}, "cl": {"amp": False, "channels_last": True},
            "amp": {"amp": True}, "amp+cl": {"amp": True, "channels_last": True},
            "bf16": {"amp": "bf16"}, "bf16+cl": {"amp": "bf16", "channels_last": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default="data/shapes")
    parser.add_argument("--config", default="yolact_tiny")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--settings", default="fp32,cl,bf16,bf16+cl", help=f"from {', '.join(SETTINGS)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.settings.split(",")]
    paths = make_shapes(args.data)
    cfg = get_config(args.config)
    train_set = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=cfg.max_size,
                            augment=cfg.augmentation, verbose=False)
    cfg = cfg.with_classes(train_set.class_names)
    trainers = {}
    for name in chosen:
        torch.manual_seed(0)
        trainer = Trainer(build_model(cfg), train_set, out_dir=tempfile.mkdtemp(), max_iter=100_000,
                          device=args.device, batch_size=args.batch_size, num_workers=args.workers,
                          progress=False, log_every=100_000, checkpoint_every=100_000, **SETTINGS[name])
        trainers[name] = [trainer, iter(trainer.loader)]
    device = torch.device(args.device)

    def next_batch(entry):
        try:
            return next(entry[1])
        except StopIteration:                       # a new epoch
            entry[1] = iter(entry[0].loader)
            return next(entry[1])

    steps = {name: [] for name in chosen}
    loading = []
    for round_index in range(args.rounds):
        for name, entry in trainers.items():
            times = []
            for _ in range(args.steps):
                images, targets = next_batch(entry)
                start = clock(device)
                entry[0].step(images, targets)
                times.append(clock(device) - start)
            steps[name].append(entry[0].batch_size * (args.steps - 3) / sum(times[3:]))
        entry = trainers[chosen[0]]
        start = time.perf_counter()
        for _ in range(args.steps):
            next_batch(entry)
        loading.append(entry[0].batch_size * args.steps / (time.perf_counter() - start))
        print(f"round {round_index + 1}: " + ", ".join(f"{n} {steps[n][-1]:.1f}" for n in chosen), flush=True)
    load = statistics.median(loading)
    batch = trainers[chosen[0]][0].batch_size
    print(f"\n{machine_name(device)}, torch {torch.__version__}; {cfg.name}, batch {batch}, {cfg.max_size} px, "
          f"{args.workers} loader workers; medians of {args.rounds} rounds of {args.steps} steps; loading alone "
          f"{load:.0f} images/s\n")
    print(f"| setting | steps images/s | with loading images/s | vs {chosen[0]} |\n|---|---|---|---|")
    base = None
    for name in chosen:
        rate = statistics.median(steps[name])
        overall = 1.0 / (1.0 / rate + 1.0 / load)
        base = base or overall
        print(f"| {name} | {rate:.1f} | {overall:.1f} | {overall / base:.2f}x |")


if __name__ == "__main__":
    main()
