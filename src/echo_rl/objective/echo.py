"""The ECHO objective (method §2): GRPO on the agent's actions plus cross-entropy on the terminal's output,
both from the same per-token log-probs of ONE forward pass over the transcript.

    L = w_π · L_GRPO(A) + w_env · L_env(O')

    L_env = (1/|S|) Σ_s (1/Z_s) Σ_{t∈O'_s} −log p(x_t | x_<t)      (:func:`echo_rl.loss.env_cross_entropy`)
    Z_s   = |O_s|  (full_observation_tokens: all observation content, warnings included — paper)
          | |O'_s| (selected_tokens: the targets left after filters) | C (constant: norm_constant)

S are the step's valid sequences that the rollout filters kept (``Batch.env_seqs``: all valid ones
unless a filter is on — by default only under env_only, :mod:`echo_rl.objective.filters`); O'_s is
``Batch.target_mask``. The env term is active on every such rollout, zero-advantage and failed ones included.
The weights (w_π, w_env) are given: :meth:`echo_rl.objective.balance.LambdaBalancer.weights` alone decides
them (algorithm, λ schedule, adaptive bound). A weight of 0 leaves its term out of the graph, so λ = 0
reproduces GRPO's loss and gradient bit for bit.

Temperature: the policy term uses log-probs at τ = ``Batch.temperature`` (logits / τ, as SkyRL). The env
term uses the same log-probs when ``env.temperature_scaled`` (the reference system: a CE at the training
temperature) and raw logits (τ = 1) otherwise — per-token temperatures, still one pass. Held-out env CE,
a metric, is always at τ = 1: :func:`env_cross_entropy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from echo_rl.config import EnvLossConfig, ObjectiveConfig
from echo_rl.loss import Normalizer, combine
from echo_rl.loss import env_cross_entropy as env_ce_loss
from echo_rl.objective.grpo import masked_mean, policy_term
from echo_rl.objective.logprobs import Temperature, TokenLogprobs, token_logprobs

if TYPE_CHECKING:
    from echo_rl.objective.batch import Batch


# echo-rl's config names of the normalisers of :func:`echo_rl.loss.env_cross_entropy`
NORMALIZERS: dict[str, Normalizer] = {
    "full_observation_tokens": "observation",
    "selected_tokens": "sequence",
    "constant": "constant",
}


def token_temperatures(batch: Batch, cfg: ObjectiveConfig) -> Temperature:
    """τ per token: the sampling temperature, or 1 off the action tokens when the env CE uses raw logits."""
    if cfg.env.temperature_scaled or batch.temperature == 1.0:
        return batch.temperature
    return torch.where(batch.action_mask, batch.temperature, 1.0)


def batch_logprobs(
    model: torch.nn.Module, batch: Batch, cfg: ObjectiveConfig, with_entropy: bool = True
) -> TokenLogprobs:
    """The one forward pass: log-probs (and entropies) of every token of ``batch``."""
    return token_logprobs(
        model,
        batch.input_ids,
        batch.attention_mask,
        chunk_size=cfg.logprob_chunk_size,
        temperature=token_temperatures(batch, cfg),
        with_entropy=with_entropy,
    )


@torch.no_grad()
def frozen_logprobs(model: torch.nn.Module, batch: Batch, cfg: ObjectiveConfig, micro_batch_size: int,
                    device: torch.device | str) -> Tensor:
    """[B, T] :func:`batch_logprobs` of ``model`` over ``batch`` (on the CPU), computed without gradient
    over the same micro-batches the update uses, on ``device``: a reference model's log-probs, or the
    policy's before an update. The caller sets the compute precision."""
    out = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for rows, micro in zip(batch.micro_batch_rows(micro_batch_size), batch.micro_batches(micro_batch_size)):
        logprobs = batch_logprobs(model, micro.to(device), cfg, with_entropy=False).logprobs
        out[rows, : logprobs.shape[1]] = logprobs.float().cpu()
    return out


def env_term(logprobs: Tensor, batch: Batch, cfg: EnvLossConfig) -> tuple[Tensor, dict[str, float]]:
    """L_env (module docstring) and its metrics: env_loss, and per-token CEs (token means, whatever the
    normalisation) over the terminal-output tokens (env_ce), the warning tokens (warning_ce) and the
    targets left after filters (target_ce)."""
    nll = -logprobs
    targets = batch.target_mask.float()
    loss = env_ce_loss(
        logprobs,
        batch.target_mask,
        NORMALIZERS[cfg.normalization],
        obs_count=batch.obs_count,
        constant=cfg.norm_constant,
        n_seqs=batch.env_seqs,
    )
    with torch.no_grad():
        metrics = {
            "env_loss": loss.item(),
            "env_ce": masked_mean(nll, batch.env_mask),
            "warning_ce": masked_mean(nll, batch.warning_mask),
            "target_ce": masked_mean(nll, targets),
        }
    return loss, metrics


