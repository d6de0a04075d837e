"""The learning-rate recipe of the original (reference §5) and its batch-size scaling.

The original trains with batch 8: linear warm-up from ``lr_warmup_init`` to ``lr`` over the
first ``lr_warmup_until`` iterations, then x0.1 at each of ``lr_steps``, stopping at
``max_iter``. A different batch ``b`` scales the rate by ``b/8`` and divides every iteration
count by ``b/8``, so the number of images seen stays the same.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LrSchedule:
    """Learning rate at an iteration: warm-up, then step decay (or a cosine to ``lr * gamma``).

    lr: the peak rate; warmup_init: the rate at iteration 0; warmup_until: end of warm-up;
    steps: iterations at which the rate is multiplied by ``gamma`` (kind="step");
    kind: "step" (the original) or "cosine" (half-cosine from the peak at ``warmup_until``
    down to ``lr * gamma`` at ``max_iter``; teaching configs train in minutes with it).
    """

    lr: float
    max_iter: int
    warmup_init: float = 1e-4
    warmup_until: int = 500
    steps: tuple[int, ...] = ()
    gamma: float = 0.1
    kind: str = "step"

    def __post_init__(self) -> None:
        if self.kind not in ("step", "cosine"):
            raise ValueError(f"schedule kind must be 'step' or 'cosine', got {self.kind!r}")
        if self.max_iter < 1 or self.lr <= 0:
            raise ValueError(f"need max_iter >= 1 and lr > 0, got max_iter={self.max_iter}, lr={self.lr}")

    def __call__(self, iteration: int) -> float:
        if iteration < self.warmup_until:
            return self.warmup_init + (self.lr - self.warmup_init) * iteration / self.warmup_until
        if self.kind == "cosine":
            span = max(self.max_iter - self.warmup_until, 1)
            progress = min((iteration - self.warmup_until) / span, 1.0)
            floor = self.lr * self.gamma
            return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        # The step index comes from the iteration alone, so a resumed run picks up the right rate.
        return self.lr * self.gamma ** bisect.bisect_right(self.steps, iteration)


def recipe_for(cfg, batch_size: int, *, max_iter: int | None = None, lr: float | None = None) -> LrSchedule:
    """The config's schedule for a total batch of ``batch_size`` images per iteration.

    Scaled as the original's ``--batch_size``: lr x b/B, iteration counts / (b/B), with B the
    config's ``batch_size``. An explicit ``max_iter`` stretches or squeezes warm-up and steps
    by the same factor, so a shorter run keeps the recipe's shape; an explicit ``lr`` wins.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    factor = batch_size / cfg.batch_size
    scaled_max = max(1, round(cfg.max_iter / factor))
    stretch = 1.0 if max_iter is None else max_iter / scaled_max
    total = scaled_max if max_iter is None else max_iter

    def iters(value: int) -> int:
        return max(0, round(value / factor * stretch))

    return LrSchedule(lr=cfg.lr * factor if lr is None else lr, max_iter=total,
                      warmup_init=cfg.lr_warmup_init * factor if lr is None else lr * cfg.lr_warmup_init / cfg.lr,
                      warmup_until=min(iters(cfg.lr_warmup_until), total),
                      steps=tuple(iters(s) for s in cfg.lr_steps), gamma=cfg.lr_gamma,
                      kind=cfg.lr_schedule)


__all__ = ["LrSchedule", "recipe_for"]
