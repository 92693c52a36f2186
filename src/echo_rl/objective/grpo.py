"""The GRPO term on action tokens (method §3): group-normalised advantages, a clipped importance ratio
against the sampler's log-probs, optional k3 KL to a reference model, three aggregations.

Advantages, for rollout i of group g (infra errors excluded; groups with < 2 valid rollouts dropped):

    A_i = (r_i − mean_g r) / (std_g r + ε)     (std normalisation optional: A_i = r_i − mean_g r)

Per action token t of sequence s, with ρ = π_θ(x_t)/π_old(x_t):

    ℓ_t = −min(ρ·A_s, clip(ρ, 1 − ε_low, 1 + ε_high)·A_s) · w_t  +  β · k3_t
    k3_t = exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1                   (β = kl_coef)

π_old is the sampler (``sampling_logprobs``) and w_t = 1, unless truncated importance sampling is on
(``tis_cap`` = C): then π_old is the trainer's own policy before the step's first optimizer update
(``Batch.old_logprobs`` when the step makes several; the detached π_θ of this batch when it makes one) and
the sampler/trainer mismatch is corrected by w_t = min(π_θ(x_t)/π_sample(x_t), C), detached.
Log-ratios are clamped to ±20 so that no weight overflows.

Sequence-level ratio (``ratio_level = sequence``, GSPO): every action token of sequence s takes

    ρ_s = exp( (1/|A_s|) Σ_{t∈A_s} (log π_θ(x_t) − log π_old(x_t)) )

clipped as a whole, so a sequence is in or out of the trust region at once (the clip fractions count
the action tokens of clipped sequences). The policy term covers the rows in ``Batch.policy_rows`` only
(dynamic sampling and the overlong filter take rows out; their env term stays), and its denominators
are ``Batch.n_policy_seqs`` / ``Batch.n_action_tokens``.

Aggregation over the update's policy sequences S and action sets A_s (``Batch.policy_seqs``,
``Batch.n_action_tokens``):

    seq_mean          (1/|S|) Σ_s (1/|A_s|) Σ_{t∈A_s} ℓ_t     (paper)
    token_mean        (1/Σ_s |A_s|) Σ_s Σ_{t∈A_s} ℓ_t         (DAPO)
    seq_sum_constant  (1/(|S|·C)) Σ_s Σ_{t∈A_s} ℓ_t           (Dr. GRPO, C = aggregation_constant)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from echo_rl.config import ObjectiveConfig
from echo_rl.rollout.trajectory import Trajectory

if TYPE_CHECKING:
    from echo_rl.objective.batch import Batch

LOG_RATIO_CLAMP = 20.0


def group_ids_of(trajectories: Sequence[Trajectory]) -> list[int]:
    """One group per task id, numbered in order of first appearance."""
    ids: dict[str, int] = {}
    return [ids.setdefault(traj.task_id, len(ids)) for traj in trajectories]


def compute_advantages(
    rewards: Sequence[float] | Tensor,
    group_ids: Sequence[int] | Tensor,
    valid: Sequence[bool] | Tensor,
    std_norm: bool = True,
    eps: float = 1e-6,
) -> tuple[Tensor, dict[str, float]]:
    """Group-normalised advantages (module docstring); 0 for invalid rollouts and dropped groups.
    Stats: groups, groups_dropped (< 2 valid rollouts), groups_zero_advantage (all valid rewards equal),
    rollouts_excluded (invalid), reward_mean over the valid rollouts."""
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    group_ids = torch.as_tensor(group_ids, dtype=torch.long)
    valid = torch.as_tensor(valid, dtype=torch.bool)
    advantages = torch.zeros_like(rewards)
    dropped = zero = 0
    groups = group_ids.unique()
    for g in groups:
        members = (group_ids == g) & valid
        if members.sum() < 2:
            dropped += 1
            continue
        r = rewards[members]
        centred = r - r.mean()
        zero += bool((centred == 0).all())
        advantages[members] = centred / (r.std() + eps) if std_norm else centred
    stats = {
        "groups": float(len(groups)),
        "groups_dropped": float(dropped),
        "groups_zero_advantage": float(zero),
        "rollouts_excluded": float((~valid).sum()),
        "reward_mean": float(rewards[valid].mean()) if valid.any() else 0.0,
    }
    return advantages, stats


def aggregate(per_token: Tensor, mask: Tensor, mode: str, n_seqs: float, n_tokens: float, constant: float) -> Tensor:
    """Reduce a [B, T] per-token loss over ``mask`` as in the module docstring (a scalar)."""
    masked = per_token * mask
    if mode == "seq_mean":
        return (masked.sum(1) / mask.sum(1).clamp(min=1)).sum() / max(n_seqs, 1.0)
    if mode == "token_mean":
        return masked.sum() / max(n_tokens, 1.0)
    if mode == "seq_sum_constant":
        return masked.sum() / (max(n_seqs, 1.0) * constant)
    raise ValueError(f"unknown aggregation {mode!r}")


def masked_mean(x: Tensor, mask: Tensor) -> float:
    """Mean of ``x`` over ``mask`` (0 when the mask is empty), as a float."""
    return float((x * mask).sum() / mask.sum().clamp(min=1))


def _old_logprobs(logprobs: Tensor, batch: Batch, cfg: ObjectiveConfig) -> Tensor:
    """log π_old per token (module docstring)."""
    if cfg.tis_cap is None:
        return batch.sampling_logprobs.float()
    return logprobs.detach() if batch.old_logprobs is None else batch.old_logprobs.float()


def policy_term(logprobs: Tensor, batch: Batch, cfg: ObjectiveConfig) -> tuple[Tensor, dict[str, float]]:
    """L_GRPO of one batch from the trainer's [B, T] log-probs (at the sampling temperature), and its
    metrics: policy_loss, policy_tokens (its action tokens), clip_frac_low/high (share of action tokens
    whose clipped branch is taken), approx_kl (k3 of the sampler against π_θ), logprob_mismatch_mean/max
    (|log π_θ − log π_sample|), tis_weight_mean and tis_truncated_frac (TIS on), kl_ref (kl_coef > 0), all
    over the policy rows' action tokens."""
    mask = batch.policy_mask.float()
    sampled = batch.sampling_logprobs.float()
    advantages = batch.advantages.float()[:, None]
    log_ratio = ((logprobs - _old_logprobs(logprobs, batch, cfg)) * mask).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    if cfg.ratio_level == "sequence":
        log_ratio = (log_ratio.sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)) * mask
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - cfg.clip_eps_low, 1 + cfg.clip_eps_high)
    per_token = torch.maximum(-advantages * ratio, -advantages * clipped)
    metrics: dict[str, float] = {}
    with torch.no_grad():
        drift = (logprobs - sampled) * mask
        sampler_ratio = drift.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()
        metrics["logprob_mismatch_mean"] = masked_mean(drift.abs(), mask)
        metrics["logprob_mismatch_max"] = float(drift.abs().max())
        metrics["approx_kl"] = masked_mean(sampler_ratio - 1 - drift, mask)
        metrics["clip_frac_low"] = masked_mean(((ratio < 1 - cfg.clip_eps_low) & (advantages < 0)).float(), mask)
        metrics["clip_frac_high"] = masked_mean(((ratio > 1 + cfg.clip_eps_high) & (advantages > 0)).float(), mask)
    if cfg.tis_cap is not None:
        weight = drift.clamp(max=math.log(cfg.tis_cap)).exp()
        per_token = per_token * weight
        metrics["tis_weight_mean"] = masked_mean(weight, mask)
        metrics["tis_truncated_frac"] = masked_mean((sampler_ratio > cfg.tis_cap).float(), mask)
    if cfg.kl_coef > 0:
        if batch.ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs batch.ref_logprobs (the reference model's token_logprobs)")
        to_ref = ((batch.ref_logprobs.float() - logprobs) * mask).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
        k3 = to_ref.exp() - to_ref - 1
        per_token = per_token + cfg.kl_coef * k3
        metrics["kl_ref"] = masked_mean(k3.detach(), mask)
    loss = aggregate(
        per_token, mask, cfg.aggregation, batch.policy_seqs, batch.n_action_tokens, cfg.aggregation_constant
    )
    metrics |= {"policy_loss": loss.item(), "policy_tokens": float(mask.sum())}
    return loss, metrics
