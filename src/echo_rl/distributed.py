"""Data-parallel helpers over ``torch.distributed`` (launched with ``torchrun``; gloo on CPU, NCCL on GPU).

Every rank draws the same task list, runs the groups ``shard(...)`` gives it, and back-propagates its share
of the global loss (each sequence weighted 1 / global batch size); how gradients are reduced across ranks
(DDP or FSDP2) is :mod:`echo_rl.train.parallel`'s. Without ``torchrun`` (no ``WORLD_SIZE`` in the
environment) every helper is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: this rank's GPU when CUDA is available, else the CPU; anything else as given."""
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(preference)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group torchrun set up (env:// rendezvous), or return a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size == 1:
        return DistContext(device=device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: Sequence[T], ctx: DistContext, chunk: int = 1) -> list[T]:
    """This rank's share of ``items``: runs of ``chunk`` consecutive items (whole groups), round-robin."""
    runs = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    return [item for run in runs[ctx.rank :: ctx.world_size] for item in run]


def all_reduce_max(value: float, ctx: DistContext) -> float:
    """The largest ``value`` over ranks."""
    if not ctx.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of a list of numbers across ranks."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def gather_lists(items: list[Any], ctx: DistContext) -> list[Any]:
    """Concatenate every rank's list (rank order) on every rank."""
    if not ctx.enabled:
        return list(items)
    gathered: list[list[Any]] = [[] for _ in range(ctx.world_size)]
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
