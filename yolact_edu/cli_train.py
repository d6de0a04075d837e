"""``yolact-edu train``, ``yolact-edu eval`` and ``yolact-edu demo``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli_common import at_least, device, formatter, non_negative_int, positive_float, positive_int

SHAPES_ROOT = "data/shapes"


def add_parsers(sub) -> None:
    demo = sub.add_parser(
        "demo", help="train yolact_tiny on the synthetic shapes set, evaluate, draw (the main job)",
        formatter_class=formatter,
        description="Create the synthetic shapes set if missing, train yolact_tiny on it (GPU if present), "
                    "evaluate box and mask AP on its val split and write the checkpoint, drawn detections, "
                    "the prototype grid, the loss curve and metrics.json.",
        epilog="examples:\n  yolact-edu demo                 # ~8 min on a 2-core CPU\n"
               "  yolact-edu demo --quick         # ~1 min, checks every step\n"
               "  yolact-edu demo --device cuda --output outputs/demo_gpu")
    demo.add_argument("--quick", action="store_true", help="a few iterations only (what CI runs)")
    demo.add_argument("--output", default="outputs/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--data", default=SHAPES_ROOT, help="shapes set folder, made if missing (default: %(default)s)")
    demo.add_argument("--max-iter", type=positive_int, help="override the number of iterations")
    demo.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    demo.add_argument("--seed", type=non_negative_int, default=0)
    demo.add_argument("--force", action="store_true",
                      help="replace files in the output folder that yolact-edu did not write")

    train = sub.add_parser(
        "train", help="train a model on COCO-format data (default: the synthetic shapes set)",
        formatter_class=formatter,
        description="Train with the original recipe (SGD, warm-up, step decay, scaled by batch size) or the "
                    "config's own. Checkpoints go to OUTPUT/checkpoints and the run resumes from the newest "
                    "with --resume auto. Under torchrun every process takes its share (DDP).",
        epilog="examples:\n"
               "  yolact-edu train                                        # yolact_tiny on data/shapes\n"
               "  yolact-edu train --train-annotations my/train.json --train-images my/images \\\n"
               "      --val-annotations my/val.json --val-images my/images --config yolact_resnet50 \\\n"
               "      --weights yolact_resnet50_54_800000.pth --max-iter 20000 --batch-size 8\n"
               "  yolact-edu train --resume auto --output outputs/train   # continue after Ctrl+C\n"
               "  torchrun --nproc_per_node 2 -m yolact_edu.cli train --batch-size 4")
    data = train.add_argument_group("data (default: the synthetic shapes set, made if missing)")
    data.add_argument("--train-annotations", help="COCO instances JSON of the training images")
    data.add_argument("--train-images", help="folder the training file_names are relative to")
    data.add_argument("--val-annotations", help="COCO instances JSON for validation mAP")
    data.add_argument("--val-images", help="folder of the validation images")
    model = train.add_argument_group("model")
    model.add_argument("--config", default="yolact_tiny", help="config name (default: %(default)s)")
    model.add_argument("--max-size", type=at_least(32), help="input side S (default: the config's)")
    model.add_argument("--weights", help="start from these weights (official or ours); head tensors whose "
                                         "shape differs (another class count) are re-initialised")
    model.add_argument("--resume", help="'auto' (newest checkpoint in OUTPUT/checkpoints) or a checkpoint path")
    recipe = train.add_argument_group("recipe")
    recipe.add_argument("--batch-size", type=positive_int,
                        help="images per iteration and process (default: the config's)")
    recipe.add_argument("--max-iter", type=positive_int,
                        help="iterations (default: the config's, scaled by batch size)")
    recipe.add_argument("--lr", type=positive_float, help="peak learning rate (default: the config's, scaled)")
    recipe.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=None,
                        help="freeze BatchNorm (default: only when a process gets fewer than 6 images)")
    recipe.add_argument("--augment", choices=("original", "light", "none"), default="original",
                        help="original: the paper's (photometric, zoom-out, crop, mirror); light: photometric "
                             "and mirror only, for short schedules; none (default: %(default)s)")
    recipe.add_argument("--freeze-backbone", action="store_true", help="train only FPN, protonet and heads")
    recipe.add_argument("--no-amp", action="store_true", help="full fp32 on CUDA")
    recipe.add_argument("--seed", type=non_negative_int, default=0)
    run = train.add_argument_group("run")
    run.add_argument("--output", default="outputs/train", help="output folder (default: %(default)s)")
    run.add_argument("--device", default="auto", help="cpu, cuda ... (default: cuda if available)")
    run.add_argument("--workers", type=non_negative_int, default=0,
                     help="DataLoader worker processes (default: %(default)s)")
    run.add_argument("--checkpoint-every", type=positive_int, default=1000,
                     help="iterations between checkpoints (default: %(default)s)")
    run.add_argument("--keep", type=positive_int, default=3, help="checkpoints kept (default: %(default)s)")
    run.add_argument("--val-every", type=positive_int, help="validation mAP every N iterations (and at the end)")
    run.add_argument("--val-max-images", type=positive_int, help="validate on at most this many images")
    run.add_argument("--log-every", type=positive_int, default=10)
    run.add_argument("--tensorboard", action="store_true", help="also log to OUTPUT/tensorboard")

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
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--output", help="also write the metrics to this JSON file")
    evaluate.add_argument("--force", action="store_true",
                          help="replace an existing --output file that yolact-edu did not write")


def _shapes_paths(root: str = SHAPES_ROOT) -> dict:
    from .data import make_shapes
    return make_shapes(root, progress=True)


def cmd_demo(args) -> int:
    from .demo import run_demo
    run_demo(args.output, args.data, quick=args.quick, max_iter=args.max_iter, device=device(args.device),
             seed=args.seed, force=args.force)
    return 0


def cmd_train(args) -> int:
    import torch

    from . import distributed
    from .config import get_config
    from .data import CocoDataset, SSDAugmentation
    from .model import Yolact
    from .stop_signals import EXIT_CODES
    from .train import Trainer
    from .weights import load_matching

    distributed.init_from_env()
    try:
        if bool(args.train_annotations) != bool(args.train_images):
            raise ValueError("give both --train-annotations and --train-images (or neither for the shapes set)")
        if bool(args.val_annotations) != bool(args.val_images):
            raise ValueError("give both --val-annotations and --val-images")
        train_ann, train_img, val_ann, val_img = (args.train_annotations, args.train_images,
                                                  args.val_annotations, args.val_images)
        if not train_ann:
            paths = _shapes_paths()
            train_ann, train_img = paths["train_annotations"], paths["train_images"]
            if not val_ann:
                val_ann, val_img = paths["val_annotations"], paths["val_images"]
        cfg = get_config(args.config)
        if args.max_size:
            cfg = cfg.replace(max_size=args.max_size)
        main = distributed.rank() == 0
        augment = {"original": True, "none": False,
                   "light": SSDAugmentation(cfg.max_size, zoom_out=1.0, sample_crop=False)}[args.augment]
        train_set = CocoDataset(train_ann, train_img, max_size=cfg.max_size, normalization=cfg.normalization,
                                augment=augment, include_empty=False, verbose=main)
        if (train_set.num_classes, train_set.class_names) != (cfg.num_classes, cfg.class_names):
            if main:
                print(f"{cfg.name}: {train_set.num_classes} classes from {train_ann} "
                      f"({', '.join(train_set.class_names[:8])}{', ...' if train_set.num_classes > 8 else ''})")
            cfg = cfg.replace(num_classes=train_set.num_classes, class_names=train_set.class_names)
        val_set = (CocoDataset(val_ann, val_img, max_size=cfg.max_size, normalization=cfg.normalization,
                               verbose=main) if val_ann else None)
        if val_set is not None and val_set.category_ids != train_set.category_ids:
            raise ValueError(f"{val_ann} and {train_ann} have different categories "
                             f"({list(val_set.category_ids)[:8]} vs {list(train_set.category_ids)[:8]})")
        torch.manual_seed(args.seed)
        model = Yolact(cfg)
        if args.weights and not args.resume:
            load_matching(model, args.weights, verbose=main)
        chosen = None if args.device == "auto" else device(args.device)
        trainer = Trainer(model, train_set, val_dataset=val_set, out_dir=args.output, batch_size=args.batch_size,
                          max_iter=args.max_iter, lr=args.lr, freeze_bn=args.freeze_bn,
                          freeze_backbone=args.freeze_backbone, amp=not args.no_amp, device=chosen,
                          num_workers=args.workers, seed=args.seed, checkpoint_every=args.checkpoint_every,
                          keep_checkpoints=args.keep, val_every=args.val_every,
                          val_max_images=args.val_max_images, log_every=args.log_every,
                          tensorboard=args.tensorboard, resume=args.resume)
        summary = trainer.run()
        if main:
            state = f"stopped by {summary['signal']}" if summary["interrupted"] else "finished"
            print(f"{state} at iteration {summary['iteration']}/{summary['max_iter']}; checkpoint "
                  f"{summary['checkpoint']}")
            if summary["interrupted"]:
                print(f"resume with: yolact-edu train --resume auto --output {args.output} (same options)")
        return EXIT_CODES.get(summary["signal"], 1) if summary["interrupted"] else 0
    finally:
        distributed.cleanup()


def cmd_eval(args) -> int:
    from .checkpoint import load_model
    from .data import CocoDataset
    from .evaluate import evaluate
    from .output_folder import OutputFolder

    if bool(args.annotations) != bool(args.images):
        raise ValueError("give both --annotations and --images (or neither for the shapes val split)")
    outputs = None
    if args.output:
        output = Path(args.output)
        outputs = OutputFolder(output.parent, force=args.force)
        outputs.check([output.name])                  # before minutes of evaluation, not after
    # The checkpoint first: a wrong path must not cost a 700-image dataset generation.
    model = load_model(args.weights, config=args.config, device=device(args.device))
    annotations, images = args.annotations, args.images
    if not annotations:
        paths = _shapes_paths()
        annotations, images = paths["val_annotations"], paths["val_images"]
    dataset = CocoDataset(annotations, images, max_size=model.cfg.max_size, normalization=model.cfg.normalization)
    metrics = evaluate(model, dataset, batch_size=args.batch_size, max_images=args.max_images)
    print(f"box AP {metrics['bbox']['AP']:.3f}, mask AP {metrics['segm']['AP']:.3f} "
          f"on {metrics['num_images']} images ({metrics['inference_seconds']:.1f} s inference)")
    if outputs is not None:
        print(f"wrote {outputs.write_text(Path(args.output).name, json.dumps(metrics, indent=1))}")
    return 0


__all__ = ["add_parsers", "cmd_demo", "cmd_train", "cmd_eval"]
