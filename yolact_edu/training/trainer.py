"""Training: the original recipe (reference §5) in a loop a reader can follow.

    >>> trainer = Trainer(model, train_set, val_dataset=val_set, out_dir="outputs/train",
    ...                   max_iter=2000, batch_size=8)
    >>> summary = trainer.run()          # Ctrl+C, SIGTERM or trainer.request_stop() end it cleanly

One iteration: a batch of augmented images -> ``model(images)`` -> ``model.criterion()`` (for
YOLACT, :class:`~yolact_edu.loss.YolactLoss`) -> sum of the parts -> backward -> optimiser step.
Any model of :func:`~yolact_edu.build.build_model` trains the same way (a two-stage model, whose
proposals are sampled against the ground truth, gets ``model(images, targets)``). Around it:

* the learning rate follows :func:`~yolact_edu.training.schedule.recipe_for` (warm-up, step decay,
  scaled by batch size);
* on CUDA the forward pass runs under autocast (fp16) with a gradient scaler (AMP);
* a step whose loss is not finite is skipped and counted (the original does the same);
* BatchNorm can be frozen (forced, as in the original, when a process gets fewer than 6
  images), and so can the whole backbone;
* checkpoints are written atomically every ``checkpoint_every`` iterations and at the end,
  the newest ``keep_checkpoints`` kept; ``resume`` restores model, optimiser, scaler,
  iteration, data position and RNG, so a resumed run continues exactly as an unbroken one;
* Ctrl+C and SIGTERM stop the loop between two steps, never inside one, and a checkpoint is
  written (:mod:`~yolact_edu.training.stop_signals`); the run's files go through the output folder's
  ledger (:mod:`~yolact_edu.files.output_folder`), so a file of the user's is never overwritten;
* a CSV log (``log.csv``), validation mAP (``validation.json``) and, optionally, TensorBoard;
* under ``torchrun`` each process trains on its share of every batch (DDP).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from numbers import Integral
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..bench.cpu import refuse_emulated_bf16
from ..build import config_from_dict
from ..data.coco import collate
from ..files.output_folder import OutputFolder
from ..files.run_lock import LOCK_NAME, RunLock
from . import distributed
from .checkpoint import (
    CHECKPOINT_FOLDER,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    read_checkpoint,
    resume_checkpoint,
    save_checkpoint,
)
from .log import BOOKKEEPING, TrainingBar, TrainingLog, tensorboard_writer
from .sampling import EpochSampler, SeededDataset
from .schedule import recipe_for
from .stop_signals import StopSignals, ignore_stop_signals

# This many steps in a row with a non-finite loss and the run has diverged: it stops (the original
# stops at the first NaN loss; a lone one, from a bad batch, is skipped here).
DIVERGED_AFTER = 5


class TrainingDiverged(ValueError):
    """The loss stayed non-finite: the settings (usually the learning rate) make training diverge."""


def _check_count(name: str, value, least: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}{' (or None)' if optional else ''}, got {value!r}")


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics fixed) and stop its gradients."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def build_optimizer(model: nn.Module, cfg, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay on all parameters, as the original) or AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class Trainer:
    """Trains a model (:class:`~yolact_edu.Yolact` or any of :func:`~yolact_edu.build.build_model`)
    on a :class:`~yolact_edu.data.CocoDataset`.

    model: the model to train (its ``cfg.num_classes`` must match the dataset's categories).
    train_dataset: built with ``augment=True`` (or not, to overfit on purpose).
    val_dataset: optional, built with ``augment=False``: scored every ``val_every`` iterations
        (and at the end) on at most ``val_max_images`` images.
    batch_size: images per iteration and process (default ``cfg.batch_size``); the schedule is
        scaled for the total over all processes.
    max_iter, lr: override the (scaled) recipe; warm-up and steps stretch with ``max_iter``.
    freeze_bn: None = the original's rule (frozen when a process gets fewer than 6 images).
    amp: True: mixed precision where it is safe by default, fp16 with a gradient scaler on CUDA,
        fp32 on the CPU; "bf16": bf16 autocast (no scaler: bf16 has fp32's range), the fast choice
        on CPUs with native bf16 (AVX512-BF16, AMX), refused on CPUs that would only emulate it
        (slower than fp32 there); False: fp32 everywhere.
    channels_last: weights and images in channels-last memory format, which oneDNN and cuDNN
        convolve faster (the numbers differ from contiguous only by float rounding).
    resume: a checkpoint path, or "auto" for the newest in ``out_dir/checkpoints`` (if any).
    protect: files and folders the run reads (annotation files, image folders, weights) that none of
        its outputs may replace (``yolact-edu train`` passes every path of its command line).
    callbacks: functions called as ``callback(event, info)`` with event "log" (info: the CSV row),
        "validation" (info: metrics) or "checkpoint" (info: {"path", "iteration"}).
    """

    def __init__(self, model: nn.Module, train_dataset, *, val_dataset=None,
                 out_dir: str | os.PathLike = "outputs/train", batch_size: int | None = None,
                 max_iter: int | None = None, lr: float | None = None, freeze_bn: bool | None = None,
                 freeze_backbone: bool = False, amp: bool | str = True, channels_last: bool = False,
                 device: str | torch.device | None = None,
                 num_workers: int = 0, seed: int = 0, checkpoint_every: int = 1000, keep_checkpoints: int = 3,
                 val_every: int | None = None, val_max_images: int | None = None, log_every: int = 10,
                 tensorboard: bool = False, progress: bool = True, resume: str | os.PathLike | None = None,
                 callbacks: list[Callable] | tuple = (), category_ids=None, protect=()):
        self.cfg = cfg = model.cfg
        for name, value, least, optional in (
                ("batch_size", batch_size, 1, True), ("max_iter", max_iter, 1, True),
                ("checkpoint_every", checkpoint_every, 1, False), ("keep_checkpoints", keep_checkpoints, 1, False),
                ("val_every", val_every, 1, True), ("val_max_images", val_max_images, 1, True),
                ("log_every", log_every, 1, False), ("num_workers", num_workers, 0, False)):
            _check_count(name, value, least, optional)
        if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0 (or None for the recipe's), got {lr!r}")
        num_classes = getattr(train_dataset, "num_classes", cfg.num_classes)
        if num_classes != cfg.num_classes:
            raise ValueError(f"the model predicts {cfg.num_classes} classes but the training set has "
                             f"{num_classes} categories; build the model with "
                             "cfg.with_classes(dataset.class_names)")
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.device = torch.device(device) if device is not None else distributed.default_device()
        if amp not in (True, False, "bf16"):
            raise ValueError(f"amp must be True, False or 'bf16', got {amp!r}")
        if amp == "bf16":
            refuse_emulated_bf16(self.device)
        self.batch_size = batch_size or cfg.batch_size
        self.schedule = recipe_for(cfg, self.batch_size * self.world_size, max_iter=max_iter, lr=lr)
        self.max_iter = self.schedule.max_iter
        self.out_dir = Path(out_dir)
        self.checkpoint_dir = self.out_dir / CHECKPOINT_FOLDER
        # Files the run writes; the ledger lets a resumed run replace them, never the user's files.
        self.outputs = OutputFolder(self.out_dir, hint="it is kept", protect=protect)
        if self.is_main:
            self.outputs.check(["log.csv", "summary.json", "validation.json"])
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.val_dataset, self.val_every, self.val_max_images = val_dataset, val_every, val_max_images
        self.log_every, self.progress = log_every, progress and self.is_main
        self.callbacks = list(callbacks)
        self.category_ids = category_ids if category_ids is not None else getattr(train_dataset, "category_ids", None)
        self.seed = seed

        self.model = model.to(self.device).train()
        self.channels_last = channels_last
        if channels_last:
            self.model = model.to(memory_format=torch.channels_last)
        self.freeze_backbone = freeze_backbone
        self.freeze_bn = self.batch_size < 6 if freeze_bn is None else freeze_bn
        if freeze_backbone:
            for p in model.backbone_parameters():      # each family names its own (never the FPN)
                p.requires_grad_(False)
        self._set_train_mode()
        self.use_amp = amp is True and self.device.type == "cuda"          # fp16 + gradient scaler
        self.autocast_dtype = torch.bfloat16 if amp == "bf16" else torch.float16 if self.use_amp else None
        self.criterion = model.criterion()
        self.optimizer = build_optimizer(model, cfg, self.schedule(0))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.network = distributed.wrap(model, self.device,
                                        find_unused=getattr(cfg, "use_maskiou", False) or freeze_backbone)

        self.sampler = EpochSampler(len(train_dataset), seed, self.rank, self.world_size)
        self.loader = torch.utils.data.DataLoader(
            SeededDataset(train_dataset), batch_size=self.batch_size, sampler=self.sampler,
            collate_fn=collate, num_workers=num_workers, drop_last=True,
            generator=torch.Generator(),          # keeps the DataLoader off the global RNG
            worker_init_fn=ignore_stop_signals if num_workers else None, persistent_workers=False)
        self.batches_per_epoch = self.sampler.per_rank() // self.batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(f"the training set has {len(train_dataset)} images, fewer than one batch of "
                             f"{self.batch_size} per process; lower batch_size")

        self.iteration = self.epoch = self.batch_in_epoch = 0
        self.skipped_steps = 0
        self.failed_in_a_row = 0            # consecutive steps with a non-finite loss (DIVERGED_AFTER)
        self.seconds_before = 0.0           # training seconds of the runs this one resumes
        self._run_started: float | None = None
        self.validations: list[dict] = []
        self._stop = False
        self._signals = StopSignals()           # what Ctrl+C / SIGTERM asked for during run()
        self._writer = None
        if tensorboard and self.is_main:
            self._writer = tensorboard_writer(self.out_dir / "tensorboard")
        torch.manual_seed(seed)
        if resume is not None:
            path = resume_checkpoint(self.out_dir, resume)
            if path is not None:
                self.load_state(path)
        elif latest_checkpoint(self.checkpoint_dir) is not None:
            # A fresh run would interleave its checkpoints with the old ones, and pruning (by
            # iteration) could delete the new run's files while keeping the old run's.
            raise ValueError(f"{self.checkpoint_dir} already holds checkpoints of an earlier run (newest: "
                             f"{latest_checkpoint(self.checkpoint_dir).name}); resume it with resume='auto' "
                             "(--resume auto) or choose another output folder")

    # -- state ----------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.freeze_backbone:
            for module in self.model.backbone_modules():
                module.eval()
        if self.freeze_bn:
            freeze_batchnorm(self.model)

    def state(self) -> dict:
        """Everything besides the model that an exact resume needs (plain values and tensors)."""
        return {"iteration": self.iteration, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                "trainer": {"seed": self.seed, "skipped_steps": self.skipped_steps, "seconds": self.seconds(),
                            "batch_size": self.batch_size, "world_size": self.world_size,
                            "max_iter": self.max_iter, "validations": self.validations}}

    def save(self) -> Path:
        """Write a checkpoint for the current iteration (main process only); prune old ones."""
        name = f"checkpoints/{checkpoint_name(self.cfg, self.iteration)}"
        path = self.out_dir / name
        if self.is_main:
            save_checkpoint(self.outputs.path(name), self.model, category_ids=self.category_ids, **self.state())
            for old in list_checkpoints(self.checkpoint_dir)[:-self.keep_checkpoints]:
                self.outputs.remove(f"checkpoints/{old.name}")      # a file not in the ledger stays
            self._emit("checkpoint", {"path": str(path), "iteration": self.iteration})
        return path

    def load_state(self, path: str | os.PathLike) -> None:
        """Resume from a checkpoint written by :meth:`save` (same config and batch layout)."""
        checkpoint = read_checkpoint(path)
        if config_from_dict(dict(checkpoint["config"])) != self.cfg:
            raise ValueError(f"{path} was trained with a different config "
                             f"({checkpoint['config'].get('name')}); resume needs the same one")
        trainer = checkpoint["trainer"]
        if (trainer["batch_size"], trainer["world_size"]) != (self.batch_size, self.world_size):
            raise ValueError(f"{path} was trained with batch {trainer['batch_size']} on {trainer['world_size']} "
                             f"process(es); resuming with batch {self.batch_size} on {self.world_size} would "
                             "change the data order and schedule")
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.iteration, self.epoch = checkpoint["iteration"], checkpoint["epoch"]
        self.batch_in_epoch = checkpoint["batch_in_epoch"]
        self.skipped_steps, self.seed = trainer["skipped_steps"], trainer["seed"]
        self.seconds_before = float(trainer.get("seconds", 0.0))
        self.validations = list(trainer.get("validations", []))
        self.sampler.seed = self.seed
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if checkpoint["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        if self.is_main:
            print(f"resumed from {path} at iteration {self.iteration}")

    @torch.no_grad()
    def predict(self, images, **detect_kwargs):
        """:meth:`Yolact.predict` with the model being trained, e.g. to show progress from a
        callback or another thread: it predicts through an eval-mode copy, and the model's own
        mode (any frozen BatchNorm or backbone included) is never touched."""
        return self.model.predict(images, **detect_kwargs)

    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint and return from :meth:`run`."""
        self._stop = True

    def _should_stop(self) -> bool:
        """Whether to end the loop now; under DDP every process gets the same answer (one process
        stopping alone would leave the others waiting for its gradients)."""
        return distributed.any_true(self._stop or self._signals.received is not None, self.device)

    def _emit(self, event: str, info: dict) -> None:
        for callback in self.callbacks:
            callback(event, info)

    # -- one step -------------------------------------------------------------------------
    def step(self, images: torch.Tensor, targets: list[dict]) -> dict[str, float] | None:
        """One optimiser step on a batch; returns the loss parts, or None if it was skipped
        because the loss was not finite."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule(self.iteration)
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [{k: v.to(self.device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
        inputs = (images, targets) if getattr(self.model, "forward_takes_targets", False) else (images,)
        with (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
              else contextlib.nullcontext()):
            raw = self.network(*inputs)
        raw = {k: v.float() for k, v in raw.items()}       # the loss in fp32: BCE/log terms need it
        self.optimizer.zero_grad(set_to_none=True)
        # Diverged weights give NaN outputs, on which the mask BCE raises rather than returning NaN:
        # test the outputs first, then the loss (all processes agree, so none waits for the others).
        outputs_finite = distributed.all_finite(torch.stack([v.detach().abs().amax() for v in raw.values()]))
        if outputs_finite:
            losses = self.criterion(raw, targets)
            total = sum(losses.values())
        if not outputs_finite or not distributed.all_finite(total):
            self.skipped_steps += 1
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= DIVERGED_AFTER:
                lr = self.optimizer.param_groups[0]["lr"]
                raise TrainingDiverged(
                    f"training diverged at iteration {self.iteration + 1}: the last {self.failed_in_a_row} steps had "
                    f"a non-finite loss (learning rate {lr:g}); lower the learning rate (--lr); the last good "
                    f"checkpoint, if any, is in {self.checkpoint_dir}")
            return None
        self.failed_in_a_row = 0
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {name: float(value.detach()) for name, value in losses.items()} | {"total": float(total.detach())}

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> dict:
        """Train until ``max_iter`` (or a stop request, Ctrl+C or SIGTERM); returns a summary dict
        ("interrupted" is True and "signal" names it when a signal stopped the run)."""
        # one writer per run folder; the OS drops the lock with the process, however it ends
        if self.is_main:
            self.outputs.claim(LOCK_NAME)       # the lock file is the run's own, listed in the ledger
        lock = RunLock(self.out_dir).acquire() if self.is_main else None
        self._run_started = time.perf_counter()
        try:
            return self._run()
        finally:
            self.seconds_before, self._run_started = self.seconds(), None     # a later run() adds to it
            if lock is not None:
                lock.release()

    def seconds(self) -> float:
        """Training seconds so far, the resumed runs' included (the ``seconds`` column of log.csv)."""
        started = self._run_started
        return self.seconds_before + (time.perf_counter() - started if started is not None else 0.0)

    def _run(self) -> dict:
        log = TrainingLog(self.outputs, "log.csv", self.iteration) if self.is_main else None
        bar = TrainingBar(total=self.max_iter, initial=self.iteration, desc=f"train {self.cfg.name}",
                          unit="it", disable=not self.progress, dynamic_ncols=True,
                          images_per_iteration=self.batch_size * self.world_size)
        # Ctrl+C and SIGTERM only ask to stop: the loop ends at the next step boundary and writes a
        # checkpoint, so weights, optimiser, iteration and data position always agree (exact resume).
        self._signals = StopSignals("stopping after this step with a checkpoint (send it again to quit at "
                                    "once, without one)" if self.is_main else None)
        self._set_train_mode()
        try:
            with self._signals:
                self._loop(log, bar)
        except KeyboardInterrupt:
            # Only a second Ctrl+C gets here, possibly in the middle of a step: a checkpoint now
            # could pair new weights with an old iteration count, so none is written.
            if self.is_main:
                print(f"\nquit at iteration {self.iteration} without a checkpoint; --resume auto continues "
                      "from the last one")
            raise
        finally:
            bar.close()
        received = self._signals.received
        interrupted = received is not None
        if interrupted and self.is_main:
            print(f"\n{received} at iteration {self.iteration}; writing a checkpoint to resume from")
        path = self.save()
        if self.val_dataset is not None and not interrupted and not self._stop:
            self.validate()
        if self._writer is not None:
            self._writer.close()
        summary = {"iteration": self.iteration, "max_iter": self.max_iter, "checkpoint": str(path),
                   "skipped_steps": self.skipped_steps, "interrupted": interrupted, "signal": received,
                   "stopped": self._stop, "validation": self.validations[-1] if self.validations else None}
        if self.is_main:
            self.outputs.write_text("summary.json", json.dumps(summary, indent=1))
            if self.skipped_steps:
                print(f"note: {self.skipped_steps} step(s) had a non-finite loss and were skipped")
        self._stop = False
        return summary

    def _loop(self, log: TrainingLog | None, bar) -> None:
        """The iterations themselves; a stop is only ever honoured between two of them."""
        window: list[dict] = []
        window_start, images_seen = time.perf_counter(), 0
        while self.iteration < self.max_iter and not self._should_stop():
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch * self.batch_size)
            for images, targets in self.loader:
                parts = self.step(images, targets)
                self.iteration += 1
                self.batch_in_epoch += 1
                images_seen += len(images) * self.world_size
                if parts is not None:
                    window.append(parts)
                # asked once per step: under DDP it is a collective, and every process must agree
                stopping = self._should_stop()
                # a stop between two log rows still logs the steps since the last one, so the log,
                # the loss plot and the checkpoint all end at the same iteration
                if self.iteration % self.log_every == 0 or self.iteration == self.max_iter or stopping:
                    elapsed = time.perf_counter() - window_start
                    row = self._log_row(window, images_seen / max(elapsed, 1e-9))
                    window, window_start, images_seen = [], time.perf_counter(), 0
                    if log is not None:
                        log.write(row)
                        self._tensorboard(row)
                    # the losses; img/s is the bar's own (TrainingBar), from the same rate as its s/it
                    bar.set_postfix({k: f"{row[k]:.3f}" for k in row if k not in BOOKKEEPING})
                    self._emit("log", row)
                    # a log callback may have asked to stop (it may be the monitor's button): honour it at
                    # this step, whose row is written (every process logs the same steps, so DDP agrees)
                    stopping = stopping or self._should_stop()
                bar.update(1)
                if self.batch_in_epoch >= self.batches_per_epoch:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                if self.iteration >= self.max_iter or stopping:
                    return                          # run() writes the last checkpoint
                if self.iteration % self.checkpoint_every == 0:
                    self.save()
                if self.val_every and self.iteration % self.val_every == 0:
                    self.validate()

    def _log_row(self, window: list[dict], images_per_second: float) -> dict:
        row = {"iteration": self.iteration, "epoch": self.epoch, "lr": self.schedule(self.iteration - 1)}
        for name in window[0] if window else ():
            row[name] = distributed.mean(sum(w[name] for w in window) / len(window), self.device)
        row["images_per_second"] = images_per_second
        row["skipped_steps"] = self.skipped_steps
        row["seconds"] = round(self.seconds(), 3)
        return row

    def _tensorboard(self, row: dict) -> None:
        if self._writer is None:
            return
        for key, value in row.items():
            if key not in ("iteration", "seconds", "epoch"):
                self._writer.add_scalar(f"train/{key}", value, row["iteration"])

    def validate(self) -> dict | None:
        """COCO box and mask AP on the validation set (main process; the others wait)."""
        metrics = None
        if self.is_main and self.val_dataset is not None:
            from .evaluation import evaluate
            result = evaluate(self.model, self.val_dataset, max_images=self.val_max_images,
                              progress=False, verbose=False)
            metrics = {"iteration": self.iteration, "box_AP": result["bbox"]["AP"],
                       "box_AP50": result["bbox"]["AP50"], "mask_AP": result["segm"]["AP"],
                       "mask_AP50": result["segm"]["AP50"], "num_images": result["num_images"]}
            self.validations.append(metrics)
            self.outputs.write_text("validation.json", json.dumps(self.validations, indent=1))
            if self._writer is not None:
                for key in ("box_AP", "mask_AP"):
                    self._writer.add_scalar(f"val/{key}", metrics[key], self.iteration)
            tqdm.write(f"iteration {self.iteration}: box AP {metrics['box_AP']:.3f}, "
                       f"mask AP {metrics['mask_AP']:.3f} ({metrics['num_images']} val images)")
            self._emit("validation", metrics)
        self._set_train_mode()
        distributed.barrier()
        return metrics


__all__ = ["Trainer", "freeze_batchnorm", "build_optimizer"]
