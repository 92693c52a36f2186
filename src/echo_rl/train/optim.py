"""AdamW with a linear warm-up (method §3) and global grad-norm clipping."""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from echo_rl.config import OptimConfig


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters and a scheduler that ramps the LR from lr/(warmup+1) to lr over
    ``warmup_steps`` updates, then holds it. ``scheduler.step()`` is called once per optimizer update."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / (warmup + 1)))
    return optimizer, scheduler


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
