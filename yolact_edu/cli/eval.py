"""``yolact-edu eval``: COCO box and mask AP of a checkpoint on a COCO-format set, with the report a
practitioner reaches for: the COCO results files (any tool can rescore them), per-class AP,
precision-recall curves and confusion matrices."""
from __future__ import annotations

import json
from pathlib import Path

from .common import (
    SHAPES_ROOT,
    add_device_option,
    device,
    formatter,
    fraction,
    output_folder,
    positive_int,
    shapes_paths,
)

DEFAULT_OUTPUT = "outputs/eval"
REPORT_FILES = {"metrics": "metrics.json", "bbox": "results_bbox.json", "segm": "results_segm.json",
                "curves": "precision_recall.png", "confusion": "confusion_matrix.png"}


def report_files(output: str | Path) -> tuple[Path, dict[str, str]]:
    """The folder of the report and its file names. ``--output`` names the folder
    (:data:`REPORT_FILES` inside), or, ending in ".json", the metrics file itself, with the other
    files beside it named after it (``run.json``: ``run_results_bbox.json``, ...)."""
    output = Path(output)
    if output.suffix.lower() != ".json":
        return output, dict(REPORT_FILES)
    names = {key: f"{output.stem}_{name}" for key, name in REPORT_FILES.items()}
    names["metrics"] = output.name
    return output.parent, names


def add_parser(sub) -> None:
    evaluate = sub.add_parser(
        "eval", help="COCO box and mask AP of a checkpoint on a COCO-format set",
        formatter_class=formatter,
        description="Run a checkpoint over a COCO-format set and print pycocotools' 12-number tables for\n"
                    "bbox and segm, and AP per class. The model's classes must correspond to the file's\n"
                    "categories. Writes into --output:\n"
                    "  metrics.json          the numbers, AP per class, the confusion counts\n"
                    "  results_bbox.json     COCO results (category ids of the file, [x, y, w, h]) and\n"
                    "  results_segm.json     (RLE masks): pycocotools rescores them to the same numbers\n"
                    "  precision_recall.png  precision against recall at IoU 0.5, 0.75 and 0.5:0.95\n"
                    "  confusion_matrix.png  true against predicted class, with background",
        epilog="examples:\n  yolact-edu eval --weights outputs/demo/yolact_tiny_shapes.pth   # shapes val split\n"
               "  yolact-edu eval --weights yolact_base_54_800000.pth \\\n"
               "      --annotations coco/annotations/instances_val2017.json --images coco/val2017 "
               "--output outputs/eval/base\n"
               "rescoring elsewhere (pycocotools):\n"
               "  COCOeval(gt, gt.loadRes('outputs/eval/results_segm.json'), 'segm')   "
               "# --max-images: params.imgIds = metrics['image_ids']")
    evaluate.add_argument("--weights", required=True, help="checkpoint (ours or official)")
    evaluate.add_argument("--config", help="config of an official file (default: from its name)")
    evaluate.add_argument("--annotations", help=f"COCO instances JSON (default: {SHAPES_ROOT} val split)")
    evaluate.add_argument("--images", help="image folder (default: the shapes val images)")
    evaluate.add_argument("--max-images", type=positive_int, help="score only the first N images")
    evaluate.add_argument("--batch-size", type=positive_int, default=4, help="default: %(default)s")
    add_device_option(evaluate)
    evaluate.add_argument("--gt", choices=("file", "dataset"), default="file",
                          help="ground truth: 'file', the annotation file as pycocotools reads it (AP as "
                               "other tools compute it), or 'dataset', without the annotations the dataset "
                               "skips for training (as the Trainer's validation scores) (default: %(default)s)")
    evaluate.add_argument("--confusion-score", type=fraction, default=0.25,
                          help="detections scoring at least this enter the confusion matrix, 0..1 "
                               "(default: %(default)s)")
    evaluate.add_argument("--output", default=DEFAULT_OUTPUT,
                          help="folder for the report (default: %(default)s); a path ending in .json names "
                               "the metrics file, and the other files are written beside it, named after it")
    evaluate.add_argument("--force", action="store_true",
                          help="replace existing files that yolact-edu did not write (never the inputs)")


def run(args) -> int:
    from ..files.locations import shown_path
    from ..training.checkpoint import load_model

    if bool(args.annotations) != bool(args.images):
        raise ValueError("give both --annotations and --images (or neither for the shapes val split)")
    folder, names = report_files(args.output)
    outputs = output_folder(args, folder)
    outputs.check(names.values())                     # before minutes of evaluation, not after
    # The checkpoint first: a wrong path must not cost a 700-image dataset generation.
    model = load_model(args.weights, config=args.config, device=device(args.device))
    annotations, images = args.annotations, args.images
    if not annotations:
        paths = shapes_paths()
        annotations, images = paths["val_annotations"], paths["val_images"]
    report = _evaluate(model, annotations, images, args)
    metrics = report.pop("metrics")
    for task in ("bbox", "segm"):
        outputs.write_text(names[task], json.dumps(report["results"][task]))
    outputs.write_bytes(names["curves"], report["curves_png"])
    outputs.write_bytes(names["confusion"], report["confusion_png"])
    metrics["results_files"] = {task: names[task] for task in ("bbox", "segm")}
    outputs.write_text(names["metrics"], json.dumps(metrics, indent=1))
    print(f"wrote {', '.join(names.values())} in {shown_path(folder)}")
    return 0


def _evaluate(model, annotations, images, args) -> dict:
    """Score, print the tables and the summary; the metrics (with per-class AP, confusion counts and
    the ground truth's note), the results and the two figures as PNG bytes."""
    from ..data import CocoDataset
    from ..training.eval_report import confusion_matrix, per_class_ap, per_class_table, precision_recall_curves
    from ..training.evaluation import evaluate_with_details
    from ..viz.eval_plots import plot_confusion_matrix, plot_precision_recall
    from ..viz.figures import figure_png

    dataset = CocoDataset(annotations, images, max_size=model.cfg.max_size, normalization=model.cfg.normalization)
    run = evaluate_with_details(model, dataset, batch_size=args.batch_size, max_images=args.max_images,
                                ground_truth=args.gt)
    metrics = run.metrics
    per_class = {task: per_class_ap(run.evaluators[task]) for task in ("bbox", "segm")}
    print(per_class_table(per_class))
    confusion = {task: confusion_matrix(run.ground_truth, run.results[task], run.image_ids, iou_type=task,
                                        score_threshold=args.confusion_score) for task in ("bbox", "segm")}
    print(run.ground_truth_note)
    print(f"box AP {metrics['bbox']['AP']:.3f}, mask AP {metrics['segm']['AP']:.3f} "
          f"on {metrics['num_images']} images ({metrics['inference_seconds']:.1f} s inference)")
    metrics.update(ground_truth={"source": args.gt, "note": run.ground_truth_note},
                   per_class=per_class, confusion=confusion)
    if len(run.image_ids) < len(run.ground_truth.imgs):
        # a rescoring tool must be told which images were run (COCOeval's params.imgIds)
        metrics["image_ids"] = run.image_ids
    title = f"{model.cfg.name} on {Path(annotations).name} ({metrics['num_images']} images)"
    curves = {task: precision_recall_curves(run.evaluators[task]) for task in ("bbox", "segm")}
    return {"metrics": metrics, "results": run.results,
            "curves_png": figure_png(plot_precision_recall(curves, title=title)),
            "confusion_png": figure_png(plot_confusion_matrix(confusion, title=title))}


__all__ = ["add_parser", "run", "report_files", "REPORT_FILES", "DEFAULT_OUTPUT"]
