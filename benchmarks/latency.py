"""Inference latency of YOLACT configs: median over repeated runs, one process, side by side.

    python benchmarks/latency.py                                  # CPU, fp32
    python benchmarks/latency.py --device cuda --precision fp32 fp16 --configs yolact_resnet50 yolact_base

Times two things per config: the network alone (preprocessed tensor -> raw outputs) and the
whole ``predict`` (uint8 image -> Detections with masks at image size). Weights are random
with a sharpened class head, so post-processing sees a realistic number of candidates.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import yolact_edu as ye
from yolact_edu.bench.timing import machine_name, median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["yolact_tiny", "yolact_resnet50", "yolact_base"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    device = torch.device(args.device)
    image = (np.random.RandomState(0).rand(480, 640, 3) * 255).astype(np.uint8)
    print(f"# {machine_name(device)} | torch {torch.__version__} | batch {args.batch} | "
          f"median of {args.repeats} runs after {args.warmup} warm-up")
    print("| config | input | precision | network ms | predict ms | predict FPS |")
    print("|---|---|---|---|---|---|")
    for name in args.configs:
        torch.manual_seed(0)
        model = ye.Yolact(name).eval().to(device)
        with torch.no_grad():
            model.prediction_layers[0].conf_layer.weight.mul_(20)
        images = [image] * args.batch
        x = model.preprocess(images)
        for precision in args.precision:
            autocast = None if precision == "fp32" else precision

            def network(model=model, x=x, autocast=autocast):
                with torch.no_grad(), model.autocast_context(autocast, device):
                    model(x)

            def predict(model=model, images=images, autocast=autocast):
                model.predict(images, autocast=autocast)

            net_ms = 1000 * median_seconds(network, args.repeats, args.warmup, device)
            pred_ms = 1000 * median_seconds(predict, args.repeats, args.warmup, device)
            print(f"| {name} | {model.cfg.max_size} | {precision} | {net_ms:.1f} | {pred_ms:.1f} | "
                  f"{1000 * args.batch / pred_ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
