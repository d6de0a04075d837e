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
import json
import sys
import time
from pathlib import Path

from . import cli_train, cli_video

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolact-edu", formatter_class=_formatter,
        description="Learn, run and retrain YOLACT / YOLACT++ real-time instance segmentation.",
        epilog="examples:\n  yolact-edu demo\n  yolact-edu predict\n  yolact-edu weights list\n  yolact-edu configs\n"
               "run 'yolact-edu COMMAND --help' for the options of a command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = sub.add_parser(
        "predict", help="segment images and write annotated PNGs + a detections JSON",
        formatter_class=_formatter,
        description="Run a model on images (files or folders) and draw the detections.",
        epilog="examples:\n"
               "  yolact-edu predict                                  # bundled sample, untrained model\n"
               "  yolact-edu predict street.jpg --weights weights/yolact_base_54_800000.pth\n"
               "  yolact-edu predict photos/ --weights yolact_resnet50_54_800000.pth "
               "--score-threshold 0.3 --output out/")
    predict.add_argument("inputs", nargs="*", help="image files or folders (default: the bundled sample)")
    predict.add_argument("--output", default="outputs/predict", help="output folder (default: %(default)s)")
    add_inference_options(predict)

    weights = sub.add_parser("weights", help="list or download the official checkpoints",
                             formatter_class=_formatter,
                             epilog="examples:\n  yolact-edu weights list\n"
                                    "  yolact-edu weights download yolact_resnet50 --dir weights/\n"
                                    "  yolact-edu weights download all")
    wsub = weights.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wsub.add_parser("list", help="released checkpoints, their URLs and whether they are here")
    download = wsub.add_parser("download", help="fetch checkpoints (resumable, verified by loading)",
                               formatter_class=_formatter,
                               epilog="examples:\n  yolact-edu weights download yolact_base\n"
                                      "  yolact-edu weights download all --dir weights/")
    download.add_argument("names", nargs="+", help="config names, or 'all'")
    download.add_argument("--dir", help="target folder (default: $YOLACT_EDU_HOME/weights or "
                                        "~/.cache/yolact_edu/weights)")
    download.add_argument("--base-url", help="mirror serving the files as BASE_URL/FILE_NAME")
    download.add_argument("--force", action="store_true", help="download again even if present")
    download.add_argument("--retries", type=int, default=3)

    sub.add_parser("configs", help="list the model configurations")
    _add_data_parser(sub)
    cli_train.add_parsers(sub)
    cli_video.add_parser(sub)
    return parser


