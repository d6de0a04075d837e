"""``yolact-edu train``: train any config on COCO-format data (default: the shapes set)."""
from __future__ import annotations

import argparse
import json

from ..config import AUGMENTATIONS
from ..training.log import TENSORBOARD_INSTALL
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

# What the run folder gets besides the trainer's own files (log.csv, checkpoints/, validation.json, ...).
ARGS_FILE, CONFIG_FILE = "args.json", "config.json"


def _config_default(field: str) -> str:
    """The help's "(default: ...)" for a config field: one number when every model has the same."""
    from ..build import get_model_config, list_models
    values = {name: getattr(get_model_config(name), field) for name in list_models()}
    if len(set(values.values())) == 1:
        return f"the config's, {next(iter(values.values()))} for every model"
    return f"the config's, {values['yolact_tiny']} for yolact_tiny"


def add_parser(sub) -> None:
    from ..config import get_config
    tiny = get_config("yolact_tiny")
    train = sub.add_parser(
        "train", help="train a model on COCO-format data (default: the synthetic shapes set)",
        formatter_class=formatter,
        description="Train with the original recipe (SGD, warm-up, step decay, scaled by batch size) or the "
                    "config's own. Checkpoints go to OUTPUT/checkpoints and the run resumes from the newest "
                    "with --resume auto. Under torchrun every process takes its share (DDP). The run folder "
                    "also gets log.csv and loss_curve.png, validation.json and ap_history.png (with validation "
                    "data), args.json (the options as resolved) and config.json (the model config).",
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
                                         "shape differs (another class count) are re-initialised (default: none, "
                                         "random initialisation)")
    model.add_argument("--resume", help="'auto' (newest checkpoint in OUTPUT/checkpoints) or a checkpoint path "
                                        "(default: a fresh run)")
    recipe = train.add_argument_group("recipe")
    recipe.add_argument("--batch-size", type=positive_int,
                        help=f"images per iteration and process (default: {_config_default('batch_size')})")
    recipe.add_argument("--max-iter", type=positive_int,
                        help=f"iterations (default: the config's, scaled by batch size: {tiny.max_iter} for "
                             f"yolact_tiny at batch {tiny.batch_size})")
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
    recipe.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the initial weights and the data order (default: %(default)s)")
    run = train.add_argument_group("run")
    run.add_argument("--output", default="outputs/train", help="output folder (default: %(default)s)")
    add_device_option(run)
    run.add_argument("--workers", type=non_negative_int, default=0,
                     help="DataLoader worker processes (default: %(default)s)")
    run.add_argument("--checkpoint-every", type=positive_int, default=1000,
                     help="iterations between checkpoints (default: %(default)s)")
    run.add_argument("--keep", type=positive_int, default=3, help="checkpoints kept (default: %(default)s)")
    run.add_argument("--val-every", type=positive_int,
                     help="validation mAP every N iterations and at the end (default: only at the end)")
    run.add_argument("--val-max-images", type=positive_int,
                     help="validate on at most this many images (default: all)")
    run.add_argument("--log-every", type=positive_int, default=10,
                     help="iterations per row of log.csv (default: %(default)s)")
    run.add_argument("--tensorboard", action="store_true",
                     help=f"also log to OUTPUT/tensorboard (needs: {TENSORBOARD_INSTALL})")


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
        if main:
            _record_run(args, trainer, {"train_annotations": train_ann, "train_images": train_img,
                                        "val_annotations": val_ann, "val_images": val_img})
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


def _record_run(args, trainer, data: dict) -> None:
    """Write args.json and config.json into the run folder, and have the loss curves and the AP
    history redrawn there at every checkpoint and validation (so they are current after Ctrl+C too).
    Every name is checked first: a file of the user's there stops the run before it trains."""
    from ..config import config_to_dict
    from ..training.log import AP_HISTORY, LOSS_CURVE, write_run_figures

    outputs = trainer.outputs
    outputs.check([ARGS_FILE, CONFIG_FILE, LOSS_CURVE, AP_HISTORY])
    cfg = trainer.cfg
    resolved = {key: value for key, value in vars(args).items() if key not in ("command", "debug")}
    resolved |= {key: str(value) if value is not None else None for key, value in data.items()}
    # what the defaults became: the config's and the recipe's values, scaled for this batch
    resolved |= {"config": cfg.name, "max_size": cfg.max_size, "num_protos": getattr(cfg, "num_protos", None),
                 "augment": cfg.augmentation, "batch_size": trainer.batch_size, "world_size": trainer.world_size,
                 "max_iter": trainer.max_iter, "lr": trainer.schedule.lr, "freeze_bn": trainer.freeze_bn,
                 "device": str(trainer.device)}
    outputs.write_text(ARGS_FILE, json.dumps(resolved, indent=1, default=str))
    outputs.write_text(CONFIG_FILE, json.dumps(config_to_dict(cfg), indent=1))

    def redraw(event: str, _info: dict) -> None:
        if event in ("checkpoint", "validation"):
            write_run_figures(outputs, f"{cfg.name}, batch {trainer.batch_size * trainer.world_size}",
                              trainer.validations)

    trainer.callbacks.append(redraw)


__all__ = ["add_parser", "run", "ARGS_FILE", "CONFIG_FILE"]
