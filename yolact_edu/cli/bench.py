"""``yolact-edu bench compare``: YOLACT, Mask R-CNN and YOLACT's relatives on the same data and machine;
``yolact-edu bench prototypes``: models trained with different numbers of prototypes, side by side."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import bench_speed
from .common import (
    add_device_option,
    checkpoint_val_set,
    device,
    formatter,
    non_negative_int,
    output_folder,
    positive_int,
    positive_int_list,
    shapes_paths,
)


def model_list(text: str) -> list[str]:
    """"yolact_tiny,condinst_tiny" -> the names, each one of the shipped models."""
    from ..lessons.pretrained import SHIPPED_WEIGHTS
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SHIPPED_WEIGHTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or repr(text)} is not a model to compare; "
                                         f"choose from {', '.join(SHIPPED_WEIGHTS)}")
    return names


def model_weights(text: str) -> tuple[str, str]:
    """"condinst_tiny=run/c.pth" -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected MODEL=CHECKPOINT, got {text!r}")
    return name.strip(), path.strip()


def add_parser(sub) -> None:
    bench = sub.add_parser("bench", help="measurements: the six families side by side; inference speed; "
                                         "the number of prototypes k",
                           formatter_class=formatter)
    kinds = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    compare = kinds.add_parser(
        "compare", formatter_class=formatter,
        help="the trained families on the same val images: AP, AP75, AP90 and latency against instances",
        description="Score the shipped (or given) models of the six families (yolact_tiny, maskrcnn_tiny, "
                    "condinst_tiny, solov2_tiny, blendmask_tiny, centermask_tiny) on the same COCO-format images, "
                    "then time end-to-end predict at batch 1 with the output forced to N detections, all in "
                    "one process (medians after warm-up); optionally yolact_resnet50 against torchvision's "
                    "Mask R-CNN R50-FPN at the paper's scale. Prints tables and writes JSON (and a plot with --plot).",
        epilog="examples:\n"
               "  yolact-edu bench compare                                   # shipped models, shapes val\n"
               "  yolact-edu bench compare --paper-scale --output outputs/bench/compare.json\n"
               "  yolact-edu bench compare --data crowded --output outputs/bench/compare_crowded.json\n"
               "  yolact-edu bench compare --models yolact_tiny,condinst_tiny --weights condinst_tiny=run/c.pth\n"
               "  yolact-edu bench compare --models yolact_tiny,maskrcnn_tiny --yolact run/yolact.pth "
               "--maskrcnn run/maskrcnn.pth --max-images 50")
    compare.add_argument("--models", type=model_list, default=None,
                         help="comma-separated models to compare (default: all six shipped ones; with --data "
                              "crowded the two shipped for it, yolact_tiny and maskrcnn_tiny)")
    compare.add_argument("--data", choices=("shapes", "crowded"), default="shapes",
                         help="shapes: the shapes val split and the models trained on it; crowded: its crowded "
                              "variant's val split (made if missing) and the models trained on that, "
                              "yolact_tiny_crowded and maskrcnn_tiny_crowded (default: %(default)s)")
    compare.add_argument("--weights", type=model_weights, action="append", default=[], metavar="MODEL=CHECKPOINT",
                         help="a checkpoint for one of the models instead of its shipped file (repeatable)")
    compare.add_argument("--yolact", help="YOLACT checkpoint (same as --weights yolact_tiny=...)")
    compare.add_argument("--maskrcnn", help="Mask R-CNN checkpoint (same as --weights maskrcnn_tiny=...)")
    compare.add_argument("--annotations", help="COCO instances JSON (default: the shapes val split)")
    compare.add_argument("--images", help="image folder (default: the shapes val images)")
    compare.add_argument("--max-images", type=positive_int, help="score only the first N images")
    compare.add_argument("--counts", type=positive_int_list("instance counts"), default=[1, 5, 10, 25, 50, 100],
                         help="instance counts to time (default: 1,5,10,25,50,100)")
    compare.add_argument("--repeats", type=positive_int, default=7, help="timed runs per point (default: %(default)s)")
    compare.add_argument("--warmup", type=non_negative_int, default=2, help="untimed runs first (default: %(default)s)")
    compare.add_argument("--paper-scale", action="store_true",
                         help="also yolact_resnet50 vs Mask R-CNN R50-FPN, 100 detections, stage by stage")
    add_device_option(compare)
    compare.add_argument("--output", default="outputs/bench/compare.json", help="JSON file (default: %(default)s)")
    compare.add_argument("--plot", help="also draw the table's figures and the latency curves into this PNG")
    compare.add_argument("--force", action="store_true", help="replace an --output file yolact-edu did not write")
    bench_speed.add_parser(kinds)
    sweep = kinds.add_parser(
        "prototypes", formatter_class=formatter,
        help="score models trained with different numbers of prototypes k; keep their prototypes of one image",
        description="Score each checkpoint (YOLACT models that differ only in --num-protos) on the same "
                    "COCO-format images, and keep for one image each model's prototypes and its detections' "
                    "coefficients and boxes: a small .npz that notebook 04 draws (AP against k, the prototypes "
                    "of each k).",
        epilog="example (the shipped sweep; docs/benchmarks.md has the training commands):\n"
               "  yolact-edu bench prototypes runs/k1/checkpoints/yolact_tiny_0002000.pth \\\n"
               "      runs/k32/checkpoints/yolact_tiny_0002000.pth --output outputs/bench/prototype_sweep.npz")
    sweep.add_argument("checkpoints", nargs="+", help="one training checkpoint per k")
    sweep.add_argument("--annotations", help="COCO instances JSON (default: the shapes val split)")
    sweep.add_argument("--images", help="image folder (default: the shapes val images)")
    sweep.add_argument("--max-images", type=positive_int, help="score only the first N images")
    sweep.add_argument("--image-index", type=non_negative_int,
                       help="the image whose prototypes are kept (default: chosen, see prototype_sweep.pick_image)")
    sweep.add_argument("--command", dest="training_command",
                       help="how the checkpoints were made (the train commands), recorded as given")
    sweep.add_argument("--output", default="outputs/bench/prototype_sweep.npz", help="the .npz (default: %(default)s)")
    sweep.add_argument("--force", action="store_true", help="replace an --output file yolact-edu did not write")