def _add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="make the synthetic set, build a real COCO subset, look at annotations",
                          formatter_class=_formatter,
                          epilog="examples:\n  yolact-edu data shapes\n"
                                 "  yolact-edu data coco-subset --download-annotations data/coco "
                                 "--categories cat dog --max-images 200\n"
                                 "  yolact-edu data show data/shapes/instances_train.json data/shapes/train")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    shapes = dsub.add_parser("shapes", help="generate the synthetic COCO-format shapes set (seconds, no download)",
                             formatter_class=_formatter,
                             epilog="examples:\n  yolact-edu data shapes\n"
                                    "  yolact-edu data shapes --root data/shapes_s1 --seed 1 --num-train 200")
    shapes.add_argument("--root", default="data/shapes", help="output folder (default: %(default)s)")
    shapes.add_argument("--num-train", type=int, default=600, help="training images (default: %(default)s)")
    shapes.add_argument("--num-val", type=int, default=100, help="validation images (default: %(default)s)")
    shapes.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    shapes.add_argument("--force", action="store_true", help="regenerate even if a complete set is there")

    subset = dsub.add_parser(
        "coco-subset", help="select categories/images of real COCO and fetch the images",
        formatter_class=_formatter,
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
    subset.add_argument("--max-images", type=int, default=100, help="default: %(default)s")
    subset.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    subset.add_argument("--images-from", help="local folder with the COCO images (else download them)")
    subset.add_argument("--output", default="data/coco_subset", help="default: %(default)s")
    subset.add_argument("--workers", type=int, default=8, help="parallel downloads (default: %(default)s)")
    subset.add_argument("--retries", type=int, default=3, help="default: %(default)s")

    show = dsub.add_parser("show", help="draw the ground truth of some images (look before you train)",
                           formatter_class=_formatter,
                           epilog="examples:\n  yolact-edu data show data/shapes/instances_val.json data/shapes/val "
                                  "--count 4 --output outputs/annotations")
    show.add_argument("annotations", help="instances JSON")
    show.add_argument("images", help="folder of the images")
    show.add_argument("--first", type=int, default=0, help="index of the first image (default: %(default)s)")
    show.add_argument("--count", type=int, default=4, help="how many images (default: %(default)s)")
    show.add_argument("--output", default="outputs/annotations", help="default: %(default)s")


def _collect_images(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise SystemExit(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise SystemExit(f"error: no such file or folder: {path}")
    return paths


def _device(name: str):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """The model and drawing options that ``predict`` and ``video`` share."""
    parser.add_argument("--weights", help="checkpoint (.pth, yolact_edu or official); without it a "
                                          "randomly initialised model is used")
    parser.add_argument("--config", help="config name (default: from the weights, else yolact_tiny)")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="hide detections scoring below this (default 0.15; 0 without weights)")
    parser.add_argument("--top-k", type=int, default=15, help="draw at most this many (default: %(default)s)")
    parser.add_argument("--nms", choices=("fast", "cross_class", "standard"), default="fast")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--autocast", choices=("fp16", "bf16"), help="mixed-precision inference")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random model (default: %(default)s)")


def inference_model(args):
    """The model the options of :func:`add_inference_options` ask for, on its device, with the
    score threshold to draw at and extra ``detect`` keywords: (model, threshold, detect_kwargs)."""
    import torch

    from . import Yolact, get_config
    from .checkpoint import load_model

    device = _device(args.device)
    if args.weights:
        model = load_model(args.weights, config=args.config, device=device)
        return model, 0.15 if args.score_threshold is None else args.score_threshold, {}
    # An untrained model's softmax is nearly flat (~1/(C+1) per class), below the usual 0.05
    # candidate threshold; lower it so the picture still shows the pipeline's output.
    torch.manual_seed(args.seed)
    model = Yolact(get_config(args.config or "yolact_tiny")).eval().to(device)
    print(f"note: no --weights given, using a randomly initialised {model.cfg.name} "
          f"(seed {args.seed}); its detections are meaningless until it is trained")
    return model, 0.0 if args.score_threshold is None else args.score_threshold, {"conf_threshold": 0.0}


def cmd_predict(args) -> int:
    import numpy as np
    from pycocotools import mask as mask_utils

    from .viz import draw_detections, read_image, sample_image, write_image

    model, threshold, detect_kwargs = inference_model(args)
    detect_kwargs["nms"] = args.nms
    images = ([(p.name, read_image(p)) for p in _collect_images(args.inputs)] if args.inputs
              else [("sample.jpg", sample_image())])
    out_dir = Path(args.output)
    records = []
    for name, image in images:
        start = time.perf_counter()
        dets = model.predict(image, autocast=args.autocast, **detect_kwargs).cpu()
        elapsed = time.perf_counter() - start
        shown = dets.filter(threshold, args.top_k)
        png = write_image(out_dir / (Path(name).stem + ".png"), draw_detections(image, shown))
        print(f"{name}: {len(shown)} detections drawn ({len(dets)} in all) in "
              f"{elapsed * 1000:.0f} ms -> {png}")
        for i in range(len(shown)):
            x1, y1, x2, y2 = shown.boxes[i].tolist()
            rle = mask_utils.encode(np.asfortranarray(shown.masks[i].numpy().astype(np.uint8)))
            records.append({"file_name": name, "label": int(shown.labels[i]),
                            "category": shown.class_labels[i], "score": float(shown.scores[i]),
                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    json_path = out_dir / "detections.json"
    json_path.write_text(json.dumps(records, indent=1))
    print(f"wrote {json_path}")
    return 0


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
                                 workers=args.workers, retries=args.retries, split_name="subset")
        print(f"wrote {path} (images in {Path(args.output) / 'images'})")
        return 0
    from .data import CocoDataset
    from .viz import draw_annotations, write_image
    dataset = CocoDataset(args.annotations, args.images)
    for index in range(args.first, min(len(dataset), args.first + args.count)):
        name = Path(str(dataset.image_info(index)["file_name"])).stem + ".png"
        print(f"wrote {write_image(Path(args.output) / name, draw_annotations(dataset, index))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"predict": cmd_predict, "weights": cmd_weights, "configs": cmd_configs, "data": cmd_data,
                "demo": cli_train.cmd_demo, "train": cli_train.cmd_train, "eval": cli_train.cmd_eval,
                "video": cli_video.run}
    try:
        return handlers[args.command](args)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
