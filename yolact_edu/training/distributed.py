"""Multi-process training with ``torch.distributed`` (DDP), launched by ``torchrun``.

    torchrun --nproc_per_node 2 -m yolact_edu.cli train ...

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`init_from_env` joins the process
group (NCCL on CUDA, gloo on CPU). Without torchrun every helper here is a no-op, so the
trainer's code path is the same for one process and many.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env() -> bool:
    """Join the process group described by torchrun's environment; False if not under torchrun."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def default_device() -> torch.device:
    """This process's GPU (``LOCAL_RANK``) if CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def wrap(model: nn.Module, device: torch.device, find_unused: bool = False) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` itself. Gradients are
    averaged over processes, so each process's batch is a slice of one larger batch."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def all_finite(value: torch.Tensor) -> bool:
    """True if ``value`` is finite in every process (so all processes skip a bad step together:
    one skipping alone would leave the others waiting for its gradients)."""
    finite = torch.isfinite(value.detach()).all().float().reshape(1)
    if is_distributed():
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item() > 0)


def any_true(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is True in any process (e.g. "stop now", so that all stop at one step)."""
    if not is_distributed():
        return bool(flag)
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def mean(value: float, device: torch.device) -> float:
    """Average a Python number over processes (for logs)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world_size()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


__all__ = ["init_from_env", "is_distributed", "rank", "world_size", "default_device", "wrap",
           "all_finite", "any_true", "mean", "barrier", "cleanup"]
