"""``yolact-edu eval``: COCO box and mask AP of a checkpoint on a COCO-format set."""
from __future__ import annotations

import json
from pathlib import Path

from .common import SHAPES_ROOT, add_device_option, device, formatter, output_folder, positive_int, shapes_paths


def add_parser(sub) -> None:
    evaluate = sub.add_parser(
        "eval", help="COCO box and mask AP of a checkpoint on a COCO-format set",
        formatter_class=formatter,
        description="Run a checkpoint over a COCO-format set and print pycocotools' 12-number tables for "
                    "bbox and segm. The model's classes must correspond to the file's categories.",
        epilog="examples:\n  yolact-edu eval --weights outputs/demo/yolact_tiny_shapes.pth   # shapes val split\n"
               "  yolact-edu eval --weights yolact_base_54_800000.pth \\\n"
               "      --annotations coco/annotations/instances_val2017.json --images coco/val2017")
    evaluate.add_argument("--weights", required=True, help="checkpoint (ours or official)")
    evaluate.add_argument("--config", help="config of an official file (default: from its name)")
    evaluate.add_argument("--annotations", help=f"COCO instances JSON (default: {SHAPES_ROOT} val split)")
    evaluate.add_argument("--images", help="image folder (default: the shapes val images)")
    evaluate.add_argument("--max-images", type=positive_int, help="score only the first N images")
    evaluate.add_argument("--batch-size", type=positive_int, default=4)
    add_device_option(evaluate)
    evaluate.add_argument("--output", help="also write the metrics to this JSON file")
    evaluate.add_argument("--force", action="store_true",
                          help="replace an existing --output file that yolact-edu did not write")


def run(args) -> int:
    from ..data import CocoDataset
    from ..training.checkpoint import load_model
    from ..training.evaluation import evaluate

    if bool(args.annotations) != bool(args.images):
        raise ValueError("give both --annotations and --images (or neither for the shapes val split)")
    outputs = None
    if args.output:
        output = Path(args.output)
        outputs = output_folder(args, output.parent)
        outputs.check([output.name])                  # before minutes of evaluation, not after
    # The checkpoint first: a wrong path must not cost a 700-image dataset generation.
    model = load_model(args.weights, config=args.config, device=device(args.device))
    annotations, images = args.annotations, args.images
    if not annotations:
        paths = shapes_paths()
        annotations, images = paths["val_annotations"], paths["val_images"]
    dataset = CocoDataset(annotations, images, max_size=model.cfg.max_size, normalization=model.cfg.normalization)
    metrics = evaluate(model, dataset, batch_size=args.batch_size, max_images=args.max_images)
    print(f"box AP {metrics['bbox']['AP']:.3f}, mask AP {metrics['segm']['AP']:.3f} "
          f"on {metrics['num_images']} images ({metrics['inference_seconds']:.1f} s inference)")
    if outputs is not None:
        print(f"wrote {outputs.write_text(Path(args.output).name, json.dumps(metrics, indent=1))}")
    return 0


__all__ = ["add_parser", "run"]
