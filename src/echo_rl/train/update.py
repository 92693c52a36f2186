"""One optimizer update of the RL loop from this rank's rollouts (method §2–3, issue 10.1).

1. Advantages per group over the valid rollouts only (``infra_error`` excluded; a group with fewer than
   two valid rollouts is dropped and counted) — :func:`echo_rl.objective.compute_advantages`.
2. Collate into one :class:`~echo_rl.batch.Batch`; its step denominators (valid sequences, action tokens)
   are replaced by the sums over all ranks, so that the micro-batch losses of all ranks add up to the
   loss of the global batch.
3. Micro-batches of ``train.micro_batch_size`` rows: forward, loss, backward (gradient accumulation); on
   probe steps the per-term gradients are measured instead (stable-ECHO balancing).
4. Gradients summed across ranks, global grad-norm clip, AdamW step, LR-scheduler step.

Groups never straddle ranks: the trainer shards whole groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from echo_rl.batch import Batch, collate
from echo_rl.config import RunConfig
from echo_rl.objective import (
    LambdaBalancer,
    compute_advantages,
    echo_loss,
    per_term_gradients,
)
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.train.distributed import (
    DistContext,
    all_reduce_gradients,
    all_reduce_sum,
    gather_lists,
)
from echo_rl.train.optim import clip_and_step

# How per-micro-batch metrics combine: summed, max'ed, or averaged weighted by a token count.
_SUMMED = {"loss", "action_nll", "policy_loss", "env_loss", "env_loss_scaled", "seqs", "action_tokens", "env_tokens",
           "warning_tokens", "target_tokens"}
_ADV_COUNTS = ("groups", "groups_dropped", "groups_zero_advantage", "rollouts_excluded")
_WEIGHT = {"env_ce": "env_tokens", "warning_ce": "warning_tokens", "target_ce": "target_tokens",
           "entropy_env": "env_tokens"}


def reduce_metrics(parts: Sequence[dict[str, float]]) -> dict[str, float]:
    """Combine the metrics of every micro-batch of every rank into the step's: sums for losses and counts,
    max for ``*_max``, token-weighted means for the rest (env-token metrics by env tokens, others by action
    tokens), ``env_to_policy_ratio`` recomputed from the sums."""
    if not parts:
        return {}
    out: dict[str, float] = {}
    for key in parts[0]:
        values = [p[key] for p in parts if key in p]
        if key in _SUMMED:
            out[key] = sum(values)
        elif key == "lambda":
            out[key] = values[0]  # the same weight on every micro-batch
        elif key.endswith("_max"):
            out[key] = max(values)
        else:
            weights = [p.get(_WEIGHT.get(key, "action_tokens"), 1.0) for p in parts if key in p]
            total = sum(weights)
            out[key] = sum(v * w for v, w in zip(values, weights)) / total if total else sum(values) / len(values)
    if "env_loss_scaled" in out and "policy_loss" in out:
        out["env_to_policy_ratio"] = abs(out["env_loss_scaled"]) / max(abs(out["policy_loss"]), 1e-8)
    return out


def group_ids(trajectories: Sequence[Trajectory], group_size: int) -> list[int]:
    """Group index of each rollout: consecutive blocks of ``group_size`` (task-major requests)."""
    return [i // group_size for i in range(len(trajectories))]


def build_batch(
    trajectories: Sequence[Trajectory], cfg: RunConfig, pad_id: int, ctx: DistContext
) -> tuple[Batch, dict[str, float]]:
    """Advantages and the collated batch of this rank's rollouts, with global denominators."""
    gids = group_ids(trajectories, cfg.train.rollouts_per_task)
    advantages, stats = compute_advantages(
        [t.reward for t in trajectories], gids, [t.valid for t in trajectories], cfg.objective.advantage_std_norm
    )
    batch = collate(trajectories, advantages, cfg.objective, pad_id, cfg.sampling.temperature, group_ids=gids)
    n_seqs, n_tokens = all_reduce_sum([batch.n_seqs, batch.n_action_tokens], ctx)
    return dataclasses.replace(batch, n_seqs=n_seqs, n_action_tokens=n_tokens), stats


def policy_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    balancer: LambdaBalancer,
    trajectories: Sequence[Trajectory],
    cfg: RunConfig,
    step: int,
    pad_id: int,
    ctx: DistContext,
) -> dict[str, Any]:
    """Run steps 1–4 of the module docstring on this rank's rollouts; return the step's metrics (equal on
    every rank): the objective's (reduced over micro-batches and ranks), the group counts of
    :func:`compute_advantages` summed over ranks, the env-target filter shares, ``grad_norm`` (before clipping) and ``lr``."""
    batch, adv_stats = build_batch(trajectories, cfg, pad_id, ctx)
    micro = [mb.to(ctx.device) for mb in batch.micro_batches(cfg.train.micro_batch_size)] if len(batch) else []
    model.train()
    extra: dict[str, float] = {}
    if balancer.probe_due(step):
        grads = per_term_gradients(model, micro, cfg.objective)
        grads.all_reduce()
        extra = balancer.apply(grads, step)
        parts = grads.metrics
    else:
        w_env = balancer.weights(step)[1]
        parts = []
        for mb in micro:
            loss, metrics = echo_loss(model, mb, cfg.objective, step, env_weight=w_env)
            loss.backward()
            parts.append(metrics)
        all_reduce_gradients(model.parameters(), ctx)
    lr = scheduler.get_last_lr()[0]
    grad_norm = clip_and_step(model, optimizer, scheduler, cfg.optim.grad_clip)
    model.eval()
    metrics = reduce_metrics(gather_lists(parts, ctx))
    if "loss" not in metrics and "policy_loss" in metrics:  # a probe step: assemble the logged loss
        w_policy, w_env = balancer.weights(step)
        metrics |= {"lambda": w_env, "loss": w_policy * metrics["policy_loss"] + w_env * metrics["env_loss"]}
    counts = dict(zip(_ADV_COUNTS, all_reduce_sum([adv_stats[k] for k in _ADV_COUNTS], ctx)))
    return {**metrics, **extra, **counts, **batch.stats, "grad_norm": grad_norm, "lr": lr}
