"""The ``yolact-edu video`` subcommand: a video file or a webcam -> an annotated video.

    yolact-edu video street.mp4 --weights yolact_base_54_800000.pth
    yolact-edu video 0 --max-frames 300          # webcam 0, untrained yolact_tiny
"""
from __future__ import annotations

import argparse
from pathlib import Path


def default_output(source: str) -> Path:
    """outputs/video/<stem>_annotated.mp4 for a file, outputs/video/webcam<N>.mp4 for a webcam."""
    from .video import is_webcam
    if is_webcam(source):
        return Path("outputs/video") / f"webcam{int(source)}.mp4"
    return Path("outputs/video") / f"{Path(source).stem}_annotated.mp4"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``video`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``); returns it."""
    from .cli import _formatter  # lazy: cli imports this module to wire the command in
    video = subparsers.add_parser(
        "video", help="segment a video file or a webcam stream into an annotated video",
        formatter_class=_formatter,
        description="Run a model on every frame of a video (or a webcam) and write the drawn "
                    "detections with a frames-per-second overlay. Ctrl+C stops and keeps the "
                    "frames done so far.",
        epilog="examples:\n"
               "  yolact-edu video clip.mp4 --max-frames 20                # untrained model\n"
               "  yolact-edu video street.mp4 --weights weights/yolact_base_54_800000.pth\n"
               "  yolact-edu video 0 --weights yolact_resnet50_54_800000.pth "
               "--device cuda --autocast fp16   # webcam 0")
    video.add_argument("source", help="a video file, or a webcam index such as 0")
    video.add_argument("--weights", help="checkpoint (.pth, yolact_edu or official); without it a "
                                         "randomly initialised model is used")
    video.add_argument("--config", help="config name (default: from the weights, else yolact_tiny)")
    video.add_argument("--output", help="annotated video, .mp4 or .avi (default: "
                                        "outputs/video/<source>_annotated.mp4, webcam: "
                                        "outputs/video/webcam<N>.mp4)")
    video.add_argument("--score-threshold", type=float, default=None,
                       help="hide detections scoring below this (default 0.15; 0 without weights)")
    video.add_argument("--top-k", type=int, default=15, help="draw at most this many (default: %(default)s)")
    video.add_argument("--nms", choices=("fast", "cross_class", "standard"), default="fast")
    video.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    video.add_argument("--autocast", choices=("fp16", "bf16"), help="mixed-precision inference")
    video.add_argument("--max-frames", type=int, help="stop after this many frames (default: all)")
    video.add_argument("--seed", type=int, default=0, help="seed of the random model (default: %(default)s)")
    return video


def run(args) -> int:
    """Execute the parsed ``video`` command; returns the exit status."""
    import torch

    from . import Yolact, get_config
    from .checkpoint import load_model
    from .cli import _device
    from .video import annotate_video

    device = _device(args.device)
    detect_kwargs = {}
    if args.weights:
        model = load_model(args.weights, config=args.config, device=device)
        threshold = 0.15 if args.score_threshold is None else args.score_threshold
    else:
        # An untrained model's softmax is nearly flat (~1/(C+1) per class), below the usual
        # candidate threshold; lower it so the video still shows the pipeline's output.
        detect_kwargs["conf_threshold"] = 0.0
        torch.manual_seed(args.seed)
        model = Yolact(get_config(args.config or "yolact_tiny")).eval().to(device)
        threshold = 0.0 if args.score_threshold is None else args.score_threshold
        print(f"note: no --weights given, using a randomly initialised {model.cfg.name} "
              f"(seed {args.seed}); its detections are meaningless until it is trained")
    output = Path(args.output) if args.output else default_output(args.source)
    stats = annotate_video(model, args.source, output, score_threshold=threshold, top_k=args.top_k,
                           nms=args.nms, autocast=args.autocast, max_frames=args.max_frames,
                           **detect_kwargs)
    stopped = " (stopped by Ctrl+C)" if stats["interrupted"] else ""
    print(f"{stats['frames']} frames in {stats['seconds']:.1f} s, {stats['fps']:.1f} FPS "
          f"(model + drawing){stopped} -> {stats['output']}")
    return 0
