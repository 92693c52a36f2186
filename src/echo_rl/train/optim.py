"""AdamW with a linear warm-up (method §3), then a constant or linearly decaying LR, and global grad-norm clipping."""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from echo_rl.config import OptimConfig


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters and a scheduler of :func:`lr_factor`. ``scheduler.step()`` is
    called once per optimizer update."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_factor(i, cfg.warmup_steps, cfg.decay_steps))
    return optimizer, scheduler


def lr_factor(update: int, warmup: int, decay: int) -> float:
    """The LR of 0-based ``update`` as a fraction of ``lr``: ``(i+1)/(W+1)`` over the ``W`` warm-up updates,
    then 1, or with ``decay`` = D > W the linear fall ``(D - i)/(D - W)`` to 0 at update D (0 after it)."""
    if update < warmup:
        return (update + 1) / (warmup + 1)
    return max(0.0, (decay - update) / (decay - warmup)) if decay else 1.0


def clip_and_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    max_norm: float,
) -> float:
    """Clip the global gradient norm to ``max_norm`` (over all ranks for FSDP2's sharded DTensor gradients),
    step optimizer and scheduler, zero the gradients; return the pre-clip gradient norm."""
    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)  # FSDP2: reduced over ranks