def run(args) -> int:
    if args.bench_command == "speed":
        return bench_speed.run(args)
    return run_prototypes(args) if args.bench_command == "prototypes" else run_compare(args)


def run_prototypes(args) -> int:
    import shlex

    from ..lessons import prototype_sweep

    output = Path(args.output)
    outputs = output_folder(args, output.parent)
    outputs.check([output.name])
    dataset, annotations = checkpoint_val_set(args, args.checkpoints[0])
    given = [(f"--{name.replace('_', '-')}", getattr(args, name))
             for name in ("annotations", "images", "max_images", "image_index", "output")]
    this = ["yolact-edu", "bench", "prototypes", *args.checkpoints,
            *(part for option, value in given if value is not None for part in (option, str(value)))]
    meta = {"command": shlex.join(this), "annotations": str(annotations), "training": args.training_command or "",
            "checkpoints": [str(p) for p in args.checkpoints]}
    sweep = prototype_sweep.summarize_sweep(args.checkpoints, dataset, image_index=args.image_index,
                                            max_images=args.max_images, meta=meta)
    print(f"{'k':>3} {'box AP':>7} {'mask AP':>8} {'AP50':>6} {'AP75':>6}  (on {sweep['meta']['val_images']} images "
          f"of {annotations}; image {sweep['image_index']} kept)")
    for i, k in enumerate(sweep["num_protos"]):
        print(f"{int(k):>3} {sweep['box_AP'][i]:7.3f} {sweep['mask_AP'][i]:8.3f} {sweep['mask_AP50'][i]:6.3f} "
              f"{sweep['mask_AP75'][i]:6.3f}")
    print(f"wrote {outputs.write_bytes(output.name, prototype_sweep.sweep_bytes(sweep))}")
    return 0


