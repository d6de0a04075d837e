"""What every ``yolact-edu`` subcommand shares: the help layout, argument types that refuse
nonsense up front, the model options of ``predict`` and ``video``, the output folder that never
replaces an input, and how an error becomes one line on the terminal.
"""
from __future__ import annotations

import argparse
import errno
import os

DEBUG_ENV = "YOLACT_EDU_DEBUG"


def formatter(prog):
    """The help layout of every command: descriptions and examples kept as written."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# -- outputs: every command writes through output_folder, which protects all that it reads -----
# The options that name where a command writes. Every other option whose value names an existing
# file or folder is an input of the command, and no output may replace it, not even with --force.
# (--resume names one of the run's own checkpoints, which the run may write again at that iteration.)
OUTPUT_OPTIONS = frozenset({"output", "out", "dir", "root", "plot", "resume"})


def command_inputs(args) -> list:
    """The existing files and folders that the parsed command line names outside its output options
    (``MODEL=PATH`` values count by their path): what the command may read."""
    from pathlib import Path

    def values(value):          # options given several times, or parsed into (name, path) pairs
        if isinstance(value, (list, tuple)):
            for item in value:
                yield from values(item)
        elif isinstance(value, (str, os.PathLike)):
            yield os.fspath(value)

    found = []
    for dest, value in vars(args).items():
        if dest in OUTPUT_OPTIONS:
            continue
        for text in values(value):
            for candidate in {text, text.partition("=")[2]} - {""}:
                if os.path.exists(candidate):
                    found.append(Path(candidate))
    return found


def output_folder(args, root, *, protect=(), **options):
    """The :class:`~yolact_edu.files.output_folder.OutputFolder` a command writes into: ``--force`` as
    given, and every input of the command line (:func:`command_inputs`) plus ``protect`` never
    replaced. Every command writes through this (``tests/test_inputs_protected.py`` checks each), so
    a new one gets the protection without having to remember it."""
    from ..files.output_folder import OutputFolder

    options.setdefault("force", bool(getattr(args, "force", False)))
    return OutputFolder(root, protect=[*command_inputs(args), *protect], **options)


# -- argument types: bad values are refused by argparse, before any work --------------------
def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _whole_number(text, 1)


def positive_int_list(what: str):
    """argparse type for "1,5,10" -> [1, 5, 10]: at least one whole number >= 1; an error names
    ``what`` the numbers are (e.g. "batch sizes")."""
    def parse(text: str) -> list[int]:
        try:
            values = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
        except argparse.ArgumentTypeError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what} (whole numbers >= 1), "
                                             f"got {text!r}")
        return values
    return parse


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _whole_number(text, 0)


def at_least(least: int):
    """argparse type: an integer >= ``least``."""
    def parse(text: str) -> int:
        return _whole_number(text, least)
    parse.__name__ = f"integer >= {least}"
    return parse


def _number(text: str, accept, requirement: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not accept(value):                   # NaN fails every comparison, so it lands here too
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1] (a score or IoU threshold)."""
    return _number(text, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate)."""
    return _number(text, lambda v: 0.0 < v < float("inf"), "a number > 0")


# -- the model options of predict and video ------------------------------------------------------
def device(name: str):
    """A torch device from ``--device``. "auto" follows the library's one rule,
    :func:`~yolact_edu.training.distributed.default_device`: this process's GPU (``cuda:LOCAL_RANK``
    under torchrun) when CUDA is available, else the CPU."""
    import torch

    from ..training.distributed import default_device
    if name == "auto":
        return default_device()
    try:
        chosen = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device {name!r} is not a device (cpu, cuda, cuda:1, ...): {exc}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return chosen


def add_device_option(parser) -> None:
    """``--device``, read by :func:`device`: the same option and help in every command."""
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:1 ... (default: auto, this process's GPU if CUDA is available)")


# Every family's NMS kinds (its ``nms_kinds``), written out so that building the parser imports no
# torch; tests/test_cli.py checks it against the families.
NMS_CHOICES = ("fast", "cross_class", "standard", "matrix")


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """The model and drawing options that ``predict`` and ``video`` share."""
    parser.add_argument("--weights", help="checkpoint (.pth, yolact_edu or official); without it a "
                                          "randomly initialised model is used")
    parser.add_argument("--config", help="config name (default: from the weights, else yolact_tiny)")
    parser.add_argument("--score-threshold", type=fraction, default=None,
                        help="hide detections scoring below this, 0..1 (default 0.15; 0 without weights)")
    parser.add_argument("--top-k", type=positive_int, default=15,
                        help="draw at most this many (default: %(default)s)")
    parser.add_argument("--nms", choices=NMS_CHOICES,
                        help="the suppression, one the model's family has (default: its own first; YOLACT: fast, "
                             "cross_class or standard; the README's table lists each family's)")
    add_device_option(parser)
    parser.add_argument("--autocast", choices=("fp16", "bf16"),
                        help="mixed-precision inference (bf16 on a CPU only where it has native bf16)")
    parser.add_argument("--fast", action="store_true",
                        help="the fast path (model.optimize(): BatchNorm folded, channels-last, autocast where "
                             "the hardware has it)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the random model (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace existing files that yolact-edu did not write (never the inputs)")


def refuse_bf16_option(args, asked: bool) -> None:
    """Refuse a bf16 option (``--autocast bf16``, ``--fast`` training) in one line when ``--device``
    is a CPU that would only emulate bf16; called first, so that nothing is written before."""
    if asked:
        from ..bench.cpu import refuse_emulated_bf16
        refuse_emulated_bf16(device(args.device))


def inference_model(args):
    """The model the options of :func:`add_inference_options` ask for, on its device, with the
    score threshold to draw at and extra ``detect`` keywords: (model, threshold, detect_kwargs)."""
    import torch

    from ..build import build_model
    from ..training.checkpoint import load_model

    chosen = device(args.device)
    if args.weights:
        model = load_model(args.weights, config=args.config, device=chosen)
        threshold, detect_kwargs = 0.15 if args.score_threshold is None else args.score_threshold, {}
    else:
        torch.manual_seed(args.seed)
        model = build_model(args.config or "yolact_tiny").eval().to(chosen)
        print(f"note: no --weights given, using a randomly initialised {model.cfg.name} "
              f"(seed {args.seed}); its detections are meaningless until it is trained")
        threshold = 0.0 if args.score_threshold is None else args.score_threshold
        # An untrained YOLACT's softmax is nearly flat (~1/(C+1) per class), below the usual 0.05
        # candidate threshold; lower it so the picture still shows the pipeline's output.
        # The relatives' sigmoid scores start near their prior_prob (0.01), below theirs too.
        detect_kwargs = {"conf_threshold": 0.0} if "conf_threshold" in model.detect_extras else {}
    if args.nms is not None:
        detect_kwargs["nms"] = args.nms
    model.checked_options(**detect_kwargs)       # e.g. an NMS the family does not have, refused now
    if getattr(args, "fast", False):
        model = model.optimize(autocast=args.autocast or "auto")
        print(f"fast path: {model.fast_path.describe()}")
    return model, threshold, detect_kwargs


# -- the default data: the bundled synthetic shapes set -----------------------------------------
SHAPES_ROOT = "data/shapes"


def shapes_paths(root: str = SHAPES_ROOT, variant: str = "plain") -> dict:
    """The shapes set's folders and annotation files (made if missing, with a progress bar), the
    data that ``train``, ``eval`` and ``demo`` use when given none; ``variant="crowded"`` (and the
    root's default for it) for its crowded variant."""
    import warnings

    from ..data import make_shapes
    from ..data.shapes import DEFAULT_ROOTS
    if variant != "plain" and root == SHAPES_ROOT:
        root = DEFAULT_ROOTS[variant]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = make_shapes(root, progress=True, variant=variant)
    for warning in caught:          # again, in the command line's words
        warnings.warn(cli_wording(str(warning.message)), warning.category, stacklevel=2)
    return paths


def checkpoint_val_set(args, checkpoint):
    """The images to score ``checkpoint`` on: ``args.annotations`` / ``args.images`` (both or
    neither; neither is the shapes val split), read at the checkpoint's input size and
    normalisation. Returns (CocoDataset, annotations path)."""
    from ..data import CocoDataset
    from ..training.checkpoint import read_checkpoint

    if bool(args.annotations) != bool(args.images):
        raise ValueError("give both --annotations and --images (or neither for the shapes val split)")
    cfg = read_checkpoint(checkpoint)["config"]
    annotations, images = args.annotations, args.images
    if not annotations:
        paths = shapes_paths()
        annotations, images = paths["val_annotations"], paths["val_images"]
    dataset = CocoDataset(annotations, images, max_size=cfg["max_size"], normalization=cfg["normalization"],
                          verbose=False)
    return dataset, annotations


# -- errors: one line each ---------------------------------------------------------------------
def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether ``--debug`` (anywhere on the line) or $YOLACT_EDU_DEBUG asks for tracebacks, and
    the arguments without it."""
    rest = [a for a in argv if a != "--debug"]
    return len(rest) != len(argv) or os.environ.get(DEBUG_ENV, "") not in ("", "0"), rest


# The library's messages name its Python keywords (``Trainer(resume="auto")``); on the terminal they
# name the options that set them. Python phrase -> the CLI's, longest first (a message that names
# both, "resume='auto' (--resume auto)", keeps one). tests/test_cli_wording.py checks that each
# phrase still occurs in the library.
CLI_WORDING = (
    ("resume='auto' (--resume auto)", "--resume auto"),
    ("resume='auto'", "--resume auto"),
    ("force=True", "--force"),
    ("tensorboard=True", "--tensorboard"),
    ("lower batch_size", "lower --batch-size"),
    ("pass overwrite=True to regenerate", "regenerate it with: yolact-edu data shapes --force"),
    ("pass images_from=<local COCO image folder>", "pass --images-from with the local COCO image folder"),
)


def cli_wording(message: str) -> str:
    """``message`` with the library's Python keywords replaced by the command line's options."""
    for python, cli in CLI_WORDING:
        message = message.replace(python, cli)
    return message


def describe_error(exc: BaseException) -> str:
    """One line for the terminal: what went wrong, with the path and the cause where known, in the
    command line's words (:func:`cli_wording`)."""
    if isinstance(exc, OSError) and exc.strerror:
        path = exc.filename if exc.filename is not None else ""
        cause = exc.strerror
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            cause += " (the disk or a quota is full; free some space or choose another folder)"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            cause += " (check the folder's permissions, or choose another one)"
        return f"{path}: {cause}" if path else cause
    if isinstance(exc, KeyError) and exc.args:
        message = str(exc.args[0])
    else:
        message = str(exc) or type(exc).__name__
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return cli_wording("; ".join(lines))


__all__ = ["formatter", "positive_int", "non_negative_int", "at_least", "fraction", "positive_float",
           "device", "add_device_option", "add_inference_options", "inference_model", "SHAPES_ROOT",
           "shapes_paths", "debug_requested", "describe_error", "cli_wording", "CLI_WORDING", "DEBUG_ENV"]
