"""The ``yolact-edu video`` subcommand: a video file or a webcam -> an annotated video.

    yolact-edu video street.mp4 --weights yolact_base_54_800000.pth
    yolact-edu video 0 --max-frames 300          # webcam 0, untrained yolact_tiny
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    add_inference_options,
    command_inputs,
    formatter,
    inference_model,
    positive_int,
    refuse_bf16_option,
)


def default_output(source: str) -> Path:
    """outputs/video/<stem>_annotated.mp4 for a file, outputs/video/webcam<N>.mp4 for a webcam."""
    from ..viz.video import is_webcam
    if is_webcam(source):
        return Path("outputs/video") / f"webcam{int(source)}.mp4"
    return Path("outputs/video") / f"{Path(source).stem}_annotated.mp4"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``video`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``); returns it."""
    video = subparsers.add_parser(
        "video", help="segment a video file or a webcam stream into an annotated video",
        formatter_class=formatter,
        description="Run a model on every frame of a video (or a webcam) and write the drawn "
                    "detections with a frames-per-second overlay. Ctrl+C stops and keeps the "
                    "frames done so far.",
        epilog="examples:\n"
               "  yolact-edu video clip.mp4 --max-frames 20                # untrained model\n"
               "  yolact-edu video street.mp4 --weights weights/yolact_base_54_800000.pth\n"
               "  yolact-edu video 0 --weights yolact_resnet50_54_800000.pth "
               "--device cuda --autocast fp16   # webcam 0")
    video.add_argument("source", help="a video file, or a webcam index such as 0")
    video.add_argument("--output", help="annotated video, .mp4 or .avi (default: "
                                        "outputs/video/<source>_annotated.mp4, webcam: "
                                        "outputs/video/webcam<N>.mp4)")
    video.add_argument("--max-frames", type=positive_int, help="stop after this many frames (default: all)")
    add_inference_options(video)
    return video


def run(args) -> int:
    """Execute the parsed ``video`` command; returns the exit status."""
    from ..viz.video import annotate_video, check_output

    refuse_bf16_option(args, args.autocast == "bf16")
    output = Path(args.output) if args.output else default_output(args.source)
    check_output(args.source, output, force=args.force, protect=command_inputs(args))   # before the model is built
    model, threshold, detect_kwargs = inference_model(args)
    stats = annotate_video(model, args.source, output, score_threshold=threshold, top_k=args.top_k,
                           autocast=args.autocast, max_frames=args.max_frames,
                           force=args.force, **detect_kwargs)
    stopped = " (stopped by Ctrl+C)" if stats["interrupted"] else ""
    print(f"{stats['frames']} frames in {stats['seconds']:.1f} s, {stats['fps']:.1f} FPS "
          f"(model + drawing){stopped} -> {stats['output']}")
    return 0