def run_compare(args) -> int:
    from ..build import FAMILY_NAMES, get_model_config
    from ..data import CocoDataset
    from ..data.images import read_image
    from ..lessons.pretrained import CROWDED_WEIGHTS, SHIPPED_WEIGHTS
    from ..lessons.two_ways import comparison
    from ..training.checkpoint import load_model
    from ..training.evaluation import category_mapping

    crowded = args.data == "crowded"
    # config name -> the shipped file trained on the chosen data (the crowded variant ships two)
    shipped = ({name.removesuffix("_crowded"): path for name, path in CROWDED_WEIGHTS.items()} if crowded
               else SHIPPED_WEIGHTS)
    if bool(args.annotations) != bool(args.images):
        raise ValueError("give both --annotations and --images (or neither for the shapes val split)")
    output = Path(args.output)
    outputs = output_folder(args, output.parent)
    plot = Path(args.plot) if args.plot else None
    plots = output_folder(args, plot.parent) if plot else None
    outputs.check([output.name])                       # before minutes of work, not after
    if plots:
        plots.check([plot.name])
    names = args.models or list(shipped)
    given = dict(args.weights)
    for name, path in (("yolact_tiny", args.yolact), ("maskrcnn_tiny", args.maskrcnn)):
        if path:
            given[name] = path
    stray = sorted(set(given) - set(names))
    if stray:
        raise ValueError(f"weights given for {', '.join(stray)}, which --models leaves out ({', '.join(names)})")
    for name in names:
        if name not in given and name not in shipped:
            raise FileNotFoundError(f"no {name} trained on the crowded variant is shipped (only "
                                    f"{', '.join(shipped)}); give --weights {name}=CHECKPOINT or leave it out of "
                                    "--models")
        if name not in given and not shipped[name].is_file():
            raise FileNotFoundError(f"{shipped[name]}: no shipped {name} in this installation; give "
                                    f"--weights {name}=CHECKPOINT or leave it out of --models")
    chosen = device(args.device)
    labels = {name: FAMILY_NAMES[get_model_config(name).family] for name in names}
    weights = {labels[name]: str(given.get(name, shipped.get(name))) for name in names}
    models = {}
    for name in names:
        model = load_model(weights[labels[name]], device=chosen).float()
        if model.cfg.family != get_model_config(name).family:
            raise ValueError(f"{weights[labels[name]]} holds a {model.cfg.family} model ({model.cfg.name}), "
                             f"not {name}")
        models[labels[name]] = model
    sizes = {(m.cfg.max_size, m.cfg.normalization) for m in models.values()}
    if len(sizes) > 1:
        raise ValueError(f"the models take different inputs ({sorted(sizes)}); a matched comparison "
                         "needs the same input size and normalisation")
    ((max_size, normalization),) = sizes
    annotations, images = args.annotations, args.images
    if not annotations:
        paths = shapes_paths(variant="crowded" if crowded else "plain")
        annotations, images = paths["val_annotations"], paths["val_images"]
    dataset = CocoDataset(annotations, images, max_size=max_size, normalization=normalization, verbose=False)
    # Every model must know the file's classes before minutes of scoring, and the message names the
    # models that do not (a shipped model knows the shapes set's six classes only).
    unfit = []
    for name in names:
        try:
            category_mapping(models[labels[name]], dataset)
        except ValueError:
            unfit.append(name)
    if unfit:
        def few(classes) -> str:
            return ", ".join(classes[:4]) + (", ..." if len(classes) > 4 else "")
        one = len(unfit) == 1
        raise ValueError(f"{', '.join(unfit)} ({', '.join(weights[labels[n]] for n in unfit)}) "
                         f"{'was' if one else 'were'} trained on other classes than {annotations} "
                         f"({few(models[labels[unfit[0]]].cfg.class_names)} vs {few(dataset.class_names)}): "
                         f"give {'it' if one else 'each'} a checkpoint trained on these, "
                         f"{' '.join(f'--weights {n}=CHECKPOINT' for n in unfit)}, or leave "
                         f"{'it' if one else 'them'} out of --models")
    image = read_image(Path(images) / dataset.coco.imgs[dataset.ids[0]]["file_name"])
    result = comparison.matched_comparison(models, dataset, image, max_images=args.max_images,
                                           counts=args.counts, repeats=args.repeats, warmup=args.warmup)
    result["weights"] = weights
    result["data"] = {"variant": "crowded" if crowded else "shapes", "annotations": str(annotations)}
    print(f"{result['environment']['machine']}, torch {result['environment']['torch']}")
    print(f"\naccuracy on {annotations}:\n{comparison.accuracy_table(result)}")
    print(f"\nin one table (ms per instance: the slope of the latency curve):\n{comparison.summary_table(result)}")
    print(f"\nlatency at batch 1, {image.shape[1]}x{image.shape[0]} image, median of {args.repeats} after "
          f"{args.warmup} warm-up:\n{comparison.latency_table(result)}")
    if args.paper_scale:
        result["paper_scale"] = comparison.paper_scale(image, repeats=max(1, args.repeats // 2),
                                                       warmup=min(args.warmup, 1), device=chosen)
        scale = result["paper_scale"]
        print(f"\nat the paper's scale ({scale['instances']} detections, random weights):\n"
              f"{comparison.paper_scale_table(result['paper_scale'])}\n"
              f"YOLACT / Mask R-CNN time: {scale['ratio']:.2f}")
    print(f"\nwrote {outputs.write_text(output.name, json.dumps(result, indent=1))}")
    if plots:
        import matplotlib
        matplotlib.use("Agg")
        import io
        buffer = io.BytesIO()
        comparison.plot_comparison(result).savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        print(f"wrote {plots.write_bytes(plot.name, buffer.getvalue())}")
    return 0


__all__ = ["add_parser", "run", "run_compare", "run_prototypes", "model_list", "model_weights"]
