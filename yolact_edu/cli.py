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
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from . import cli_predict, cli_train, cli_video
from .cli_common import debug_requested, describe_error, formatter, non_negative_int, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolact-edu", formatter_class=formatter,
        description="Learn, run and retrain YOLACT / YOLACT++ real-time instance segmentation.",
        epilog="examples:\n  yolact-edu demo\n  yolact-edu predict\n  yolact-edu weights list\n  yolact-edu configs\n"
               "run 'yolact-edu COMMAND --help' for the options of a command; errors are one line, "
               "add --debug anywhere for the traceback.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cli_predict.add_parser(sub)

    weights = sub.add_parser("weights", help="list or download the official checkpoints",
                             formatter_class=formatter,
                             epilog="examples:\n  yolact-edu weights list\n"
                                    "  yolact-edu weights download yolact_resnet50 --dir weights/\n"
                                    "  yolact-edu weights download all")
    wsub = weights.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wsub.add_parser("list", help="released checkpoints, their URLs and whether they are here")
    download = wsub.add_parser("download", help="fetch checkpoints (resumable, verified by loading)",
                               formatter_class=formatter,
                               epilog="examples:\n  yolact-edu weights download yolact_base\n"
                                      "  yolact-edu weights download all --dir weights/")
    download.add_argument("names", nargs="+", help="config names, or 'all'")
    download.add_argument("--dir", help="target folder (default: $YOLACT_EDU_HOME/weights or "
                                        "~/.cache/yolact_edu/weights)")
    download.add_argument("--base-url", help="mirror serving the files as BASE_URL/FILE_NAME")
    download.add_argument("--force", action="store_true", help="download again even if present")
    download.add_argument("--retries", type=non_negative_int, default=3)

    sub.add_parser("configs", help="list the model configurations")
    _add_data_parser(sub)
    cli_train.add_parsers(sub)
    cli_video.add_parser(sub)
    return parser


def _add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="make the synthetic set, build a real COCO subset, look at annotations",
                          formatter_class=formatter,
                          epilog="examples:\n  yolact-edu data shapes\n"
                                 "  yolact-edu data coco-subset --download-annotations data/coco "
                                 "--categories cat dog --max-images 200\n"
                                 "  yolact-edu data show data/shapes/instances_train.json data/shapes/train")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    shapes = dsub.add_parser("shapes", help="generate the synthetic COCO-format shapes set (seconds, no download)",
                             formatter_class=formatter,
                             epilog="examples:\n  yolact-edu data shapes\n"
                                    "  yolact-edu data shapes --root data/shapes_s1 --seed 1 --num-train 200")
    shapes.add_argument("--root", default="data/shapes", help="output folder (default: %(default)s)")
    shapes.add_argument("--num-train", type=positive_int, default=600, help="training images (default: %(default)s)")
    shapes.add_argument("--num-val", type=positive_int, default=100, help="validation images (default: %(default)s)")
    shapes.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    shapes.add_argument("--force", action="store_true", help="regenerate even if a complete set is there")

    subset = dsub.add_parser(
        "coco-subset", help="select categories/images of real COCO and fetch the images",
        formatter_class=formatter,
        description="Write a COCO subset: an annotation file with the chosen categories and at most "
                    "--max-images images (seeded), and those images, copied from a local COCO folder "
                    "or downloaded from each image's coco_url (concurrent, retried, resumable).",
        epilog="examples:\n"
               "  yolact-edu data coco-subset --annotations coco/annotations/instances_val2017.json "
               "--images-from coco/val2017 --categories person --max-images 50\n"
               "  yolact-edu data coco-subset --download-annotations data/coco --split val2017 "
               "--categories cat dog --max-images 200 --output data/coco_subset")
    source = subset.add_mutually_exclusive_group(required=True)
    source.add_argument("--annotations", help="a local instances_*.json")
    source.add_argument("--download-annotations", metavar="DIR",
                        help="download and safely extract the official 2017 annotations archive into DIR")
    subset.add_argument("--split", default="val2017", help="split, with --download-annotations (default: %(default)s)")
    subset.add_argument("--categories", nargs="+", help="category names or ids (default: all)")
    subset.add_argument("--max-images", type=positive_int, default=100, help="default: %(default)s")
    subset.add_argument("--seed", type=non_negative_int, default=0, help="default: %(default)s")
    subset.add_argument("--images-from", help="local folder with the COCO images (else download them)")
    subset.add_argument("--output", default="data/coco_subset", help="default: %(default)s")
    subset.add_argument("--workers", type=positive_int, default=8, help="parallel downloads (default: %(default)s)")
    subset.add_argument("--retries", type=non_negative_int, default=3, help="default: %(default)s")

    show = dsub.add_parser("show", help="draw the ground truth of some images (look before you train)",
                           formatter_class=formatter,
                           epilog="examples:\n  yolact-edu data show data/shapes/instances_val.json data/shapes/val "
                                  "--count 4 --output outputs/annotations")
    show.add_argument("annotations", help="instances JSON")
    show.add_argument("images", help="folder of the images")
    show.add_argument("--first", type=non_negative_int, default=0,
                      help="index of the first image (default: %(default)s)")
    show.add_argument("--count", type=positive_int, default=4, help="how many images (default: %(default)s)")
    show.add_argument("--output", default="outputs/annotations", help="default: %(default)s")
    show.add_argument("--force", action="store_true",
                      help="replace existing files that yolact-edu did not write (never the dataset's images)")
    subset.add_argument("--force", action="store_true",
                        help="replace an existing annotation file that yolact-edu did not write")


