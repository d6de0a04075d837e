"""``yolact-edu bench compare``: YOLACT against Mask R-CNN on the same data and machine."""
from __future__ import annotations

import json
from pathlib import Path

from .common import add_device_option, device, formatter, non_negative_int, positive_int, shapes_paths


def counts(text: str) -> list[int]:
    """"1,5,10" -> [1, 5, 10] (each a whole number >= 1)."""
    values = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not values:
        raise ValueError(f"expected a comma-separated list of instance counts, got {text!r}")
    return values


def add_parser(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks: the matched YOLACT vs Mask R-CNN comparison",
                           formatter_class=formatter)
    kinds = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    compare = kinds.add_parser(
        "compare", formatter_class=formatter,
        help="both trained models on the same val images: AP, AP75, AP90 and latency against instances",
        description="Score the shipped (or given) yolact_tiny and maskrcnn_tiny on the same COCO-format images, "
                    "then time end-to-end predict at batch 1 with the output forced to N detections, both in "
                    "one process (medians after warm-up); optionally yolact_resnet50 against torchvision's "
                    "Mask R-CNN R50-FPN at the paper's scale. Prints tables and writes JSON.",
        epilog="examples:\n"
               "  yolact-edu bench compare                                   # shipped models, shapes val\n"
               "  yolact-edu bench compare --paper-scale --output outputs/bench/compare.json\n"
               "  yolact-edu bench compare --yolact run/yolact.pth --maskrcnn run/maskrcnn.pth --max-images 50")
    compare.add_argument("--yolact", help="YOLACT checkpoint (default: the shipped yolact_tiny_shapes.pth)")
    compare.add_argument("--maskrcnn", help="Mask R-CNN checkpoint (default: the shipped maskrcnn_tiny_shapes.pth)")
    compare.add_argument("--annotations", help="COCO instances JSON (default: the shapes val split)")
    compare.add_argument("--images", help="image folder (default: the shapes val images)")
    compare.add_argument("--max-images", type=positive_int, help="score only the first N images")
    compare.add_argument("--counts", type=counts, default=[1, 5, 10, 25, 50, 100],
                         help="instance counts to time (default: 1,5,10,25,50,100)")
    compare.add_argument("--repeats", type=positive_int, default=7, help="timed runs per point (default: %(default)s)")
    compare.add_argument("--warmup", type=non_negative_int, default=2, help="untimed runs first (default: %(default)s)")
    compare.add_argument("--paper-scale", action="store_true",
                         help="also yolact_resnet50 vs Mask R-CNN R50-FPN, 100 detections, stage by stage")
    add_device_option(compare)
    compare.add_argument("--output", default="outputs/bench/compare.json", help="JSON file (default: %(default)s)")
    compare.add_argument("--force", action="store_true", help="replace an --output file yolact-edu did not write")


def run(args) -> int:
    from ..data import CocoDataset
    from ..data.images import read_image
    from ..files.output_folder import OutputFolder
    from ..lessons.pretrained import MASKRCNN_SHAPES_WEIGHTS, TINY_SHAPES_WEIGHTS
    from ..lessons.two_ways import comparison
    from ..training.checkpoint import load_model

    if bool(args.annotations) != bool(args.images):
        raise ValueError("give both --annotations and --images (or neither for the shapes val split)")
    output = Path(args.output)
    outputs = OutputFolder(output.parent, force=args.force)
    outputs.check([output.name])                       # before minutes of work, not after
    chosen = device(args.device)
    weights = {"YOLACT": str(args.yolact or TINY_SHAPES_WEIGHTS),
               "Mask R-CNN": str(args.maskrcnn or MASKRCNN_SHAPES_WEIGHTS)}
    models = {name: load_model(path, device=chosen).float() for name, path in weights.items()}
    sizes = {(m.cfg.max_size, m.cfg.normalization) for m in models.values()}
    if len(sizes) > 1:
        raise ValueError(f"the two models take different inputs ({sorted(sizes)}); a matched comparison "
                         "needs the same input size and normalisation")
    ((max_size, normalization),) = sizes
    annotations, images = args.annotations, args.images
    if not annotations:
        paths = shapes_paths()
        annotations, images = paths["val_annotations"], paths["val_images"]
    dataset = CocoDataset(annotations, images, max_size=max_size, normalization=normalization, verbose=False)
    image = read_image(Path(images) / dataset.coco.imgs[dataset.ids[0]]["file_name"])
    result = comparison.matched_comparison(models, dataset, image, max_images=args.max_images,
                                           counts=args.counts, repeats=args.repeats, warmup=args.warmup)
    result["weights"] = weights
    print(f"{result['environment']['machine']}, torch {result['environment']['torch']}")
    print(f"\naccuracy on {annotations}:\n{comparison.accuracy_table(result)}")
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
    return 0


__all__ = ["add_parser", "run", "counts"]
