"""The optimizer updates of one RL step from this rank's rollouts (method §2–3, issues 10.1 and 16.6).

1. Advantages per group over the valid rollouts only (``infra_error`` excluded; a group with fewer than
   two valid rollouts is dropped and counted) — :func:`echo_rl.objective.compute_advantages`; the rows
   the policy term keeps (dynamic sampling, overlong filter) — :func:`echo_rl.objective.policy_rows`.
   Neither under env_only, whose rollouts carry no reward (the group counts are then absent from the
   metrics).
2. Collate into one :class:`~echo_rl.objective.batch.Batch`. Log-probs that stay fixed over the step's updates are
   computed once, without gradient, over the same micro-batches and in the same compute precision: the
   reference model's (``objective.kl_coef`` > 0) and, with TIS over several updates, the policy's before
   the first update (π_old of TIS).
3. ``train.update_epochs`` passes over ``train.mini_batches`` mini-batches of whole groups (group k of G
   in mini-batch ⌊k·M/G⌋ on each rank); each mini-batch is one optimizer update whose denominators
   (valid, policy and env sequences, action tokens) are its own summed over all ranks, so the
   micro-batch losses of all ranks add up to the mini-batch's loss. π_old of the clipped ratio stays the
   sampler's log-probs throughout, so the ratio moves away from 1 after the first update and the clip
   acts. Groups are kept whole because their advantages and informativeness are per group.
4. Per update: micro-batches of ``train.micro_batch_size`` rows, forward under the compute precision
   (:mod:`echo_rl.train.precision`), loss, backward (gradient accumulation); on probe steps the per-term
   gradients are measured instead (stable-ECHO balancing); gradients summed across ranks, global
   grad-norm clip, AdamW step, LR-scheduler step (the scheduler counts optimizer updates).

The step's record combines its updates (:func:`combine_updates`). Groups never straddle ranks: the
trainer shards whole groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from echo_rl.objective.batch import Batch, collate
from echo_rl.config import RunConfig
from echo_rl.objective import (
    LambdaBalancer,
    combined_metrics,
    compute_advantages,
    echo_loss,
    frozen_logprobs,
    per_term_gradients,
    policy_rows,
)
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.distributed import (
    DistContext,
    all_reduce_sum,
    gather_lists,
)
from echo_rl.train.metrics import merged, prefixed
from echo_rl.train.optim import clip_and_step
from echo_rl.train.parallel import accumulate_gradients, autocast_dtype, paused_gradient_sync
from echo_rl.train.precision import compute_autocast

if TYPE_CHECKING:
    from echo_rl.train.reference import Reference

# How per-micro-batch metrics combine: summed, max'ed, or averaged weighted by a token count.
_COUNTS = {"seqs", "action_tokens", "policy_tokens", "env_tokens", "warning_tokens", "target_tokens",
           "rehearsal_tokens"}
_SUMMED = {"loss", "action_nll", "policy_loss", "env_loss", "rehearsal_nll"} | _COUNTS
_ADV_COUNTS = ("groups", "groups_dropped", "groups_zero_advantage", "rollouts_excluded")  # advantage/…
_SELECTION_COUNTS = ("policy/zero_signal", "policy/overlong")
_POLICY_METRICS = ("clip_frac_low", "clip_frac_high", "approx_kl", "logprob_mismatch_mean", "tis_weight_mean",
                   "tis_truncated_frac", "kl_ref")
_WEIGHT = {"env_ce": "env_tokens", "warning_ce": "warning_tokens", "target_ce": "target_tokens",
           "entropy_env": "env_tokens"} | dict.fromkeys(_POLICY_METRICS, "policy_tokens")


def reduce_metrics(parts: Sequence[dict[str, float]]) -> dict[str, float]:
    """Combine the metrics of every micro-batch of every rank into the update's: sums for losses and
    counts, max for ``*_max``, token-weighted means for the rest (env-token metrics by env tokens, the
    policy term's by its action tokens, others by action tokens)."""
    if not parts:
        return {}
    out: dict[str, float] = {}
    for key in dict.fromkeys(key for part in parts for key in part):  # every part's keys, in order
        values = [p[key] for p in parts if key in p]
        if key in _SUMMED:
            out[key] = sum(values)
        elif key.endswith("_max"):
            out[key] = max(values)
        else:
            weights = [p.get(_WEIGHT.get(key, "action_tokens"), 1.0) for p in parts if key in p]
            total = sum(weights)
            out[key] = sum(v * w for v, w in zip(values, weights)) / total if total else sum(values) / len(values)
    return out


def group_ids(trajectories: Sequence[Trajectory], group_size: int) -> list[int]:
    """Group index of each rollout: consecutive blocks of ``group_size`` (task-major requests)."""
    return [i // group_size for i in range(len(trajectories))]


def combine_updates(updates: Sequence[dict[str, float]], per_epoch: int) -> dict[str, float]:
    """The step's record from its optimizer updates' (``per_epoch`` of them per pass over the rollouts):
    token and sequence counts summed over the first pass (every rollout once), ``*_max`` max'ed,
    everything else (losses, clip fractions, grad_norm, lr, …) averaged over the updates that hold it; with
    one update, its own metrics unchanged. Adds ``optimizer_updates``."""
    out: dict[str, float] = {}
    for key in dict.fromkeys(key for update in updates for key in update):  # a key some updates lack too
        values = [u[key] for u in updates if key in u]
        if key in _COUNTS:
            out[key] = sum(u[key] for u in updates[:per_epoch] if key in u)
        elif key.endswith("_max"):
            out[key] = max(values)
        else:
            out[key] = sum(values) / len(values)
    return out | {"optimizer_updates": float(len(updates))}


def build_batch(
    trajectories: Sequence[Trajectory], cfg: RunConfig, pad_id: int
) -> tuple[Batch, dict[str, float]]:
    """Advantages, policy rows and the collated batch of this rank's rollouts (this rank's denominators),
    with the counts of :func:`compute_advantages` and :func:`policy_rows`."""
    gids = group_ids(trajectories, cfg.train.rollouts_per_task)
    if not cfg.objective.uses_reward:  # verifier-free: no rewards, no groups, no policy term
        return collate(trajectories, torch.zeros(len(trajectories)), cfg.objective, pad_id, gids), {}
    advantages, stats = compute_advantages(
        [t.reward for t in trajectories], gids, [t.valid for t in trajectories], cfg.objective.advantage_std_norm
    )
    rows, selected = policy_rows(trajectories, advantages, gids, cfg.objective)
    batch = collate(trajectories, advantages, cfg.objective, pad_id, group_ids=gids, policy_rows=rows)
    return batch, stats | selected


def with_fixed_logprobs(model: torch.nn.Module, reference: Reference | None, batch: Batch, cfg: RunConfig,
                        ctx: DistContext) -> Batch:
    """``batch`` with the log-probs that stay fixed over the step's updates (module docstring, 2)."""
    changes, size = {}, cfg.train.micro_batch_size
    if reference is not None:
        changes["ref_logprobs"] = reference.logprobs(batch, cfg, ctx.device)
    if cfg.objective.tis_cap is not None and cfg.train.mini_batches * cfg.train.update_epochs > 1:
        with compute_autocast(cfg.policy.dtype, ctx.device):
            changes["old_logprobs"] = frozen_logprobs(model, batch, cfg.objective, size, ctx.device)
    return dataclasses.replace(batch, **changes)


def mini_batches(batch: Batch, parts: int, ctx: DistContext) -> list[Batch]:
    """:meth:`Batch.group_parts` of ``batch``, each with its own denominators summed over ranks."""
    split = batch.group_parts(parts)
    totals = all_reduce_sum([count for part in split for count in part.own_counts()], ctx)
    n = len(totals) // max(len(split), 1)
    return [part.with_counts(totals[n * i : n * i + n]) for i, part in enumerate(split)]


def optimizer_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    balancer: LambdaBalancer,
    batch: Batch,
    cfg: RunConfig,
    step: int,
    ctx: DistContext,
) -> dict[str, float]:
    """One optimizer update on ``batch`` (module docstring, 4); its metrics (:func:`update_metrics`),
    equal on every rank."""
    micro = [mb.to(ctx.device) for mb in batch.micro_batches(cfg.train.micro_batch_size)] if len(batch) else []
    model.train()
    probe: dict[str, float] = {}
    if balancer.probe_due(step):
        with compute_autocast(cfg.policy.dtype, ctx.device), paused_gradient_sync(model):
            grads = per_term_gradients(model, micro, cfg.objective)
        grads.all_reduce()
        probe = balancer.apply(grads, step)
        parts = grads.metrics
    else:
        weights = balancer.weights(step)
        compute = autocast_dtype(model, cfg.policy.dtype)

        def loss_of(mb: Batch) -> tuple[torch.Tensor, dict[str, float]]:
            with compute_autocast(compute, ctx.device):
                return echo_loss(model, mb, cfg.objective, weights)

        parts = accumulate_gradients(model, micro, loss_of, ctx)
    lr = scheduler.get_last_lr()[0]
    grad_norm = clip_and_step(model, optimizer, scheduler, cfg.optim.grad_clip)
    return update_metrics(gather_lists(parts, ctx), balancer.weights(step), probe) | {"grad_norm": grad_norm, "lr": lr}


def update_metrics(parts: Sequence[dict[str, float]], weights: tuple[float, float],
                   probe: dict[str, float]) -> dict[str, float]:
    """The logged metrics of one update, plain or probe step alike: every micro-batch's terms combined
    (:func:`reduce_metrics`), the loss as the balancer's ``weights`` combine the summed terms
    (:func:`~echo_rl.objective.combined_metrics`), and the gradient probe's metrics (empty off probe
    steps)."""
    metrics = reduce_metrics(parts)
    if "policy_loss" in metrics:
        metrics |= combined_metrics(metrics, weights)
    return metrics | probe


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
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Run steps 1–4 of the module docstring on this rank's rollouts (``reference``: π_ref of the KL term,
    required when ``objective.kl_coef`` > 0); return the step's metrics (equal on every rank,
    :mod:`echo_rl.train.metrics` names): the updates' (:func:`combine_updates`; ``update/grad_norm`` is
    before clipping) as ``update/…``, the counts of :func:`compute_advantages` (``advantage/…``) and
    :func:`policy_rows` (``policy/…``) summed over ranks, the env-target filter shares (``filter/…``)."""
    if cfg.objective.kl_coef > 0 and reference is None:
        raise ValueError("objective.kl_coef > 0 needs the reference model (echo_rl.train.reference)")
    batch, selection = build_batch(trajectories, cfg, pad_id)
    batch = with_fixed_logprobs(model, reference, batch, cfg, ctx)
    parts = mini_batches(batch, cfg.train.mini_batches, ctx)
    updates = [optimizer_update(model, optimizer, scheduler, balancer, part, cfg, step, ctx)
               for _ in range(cfg.train.update_epochs) for part in parts]
    model.eval()
    names = _ADV_COUNTS + _SELECTION_COUNTS
    counts = dict(zip(names, all_reduce_sum([selection[k] for k in names], ctx))) if selection else {}
    advantage = prefixed("advantage", {k: v for k, v in counts.items() if k in _ADV_COUNTS})
    chosen = {k: v for k, v in counts.items() if k in _SELECTION_COUNTS}
    return merged(prefixed("update", combine_updates(updates, len(parts))), advantage, chosen, batch.stats)
