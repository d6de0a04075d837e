"""The ``yolact-edu`` command line.

    yolact-edu demo                          # train + evaluate yolact_tiny on synthetic shapes
    yolact-edu train --train-annotations a.json --train-images imgs/ --config yolact_resnet50
    yolact-edu eval --weights outputs/demo/yolact_tiny_shapes.pth
    yolact-edu video clip.mp4 --weights outputs/demo/yolact_tiny_shapes.pth
    yolact-edu predict                       # bundled sample, untrained yolact_tiny -> outputs/predict/
    yolact-edu predict photo.jpg --weights yolact_base_54_800000.pth
    yolact-edu weights download yolact_resnet50
    yolact-edu configs
    yolact-edu data shapes                   # the synthetic COCO-format set -> data/shapes/
    yolact-edu bench compare                 # YOLACT vs Mask R-CNN, same data, same machine
    yolact-edu bench speed                   # eager vs the fast path, end to end and per stage
    yolact-edu export --format onnx --weights w.pth --output w.onnx
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings

from . import bench, configs, data, demo, export, predict, train, video, weights
from . import eval as evaluate
from .common import cli_wording, debug_requested, describe_error, formatter

# One module per command, each with add_parser(sub) and run(args), in the order `--help` lists them.
COMMANDS = {"predict": predict, "weights": weights, "configs": configs, "data": data, "demo": demo,
            "train": train, "eval": evaluate, "video": video, "bench": bench, "export": export}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolact-edu", formatter_class=formatter,
        description="Learn, run and retrain YOLACT / YOLACT++ real-time instance segmentation.",
        epilog="examples:\n  yolact-edu demo\n  yolact-edu predict\n  yolact-edu weights list\n  yolact-edu configs\n"
               "run 'yolact-edu COMMAND --help' for the options of a command; errors are one line, "
               "add --debug anywhere for the traceback.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived (``timeout``, ``kill``, ``docker stop``): raised like Ctrl+C's KeyboardInterrupt,
    so every command's clean-up runs (temporary files removed) before the process ends with 143.
    ``train`` installs its own handler while it trains: it stops at the next step with a checkpoint."""


def _terminate(_number, _frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status. Every error becomes one line on stderr
    ("error: ..." naming the file and the cause); ``--debug`` (or $YOLACT_EDU_DEBUG=1) shows the
    traceback instead."""
    debug, argv = debug_requested(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    handlers = {name: command.run for name, command in COMMANDS.items()}
    python_format = warnings.formatwarning
    if not debug:       # a warning is one line too, without the source line Python appends
        warnings.formatwarning = lambda message, category, *_args, **_kwargs: f"warning: {cli_wording(str(message))}\n"
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        if debug:
            raise
        print("terminated (SIGTERM)", file=sys.stderr)
        return 143
    except Exception as exc:            # the CLI boundary: nothing escapes as a raw traceback
        if debug:
            raise
        # an ImportError's message says what to install: no traceback hint needed
        known = isinstance(exc, (OSError, ValueError, KeyError, ImportError))
        hint = "" if known else f" ({type(exc).__name__}; run with --debug for the traceback)"
        print(f"error: {describe_error(exc)}{hint}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = python_format
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


__all__ = ["main", "build_parser", "COMMANDS"]