def cmd_weights(args) -> int:
    from .weights import OFFICIAL_FILES, download_official, official_url, weights_dir

    if args.weights_command == "list":
        here = weights_dir()
        for name, filename in OFFICIAL_FILES.items():
            status = "downloaded" if (here / filename).is_file() else "not downloaded"
            print(f"{name:22s} {filename:38s} {status}\n{'':22s} {official_url(name)}")
        print(f"folder: {here}  (yolact_im400 has no released checkpoint)")
        return 0
    names = list(OFFICIAL_FILES) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in OFFICIAL_FILES]
    if unknown:
        print(f"error: no released checkpoint for {', '.join(unknown)}; "
              f"choose from {', '.join(OFFICIAL_FILES)} or 'all'", file=sys.stderr)
        return 2
    for name in names:
        path = download_official(name, args.dir, base_url=args.base_url, overwrite=args.force,
                                 retries=args.retries)
        print(f"{name}: {path}")
    return 0


def cmd_configs(_args) -> int:
    from .config import get_config, list_configs
    for name in list_configs():
        cfg = get_config(name)
        kind = "YOLACT++" if cfg.use_maskiou else "YOLACT"
        print(f"{name:22s} {kind:9s} {cfg.backbone:10s} {cfg.max_size:4d}px  "
              f"{cfg.num_anchors} anchors/cell  {cfg.num_classes} classes")
    return 0


def cmd_data(args) -> int:
    if args.data_command == "shapes":
        from .data.shapes import make_shapes, shapes_exist
        existed = shapes_exist(args.root) and not args.force
        paths = make_shapes(args.root, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                            overwrite=args.force, progress=True)
        print(f"{'kept the existing' if existed else 'wrote the'} shapes set in {paths['root']}: "
              f"{paths['train_annotations']}, {paths['val_annotations']}")
        return 0
    if args.data_command == "coco-subset":
        from .data.coco_subset import annotations_file, build_coco_subset, download_coco_annotations
        annotations = args.annotations
        if args.download_annotations:
            folder = download_coco_annotations(args.download_annotations, retries=args.retries)
            annotations = annotations_file(folder, args.split)
        path = build_coco_subset(annotations, args.output, categories=args.categories,
                                 max_images=args.max_images, seed=args.seed, images_from=args.images_from,
                                 workers=args.workers, retries=args.retries, split_name="subset",
                                 force=args.force)
        print(f"wrote {path} (images in {Path(args.output) / 'images'})")
        return 0
    return _show_annotations(args)


def _show_annotations(args) -> int:
    from .data import CocoDataset
    from .output_folder import OutputConflict, OutputFolder, is_inside
    from .viz import draw_annotations, encode_image

    if is_inside(args.output, args.images):
        raise OutputConflict(f"--output {args.output} lies in the dataset's image folder {args.images}: the "
                             "drawings would mix with (or replace) the images; choose another folder")
    dataset = CocoDataset(args.annotations, args.images)
    chosen = range(args.first, min(len(dataset), args.first + args.count))
    if not chosen:
        raise ValueError(f"--first {args.first} is past the last image ({len(dataset)} usable images in "
                         f"{args.annotations})")
    images = [dataset.image_dir / str(dataset.image_info(i)["file_name"]) for i in chosen]
    outputs = OutputFolder(args.output, force=args.force, protect=images)
    names = cli_predict.output_names(images)     # one name per image, as predict gives them
    outputs.claim(*names)
    for index, name in zip(chosen, names):
        print(f"wrote {outputs.write_bytes(name, encode_image(draw_annotations(dataset, index)))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status. Every error becomes one line on stderr
    ("error: ..." naming the file and the cause); ``--debug`` (or $YOLACT_EDU_DEBUG=1) shows the
    traceback instead."""
    debug, argv = debug_requested(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    handlers = {"predict": cli_predict.run, "weights": cmd_weights, "configs": cmd_configs, "data": cmd_data,
                "demo": cli_train.cmd_demo, "train": cli_train.cmd_train, "eval": cli_train.cmd_eval,
                "video": cli_video.run}
    python_format = warnings.formatwarning
    if not debug:       # a warning is one line too, without the source line Python appends
        warnings.formatwarning = lambda message, category, *_args, **_kwargs: f"warning: {message}\n"
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:            # the CLI boundary: nothing escapes as a raw traceback
        if debug:
            raise
        known = isinstance(exc, (OSError, ValueError, KeyError))
        hint = "" if known else f" ({type(exc).__name__}; run with --debug for the traceback)"
        print(f"error: {describe_error(exc)}{hint}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = python_format


if __name__ == "__main__":
    sys.exit(main())