def loss_terms(token_lp: TokenLogprobs, batch: Batch, cfg: ObjectiveConfig) -> tuple[Tensor, Tensor, dict[str, float]]:
    """(L_GRPO, L_env, metrics) from one set of per-token log-probs; metrics add entropies and token counts."""
    policy, metrics = policy_term(token_lp.logprobs, batch, cfg)
    env, env_metrics = env_term(token_lp.logprobs, batch, cfg.env)
    metrics |= env_metrics
    if token_lp.entropy is not None:
        metrics["entropy_action"] = masked_mean(token_lp.entropy, batch.action_mask)
        metrics["entropy_env"] = masked_mean(token_lp.entropy, batch.env_mask)
    metrics |= {
        "seqs": float(batch.valid.sum()),
        "action_tokens": float(batch.action_mask.sum()),
        "env_tokens": float(batch.env_mask.sum()),
        "warning_tokens": float(batch.warning_mask.sum()),
        "target_tokens": float(batch.target_mask.sum()),
    }
    return policy, env, metrics


def combined_metrics(terms: dict[str, float], weights: tuple[float, float]) -> dict[str, float]:
    """What is logged of L = w_π·L_GRPO + w_env·L_env, given the terms' ``policy_loss`` and ``env_loss``
    (one micro-batch's, or an update's sums — plain and probe steps alike): loss, lambda (w_env),
    env_loss_scaled = w_env·L_env and env_to_policy_ratio = |w_env·L_env| / max(|L_GRPO|, 1e-8)."""
    w_policy, w_env = weights
    policy, scaled = terms["policy_loss"], w_env * terms["env_loss"]
    return {
        "loss": w_policy * policy + scaled,
        "lambda": w_env,
        "env_loss_scaled": scaled,
        "env_to_policy_ratio": abs(scaled) / max(abs(policy), 1e-8),
    }


def echo_loss(
    model_or_logprobs: torch.nn.Module | TokenLogprobs,
    batch: Batch,
    cfg: ObjectiveConfig,
    weights: tuple[float, float],
) -> tuple[Tensor, dict[str, float]]:
    """L = w_π·L_GRPO + w_env·L_env for one (micro-)batch with the given ``weights`` (w_π, w_env) — a
    :class:`~echo_rl.objective.balance.LambdaBalancer`'s — and its metrics. Pass the model (one forward
    pass here) or precomputed :func:`batch_logprobs`. Metrics: those of :func:`loss_terms` and
    :func:`combined_metrics`."""
    token_lp = (
        model_or_logprobs
        if isinstance(model_or_logprobs, TokenLogprobs)
        else batch_logprobs(model_or_logprobs, batch, cfg)
    )
    policy, env, metrics = loss_terms(token_lp, batch, cfg)
    loss = combine(policy, env, *weights)
    return loss, metrics | combined_metrics(metrics, weights)


@torch.no_grad()
def env_cross_entropy(model: torch.nn.Module, batch: Batch, chunk_size: int = 1024,
                      subsets: Mapping[str, Tensor] | None = None) -> dict[str, float]:
    """Held-out env CE at τ = 1 (nats/token over terminal-output tokens, and over warning tokens), with
    the sums and counts needed to pool several batches; each of ``subsets`` (a name → a boolean mask shaped
    like ``batch.input_ids``, e.g. :func:`echo_rl.eval.copyable.copyable_masks`'s) gets the same three
    entries, ``<name>_ce``, ``<name>_nll_sum`` and ``<name>_tokens``."""
    logprobs = token_logprobs(model, batch.input_ids, batch.attention_mask, chunk_size).logprobs
    out: dict[str, float] = {}
    for name, mask in (("env", batch.env_mask), ("warning", batch.warning_mask), *(subsets or {}).items()):
        nll_sum, tokens = float(-(logprobs * mask).sum()), float(mask.sum())
        out |= {f"{name}_ce": nll_sum / max(tokens, 1.0), f"{name}_nll_sum": nll_sum, f"{name}_tokens": tokens}
    return out
