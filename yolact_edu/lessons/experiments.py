"""Small training experiments for the notebooks: train a config, score it, compare settings.

    >>> from yolact_edu.lessons.experiments import train_and_evaluate, prototype_ablation
    >>> result = train_and_evaluate(cfg, train_set, val_set, out_dir="outputs/run", max_iter=500)
    >>> result["mask_AP"], result["model"]
    >>> rows = prototype_ablation(cfg, [8, 32], train_set, val_set, out_dir="outputs/k", max_iter=500)
    >>> share_of_reference(0.15, 0.56)               # notebook 04's predict-then-reveal
    '10 to 50 %'
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..files.output_folder import LEDGER, OutputFolder
from ..model import Yolact
from ..training.evaluation import evaluate
from ..training.trainer import Trainer


def fresh_run_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` with an earlier training run's files removed (those its ledger lists: see
    :mod:`yolact_edu.files.output_folder`); anything else in it is left alone, and refused rather than
    deleted when it would be in the new run's way."""
    out_dir = Path(out_dir)
    OutputFolder(out_dir).clear()
    leftovers = sorted(p.name for p in out_dir.iterdir() if p.name != LEDGER) if out_dir.is_dir() else []
    if leftovers:
        raise ValueError(f"{out_dir} holds files no yolact_edu run wrote ({', '.join(leftovers[:5])}); "
                         "choose another folder (a run of a yolact_edu older than its ledger of outputs "
                         "counts as such: delete that folder yourself to reuse it)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def train_and_evaluate(cfg, train_set, val_set, *, out_dir: str | os.PathLike, max_iter: int, seed: int = 0,
                       val_images: int | None = None, callbacks=(), **trainer_kwargs) -> dict:
    """Train a fresh ``Yolact(cfg)`` on ``train_set`` for ``max_iter`` iterations, then score box
    and mask AP on (the first ``val_images`` of) ``val_set``.

    cfg must have the dataset's ``num_classes``; ``trainer_kwargs`` go to :class:`Trainer`
    (batch_size, lr, device, ...). Returns {"model" (eval mode), "summary", "box_AP", "mask_AP",
    "metrics" (evaluate's dict), "train_seconds"}."""
    torch.manual_seed(seed)
    model = Yolact(cfg)
    trainer_kwargs.setdefault("progress", False)
    trainer_kwargs.setdefault("checkpoint_every", 10**9)
    trainer = Trainer(model, train_set, out_dir=fresh_run_dir(out_dir), max_iter=max_iter, seed=seed,
                      keep_checkpoints=1, callbacks=list(callbacks), **trainer_kwargs)
    start = time.perf_counter()
    summary = trainer.run()
    train_seconds = time.perf_counter() - start
    metrics = evaluate(trainer.model, val_set, max_images=val_images, progress=False, verbose=False)
    return {"model": trainer.model.eval(), "summary": summary, "box_AP": metrics["bbox"]["AP"],
            "mask_AP": metrics["segm"]["AP"], "metrics": metrics, "train_seconds": train_seconds}


def prototype_ablation(cfg, counts, train_set, val_set, *, out_dir: str | os.PathLike, max_iter: int,
                       **kwargs) -> list[dict]:
    """:func:`train_and_evaluate` once per number of prototypes k in ``counts`` (same seed, data
    and schedule; only ``num_protos`` changes). Returns one row per k: {"num_protos", "box_AP",
    "mask_AP", "train_seconds"}."""
    rows = []
    for k in counts:
        result = train_and_evaluate(cfg.replace(num_protos=int(k)), train_set, val_set,
                                    out_dir=Path(out_dir) / f"k{k}", max_iter=max_iter, **kwargs)
        rows.append({"num_protos": int(k), "box_AP": result["box_AP"], "mask_AP": result["mask_AP"],
                     "train_seconds": result["train_seconds"]})
    return rows


# The answers to notebook 04's "what share of the shipped model's mask AP will this run reach?",
# with the upper end of each share (the last one has none).
AP_SHARES: tuple[tuple[str, float], ...] = (("below 10 %", 0.1), ("10 to 50 %", 0.5), ("50 to 90 %", 0.9),
                                            ("90 % or more", float("inf")))


def share_of_reference(run_ap: float, reference_ap: float) -> str:
    """Which of :data:`AP_SHARES` ``run_ap / reference_ap`` falls in (APs in [0, 1]; a reference of 0
    counts any run as "90 % or more")."""
    share = run_ap / reference_ap if reference_ap > 0 else float("inf")
    return next((name for name, upper in AP_SHARES if share < upper), AP_SHARES[-1][0])


def run_against_reference(run_ap: float, reference_ap: float, run_schedule: str, reference_schedule: str,
                          images: int) -> str:
    """One sentence comparing a run's mask AP with the shipped model's on the same ``images`` val
    images, generated from the numbers (the share and the words both follow them). The schedules
    are "iterations x batch" ("1200 x 8")."""
    share = run_ap / reference_ap if reference_ap > 0 else float("inf")
    relation = ("about the same as" if abs(share - 1) < 0.05 else "above" if share > 1 else
                f"{share:.0%} of")
    return (f"This run ({run_schedule} iterations x batch) reaches mask AP {run_ap:.3f} on {images} val images, "
            f"{relation} the shipped model's {reference_ap:.3f} ({reference_schedule}) on the same images "
            f"({share_of_reference(run_ap, reference_ap)}).")


__all__ = ["fresh_run_dir", "train_and_evaluate", "prototype_ablation", "AP_SHARES", "share_of_reference",
           "run_against_reference"]
