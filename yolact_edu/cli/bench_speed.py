"""``yolact-edu bench speed``: end-to-end and per-stage inference speed, eager against the fast path
(and optionally against torchvision's Mask R-CNN R50-FPN), in one process; a table and JSON."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    add_device_option,
    device,
    formatter,
    non_negative_int,
    output_folder,
    positive_int,
    positive_int_list,
    refuse_bf16_option,
)


def image_size(text: str) -> tuple[int, int]:
    """"640x480" (width x height) -> (height, width)."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (positive_int(height), positive_int(width))
    except argparse.ArgumentTypeError:
        size = None
    if not sep or size is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return size


def config_names(text: str) -> list[str]:
    from ..config import get_config, list_configs
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        try:
            get_config(name)
        except (KeyError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"{name} is not a YOLACT config; choose from "
                                             f"{', '.join(list_configs())}") from exc
    if not names:
        raise argparse.ArgumentTypeError(f"no config named in {text!r}")
    return names


def add_parser(kinds) -> None:
    speed = kinds.add_parser(
        "speed", formatter_class=formatter,
        help="inference speed: eager vs the fast path, end to end and per stage (table + JSON)",
        description="Time model.predict on uint8 images (image-size masks out, the output forced to --detections "
                    "per image) for each config and batch size, eager fp32 and the fast path (model.optimize(): "
                    "BatchNorm folded, channels-last, autocast), medians after warm-up, "
                    "all in one process; then the same calls stage by stage (preprocess, backbone, FPN, protonet, "
                    "head, NMS, assembly, upsampling). Random weights: the cost does not depend on them.",
        epilog="examples:\n"
               "  yolact-edu bench speed                                          # yolact_resnet50, CPU, 640x480\n"
               "  yolact-edu bench speed --maskrcnn --output outputs/bench/speed_cpu.json\n"
               "  yolact-edu bench speed --device cuda --configs yolact_resnet50,yolact_base --batch 1,32 "
               "--image-size 550x550 --compile")
    speed.add_argument("--configs", type=config_names, default=None,
                       help="comma-separated YOLACT configs, random weights (default: yolact_resnet50)")
    speed.add_argument("--weights", help="time this trained YOLACT checkpoint instead (its boxes have real sizes, "
                                         "which the upsampling's cost follows)")
    speed.add_argument("--image", help="an image file to time on instead of the bundled sample (resized to "
                                       "--image-size only if that is given)")
    speed.add_argument("--batch", type=positive_int_list("batch sizes"), default=[1],
                       help="batch sizes, e.g. 1,8,32 (default: 1)")
    speed.add_argument("--image-size", type=image_size, default=None, metavar="WxH",
                       help="size of the test image (default: 640x480 for the bundled sample; --image's own)")
    speed.add_argument("--detections", type=positive_int, default=100,
                       help="detections per image, forced (default: %(default)s)")
    speed.add_argument("--fast", choices=("both", "on", "off"), default="both",
                       help="time eager, the fast path, or both (default: %(default)s)")
    speed.add_argument("--autocast", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                       help="the fast path's precision (default: auto = fp16 on CUDA, bf16 on CPUs with native "
                            "bf16, else fp32; bf16 is refused on a CPU without it)")
    speed.add_argument("--compile", action="store_true",
                       help="torch.compile the fast path's network (meant for GPUs; compiling counts as warm-up)")
    speed.add_argument("--maskrcnn", action="store_true",
                       help="also time torchvision's Mask R-CNN R50-FPN (eager fp32, batch 1, same image, same "
                            "forced detections) for the ratio")
    speed.add_argument("--repeats", type=positive_int, default=10, help="timed runs per row (default: %(default)s)")
    speed.add_argument("--warmup", type=non_negative_int, default=3, help="untimed runs first (default: %(default)s)")
    speed.add_argument("--no-stages", action="store_true", help="end-to-end times only")
    speed.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random weights (default: 0)")
    add_device_option(speed)
    speed.add_argument("--output", default="outputs/bench/speed.json", help="JSON file (default: %(default)s)")
    speed.add_argument("--force", action="store_true", help="replace an --output file yolact-edu did not write")


