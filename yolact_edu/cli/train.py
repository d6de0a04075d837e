"""``yolact-edu train``: train any config on COCO-format data (default: the shapes set)."""
from __future__ import annotations

import argparse

from ..config import AUGMENTATIONS
from .common import (
    add_device_option,
    at_least,
    command_inputs,
    device,
    formatter,
    non_negative_int,
    positive_float,
    positive_int,
    refuse_bf16_option,
    shapes_paths,
)


def add_parser(sub) -> None:
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
    model.add_argument("--config", default="yolact_tiny",
                       help="model name, any of `yolact-edu configs`, e.g. maskrcnn_tiny (default: %(default)s)")
    model.add_argument("--max-size", type=at_least(32), help="input side S (default: the config's)")
    model.add_argument("--num-protos", type=positive_int,
                       help="prototypes k of a YOLACT config (default: the config's, 32 for most)")
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
    recipe.add_argument("--augment", choices=AUGMENTATIONS, default=None,
                        help="original: the paper's (photometric, zoom-out, crop, mirror); light: photometric "
                             "and mirror only, for short schedules; none (default: the config's, e.g. light "
                             "for yolact_tiny, original for the official configs)")
    recipe.add_argument("--freeze-backbone", action="store_true", help="train only FPN, protonet and heads")
    recipe.add_argument("--no-amp", action="store_true", help="full fp32 on CUDA")
    recipe.add_argument("--fast", action="store_true",
                        help="bf16 autocast and channels-last: much faster on a GPU or a CPU with native bf16 "
                             "(AVX512-BF16 or AMX); refused on a CPU without it, where emulated bf16 is slower "
                             "than fp32 (docs/benchmarks.md has the figures)")
    recipe.add_argument("--seed", type=non_negative_int, default=0)
    run = train.add_argument_group("run")
    run.add_argument("--output", default="outputs/train", help="output folder (default: %(default)s)")
    add_device_option(run)
    run.add_argument("--workers", type=non_negative_int, default=0,
                     help="DataLoader worker processes (default: %(default)s)")
    run.add_argument("--checkpoint-every", type=positive_int, default=1000,
                     help="iterations between checkpoints (default: %(default)s)")
    run.add_argument("--keep", type=positive_int, default=3, help="checkpoints kept (default: %(default)s)")
    run.add_argument("--val-every", type=positive_int, help="validation mAP every N iterations (and at the end)")
    run.add_argument("--val-max-images", type=positive_int, help="validate on at most this many images")
    run.add_argument("--log-every", type=positive_int, default=10)
    run.add_argument("--tensorboard", action="store_true", help="also log to OUTPUT/tensorboard")


def run(args) -> int:
    import torch

    from ..build import build_model, get_model_config
    from ..data import CocoDataset
    from ..training import distributed
    from ..training.checkpoint import resume_checkpoint
    from ..training.stop_signals import EXIT_CODES
    from ..training.trainer import Trainer
    from ..weights import load_matching

    refuse_bf16_option(args, args.fast)
    distributed.init_from_env()
    try:
        if bool(args.train_annotations) != bool(args.train_images):
            raise ValueError("give both --train-annotations and --train-images (or neither for the shapes set)")
        if bool(args.val_annotations) != bool(args.val_images):
            raise ValueError("give both --val-annotations and --val-images")
        train_ann, train_img, val_ann, val_img = (args.train_annotations, args.train_images,
                                                  args.val_annotations, args.val_images)
        if not train_ann:
            paths = shapes_paths()
            train_ann, train_img = paths["train_annotations"], paths["train_images"]
            if not val_ann:
                val_ann, val_img = paths["val_annotations"], paths["val_images"]
        cfg = get_model_config(args.config)
        if args.max_size:
            cfg = cfg.replace(max_size=args.max_size)
        main = distributed.rank() == 0
        if args.num_protos:
            if not hasattr(cfg, "num_protos"):
                raise ValueError(f"--num-protos {args.num_protos}: {cfg.name} has no prototypes "
                                 "(it is not a YOLACT config)")
            cfg = cfg.replace(num_protos=args.num_protos)
        if args.augment:
            cfg = cfg.replace(augmentation=args.augment)     # the checkpoint records what was used
        train_set = CocoDataset(train_ann, train_img, max_size=cfg.max_size, normalization=cfg.normalization,
                                augment=cfg.augmentation, include_empty=False, verbose=main)
        if main:
            print(f"{cfg.name}: {cfg.augmentation} augmentation")
        if train_set.class_names != cfg.class_names:
            if main:
                print(f"{cfg.name}: {train_set.num_classes} classes from {train_ann} "
                      f"({', '.join(train_set.class_names[:8])}{', ...' if train_set.num_classes > 8 else ''})")
            cfg = cfg.with_classes(train_set.class_names)
        val_set = (CocoDataset(val_ann, val_img, max_size=cfg.max_size, normalization=cfg.normalization,
                               verbose=main) if val_ann else None)
        if val_set is not None and val_set.category_ids != train_set.category_ids:
            raise ValueError(f"{val_ann} and {train_ann} have different categories "
                             f"({list(val_set.category_ids)[:8]} vs {list(train_set.category_ids)[:8]})")
        torch.manual_seed(args.seed)
        model = build_model(cfg)
        # --weights starts a run; a run that resumes has its own. "--resume auto" with no checkpoint
        # in the output folder yet is a first start, so the weights apply (the pattern a long run
        # is started with and restarted with, unchanged).
        if args.weights and resume_checkpoint(args.output, args.resume) is None:
            load_matching(model, args.weights, verbose=main)
        chosen = device(args.device)
        trainer = Trainer(model, train_set, val_dataset=val_set, out_dir=args.output, batch_size=args.batch_size,
                          max_iter=args.max_iter, lr=args.lr, freeze_bn=args.freeze_bn,
                          freeze_backbone=args.freeze_backbone, amp="bf16" if args.fast else not args.no_amp,
                          channels_last=args.fast, device=chosen,
                          num_workers=args.workers, seed=args.seed, checkpoint_every=args.checkpoint_every,
                          keep_checkpoints=args.keep, val_every=args.val_every,
                          val_max_images=args.val_max_images, log_every=args.log_every,
                          tensorboard=args.tensorboard, resume=args.resume, protect=command_inputs(args))
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


__all__ = ["add_parser", "run"]
