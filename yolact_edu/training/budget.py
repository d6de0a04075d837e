"""Training to a wall-clock budget (``yolact-edu demo --minutes``).

The same command runs at very different speeds on different machines (a 2-core CPU with native bf16
trains ``yolact_tiny`` about twice as fast as one without; a GPU tens of times faster), so a fixed
iteration count makes a demo of 8 minutes on one machine and 30 on another. Here the budget decides
the iteration count instead: a few optimiser steps on a copy of the model measure what one
iteration costs on this machine, and the run then trains for the iterations that fit, as an ordinary
run of that many iterations. Its learning rate follows the recipe's cosine over those iterations,
which is a cosine over the elapsed time as long as the steps keep their measured pace; and because
the run is an ordinary one, ``--max-iter N`` with the recorded ``N`` repeats it (exactly on the same
machine: the schedule never depends on a clock, only the float rounding of another CPU differs).
"""
from __future__ import annotations

import copy
import math
import statistics
import tempfile
from dataclasses import asdict, dataclass

import torch

from ..bench.timing import clock
from .trainer import Trainer

PROBE_STEPS = 6       # timed optimiser steps
PROBE_WARMUP = 2      # untimed first steps (allocation, oneDNN's kernel choice)


@dataclass(frozen=True)
class BudgetPlan:
    """How a wall-clock budget is spent (all times in seconds).

    budget: the whole run's; spent: before training (data, the probe); reserved: after training
    (evaluation, drawing); seconds_per_iteration: the measured median; iterations: what fits in
    the rest, at least ``least``."""

    budget: float
    spent: float
    reserved: float
    seconds_per_iteration: float
    iterations: int

    @property
    def training_seconds(self) -> float:
        """The training time the plan expects."""
        return self.iterations * self.seconds_per_iteration

    @property
    def expected_total(self) -> float:
        return self.spent + self.training_seconds + self.reserved

    def as_dict(self) -> dict:
        return {**asdict(self), "training_seconds": round(self.training_seconds, 1),
                "expected_total": round(self.expected_total, 1)}


def plan_iterations(budget: float, spent: float, reserved: float, seconds_per_iteration: float,
                    least: int = 1) -> BudgetPlan:
    """The iterations of ``seconds_per_iteration`` that fit in ``budget - spent - reserved``
    (never fewer than ``least``: a budget too small still trains a little and says so)."""
    if not budget > 0 or not seconds_per_iteration > 0:
        raise ValueError(f"need a budget and a step time > 0, got {budget!r} and {seconds_per_iteration!r}")
    left = budget - spent - reserved
    iterations = max(least, math.floor(left / seconds_per_iteration)) if left > 0 else least
    return BudgetPlan(budget, spent, reserved, seconds_per_iteration, int(iterations))


def seconds_per_iteration(model: torch.nn.Module, train_dataset, *, batch_size: int | None = None,
                          device=None, amp: bool | str = True, channels_last: bool = False, seed: int = 0,
                          steps: int = PROBE_STEPS, warmup: int = PROBE_WARMUP) -> float:
    """The median wall time of one training iteration (loading its batch included) on this machine,
    measured on a copy of ``model`` with the Trainer's own step: ``model`` itself, the global random
    state and the file system are left as they were."""
    rng = torch.get_rng_state()
    try:
        with tempfile.TemporaryDirectory(prefix="yolact_edu_probe_") as folder:
            trainer = Trainer(copy.deepcopy(model), train_dataset, out_dir=folder, batch_size=batch_size,
                              max_iter=warmup + steps, device=device, amp=amp, channels_last=channels_last,
                              seed=seed, progress=False)
            trainer.sampler.set_epoch(0)
            batches, times = iter(trainer.loader), []
            for _ in range(warmup + steps):
                started = clock(trainer.device)
                try:
                    images, targets = next(batches)
                except StopIteration:             # a training set of few batches: go round again
                    batches = iter(trainer.loader)
                    images, targets = next(batches)
                trainer.step(images, targets)
                trainer.iteration += 1
                times.append(clock(trainer.device) - started)
    finally:
        torch.set_rng_state(rng)
    return statistics.median(times[warmup:])


class Deadline:
    """A Trainer callback that asks the run to stop (at a step boundary, with a checkpoint) once its
    training time passes ``seconds``: the guard for a machine whose steps slow down after the probe.
    ``reached`` says whether it did; a run it stopped is shorter than planned, and says so."""

    def __init__(self, trainer: Trainer, seconds: float):
        self.trainer, self.seconds, self.reached = trainer, float(seconds), False

    def __call__(self, event: str, info: dict) -> None:
        if event == "log" and not self.reached and info["seconds"] > self.seconds:
            self.reached = True
            self.trainer.request_stop()


__all__ = ["BudgetPlan", "Deadline", "plan_iterations", "seconds_per_iteration", "PROBE_STEPS", "PROBE_WARMUP"]