def run(args) -> int:
    import json
    import shlex
    import sys

    import cv2
    import torch

    from ..bench import speed
    from ..build import build_model
    from ..config import YolactConfig
    from ..data.images import read_image, sample_image
    from ..model.fast_path import autocast_reason
    from ..training.checkpoint import load_model

    if args.weights and args.configs:
        raise ValueError("give --configs (random weights) or --weights (a trained model), not both")
    refuse_bf16_option(args, args.autocast == "bf16")
    output = Path(args.output)
    outputs = output_folder(args, output.parent)
    outputs.check([output.name])
    chosen = device(args.device)
    image = read_image(args.image) if args.image else sample_image()
    if args.image_size or not args.image:
        height, width = args.image_size or (480, 640)
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    height, width = image.shape[:2]
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.fast]
    rows = []
    for name in ([None] if args.weights else args.configs or ["yolact_resnet50"]):
        torch.manual_seed(args.seed)
        if name is None:
            eager = load_model(args.weights, device=chosen).float().eval()
            name = eager.cfg.name
            if not isinstance(eager.cfg, YolactConfig):
                raise ValueError(f"{args.weights} holds a {eager.cfg.family} model; bench speed times YOLACT")
        else:
            eager = build_model(name).eval().to(chosen)
        for fast in modes:
            model = eager.optimize(autocast=args.autocast, compile=args.compile) if fast else eager
            dtype = (model.fast_path.autocast or "fp32") if fast else "fp32"
            for batch in args.batch:
                row = speed.speed_row(model, [image] * batch, detections=args.detections, repeats=args.repeats,
                                      warmup=args.warmup, stages=not args.no_stages)
                row.update(config=name, device=str(chosen), dtype=dtype, fast=fast,
                           fast_path=model.fast_path.describe() if fast else None)
                rows.append(row)
                print(f"{name} batch {batch} {'fast ' + dtype if fast else 'eager fp32'}: "
                      f"{row['fps']:.1f} images/s ({row['e2e_ms']:.1f} ms per batch)", file=sys.stderr)
    if args.maskrcnn:
        from ..lessons.two_ways.maskrcnn import maskrcnn_model
        from ..relatives.maskrcnn import fixed_output_count
        torch.manual_seed(args.seed)
        rcnn = maskrcnn_model("none", verbose=False).to(chosen)
        with fixed_output_count(rcnn, args.detections):
            row = speed.maskrcnn_row(rcnn, image, repeats=args.repeats, warmup=args.warmup)
        row.update(config=speed.MASKRCNN, device=str(chosen), dtype="fp32", fast=False, fast_path=None)
        rows.append(row)
    result = {"environment": speed.environment(chosen), "command": shlex.join(["yolact-edu", *sys.argv[1:]]),
              "settings": {"image_size": [height, width], "image": args.image or "bundled sample",
                           "weights": args.weights or "random", "detections": args.detections,
                           "repeats": args.repeats, "warmup": args.warmup, "compile": args.compile,
                           "autocast": args.autocast},
              "rows": rows, "ratios": speed.speed_ratios(rows)}
    env = result["environment"]
    print(f"{env['machine']}, torch {env['torch']}" + (f", CUDA {env['cuda']}, driver {env['driver']}"
                                                      if "cuda" in env else ""))
    if chosen.type == "cpu":      # the flags that decided the fast path's precision ("auto")
        print(f"CPU: {env['cpu']}; {autocast_reason(chosen)}")
    print(f"{width}x{height} image, {args.detections} detections per image, median of {args.repeats} after "
          f"{args.warmup} warm-up; stage times are the whole batch's, in ms\n")
    print(speed.speed_table(rows))
    for ratio in result["ratios"]:
        print(f"{ratio['config']} batch {ratio['batch']}: {ratio['what']} = {ratio['ratio']:.2f}x")
    print(f"wrote {outputs.write_bytes(output.name, (json.dumps(result, indent=1) + chr(10)).encode())}")
    return 0


__all__ = ["add_parser", "run"]
