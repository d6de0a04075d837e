"""Reproducible, resumable data order for training (and its split over DDP processes).

Every sample carries its own seed, derived from (run seed, epoch, position in the epoch), and
the augmentation of that sample runs under it. So the images a run sees, and how they are
augmented, depend only on those three numbers: not on DataLoader workers, not on the global
RNG, and not on whether the run was stopped and resumed in between.
"""
from __future__ import annotations

import torch


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for one sample (distinct for every (seed, epoch, position) in practice)."""
    mixed = hash((int(seed), int(epoch), int(position)))   # ints hash deterministically
    return mixed & 0x7FFF_FFFF_FFFF_FFFF


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(dataset index, sample seed)`` for one process, epoch by epoch.

    Each epoch is a permutation of ``range(num_items)`` drawn from ``seed + epoch``; with
    ``world_size`` processes, process ``rank`` takes positions ``rank, rank + world_size, ...``
    of it (the permutation is padded by wrapping so all ranks get equally many).
    :meth:`set_epoch` chooses the epoch and how many of this rank's items to skip (resume).
    """

    def __init__(self, num_items: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if num_items < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.num_items, self.seed, self.rank, self.world_size = num_items, seed, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def per_rank(self) -> int:
        return -(-self.num_items // self.world_size)

    def __len__(self) -> int:
        return max(self.per_rank() - self.skip, 0)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        total = self.per_rank() * self.world_size
        order = (order * (total // len(order) + 1))[:total]
        for position in range(self.rank + self.skip * self.world_size, total, self.world_size):
            yield order[position], sample_seed(self.seed, self.epoch, position)


class SeededDataset(torch.utils.data.Dataset):
    """Wraps a dataset so that ``dataset[(index, seed)]`` runs ``dataset[index]`` with torch's
    global RNG seeded by ``seed`` and then restored (the caller's RNG stream is untouched)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


__all__ = ["EpochSampler", "SeededDataset", "sample_seed"]
