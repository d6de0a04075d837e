"""Data-loading throughput: images/s of CocoDataset through a DataLoader.

    python benchmarks/data_loading.py                       # shapes set, 320 px, 0 and 2 workers
    python benchmarks/data_loading.py --max-size 550 --batches 30

Generates the synthetic shapes set under data/shapes if it is missing. For each setting
(augmented training samples or the eval transform, with 0 and 2 workers) it times
``--repeats`` passes over ``--batches`` batches, after one warm-up batch (worker start-up
excluded), and reports the median images/s and its ratio to the 0-worker figure.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader

from yolact_edu.data import CocoDataset, collate
from yolact_edu.data.shapes import make_shapes


def images_per_second(dataset, workers: int, batch_size: int, batches: int, repeats: int) -> float:
    rates = []
    for repeat in range(repeats):
        torch.manual_seed(repeat)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                            collate_fn=collate, persistent_workers=False)
        iterator = iter(loader)
        next(iterator)                            # warm-up: worker start-up is not throughput
        start = time.perf_counter()
        count = 0
        for _ in range(batches):
            images, _ = next(iterator)
            count += images.shape[0]
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data/shapes")
    parser.add_argument("--max-size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()

    paths = make_shapes(args.root)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores | torch {torch.__version__} | "
          f"{args.max_size} px | batch {args.batch_size} | {args.batches} batches, median of {args.repeats}")
    print("| samples | workers | images/s | vs 0 workers |")
    print("|---|---|---|---|")
    for augment in (True, False):
        dataset = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=args.max_size,
                              augment=augment, verbose=False)
        baseline = None
        for workers in args.workers:
            rate = images_per_second(dataset, workers, args.batch_size, args.batches, args.repeats)
            baseline = baseline or rate
            kind = "train (augmented)" if augment else "eval (resize only)"
            print(f"| {kind} | {workers} | {rate:.1f} | {rate / baseline:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
