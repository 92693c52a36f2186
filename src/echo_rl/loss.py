"""ECHO as tensors: the env cross-entropy and the combined loss, for any trainer (TRL, verl, SkyRL, your own).

Inputs are per-token log-probs ``logprobs`` [B, T] (log p(x_t | x_<t) from the SAME forward pass the policy
loss uses; positions outside the masks are ignored), an env-target mask O' [B, T] (the tokens the
environment wrote: tool / terminal output), and a normaliser. No config objects.

    L_env = (1/N) Σ_s (1/Z_s) Σ_{t∈O'_s} −log p(x_t | x_<t)

    normalizer   Z_s                                  N
    "sequence"   |O'_s| (env tokens of sequence s)    n_seqs (default: B, every row, with or without env tokens)
    "observation" obs_count_s (all observation tokens, before any target filter; echo-rl's default)   n_seqs
    "constant"   C = ``constant``                     n_seqs              (Dr. GRPO style)
    "tokens"     1                                    Σ_s |O'_s| (default), or a global token count (prime-rl)

Z_s and N are clamped at 1, so a row without env tokens adds 0 and an all-empty batch gives a differentiable 0.

    L = w_π · L_policy + λ · L_env        (:func:`echo_loss`; a zero weight leaves its term out of the graph,
                                           so λ = 0 returns L_policy itself, bit for bit)

Temperature: ``logprobs`` carry whatever temperature the caller's forward pass applied. ECHO's reference
system computes the env CE from the same temperature-scaled log-probs as the policy term (τ = the sampling
temperature); at τ = 1 it is the plain LM cross-entropy. Either is one forward pass; say which you use.

λ is not portable across normalisers: with "sequence"/"observation" every rollout weighs the same whatever its
output length, with "tokens" every env token does, so the env gradient of "tokens" is the per-sequence one
scaled by (mean env tokens per sequence) / (tokens in the global count / n_seqs) — the same 0.05 is a
different strength.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Normalizer = Literal["sequence", "observation", "constant", "tokens"]


def env_cross_entropy(
    logprobs: Tensor,
    env_mask: Tensor,
    normalizer: Normalizer = "sequence",
    *,
    obs_count: Tensor | None = None,
    constant: float | None = None,
    n_seqs: float | None = None,
    n_tokens: float | None = None,
) -> Tensor:
    """L_env (module docstring) as a differentiable scalar.

    ``obs_count`` [B] is needed by "observation", ``constant`` by "constant"; ``n_seqs`` (default B) and
    ``n_tokens`` (default Σ env_mask) let callers pass step-wide or global denominators so that micro-batch
    losses sum to the full-batch loss."""
    if logprobs.shape != env_mask.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and env_mask {tuple(env_mask.shape)} differ in shape")
    targets = env_mask.to(logprobs.dtype)
    nll = (-logprobs * targets).sum(1)
    if normalizer == "tokens":
        total = float(targets.sum()) if n_tokens is None else n_tokens
        return nll.sum() / max(total, 1.0)
    if normalizer == "sequence":
        z = targets.sum(1)
    elif normalizer == "observation":
        if obs_count is None:
            raise ValueError('normalizer "observation" needs obs_count (observation tokens per sequence)')
        z = obs_count.to(nll.dtype)
    elif normalizer == "constant":
        if constant is None or constant <= 0:
            raise ValueError('normalizer "constant" needs constant > 0')
        z = torch.full_like(nll, constant)
    else:
        raise ValueError(f"unknown normalizer {normalizer!r}; expected sequence, observation, constant or tokens")
    rows = float(logprobs.shape[0]) if n_seqs is None else n_seqs
    return (nll / z.clamp(min=1)).sum() / max(rows, 1.0)


def combine(policy_loss: Tensor, env_loss: Tensor, policy_weight: float, env_weight: float) -> Tensor:
    """w_π·L_policy + w_env·L_env, leaving zero-weight terms out (both zero: 0·L_policy, graph intact)."""
    terms = [w * term for w, term in ((policy_weight, policy_loss), (env_weight, env_loss)) if w != 0]
    return sum(terms[1:], terms[0]) if terms else policy_loss * 0.0


def echo_loss(
    policy_loss: Tensor,
    logprobs: Tensor,
    env_mask: Tensor,
    lam: float,
    normalizer: Normalizer = "sequence",
    *,
    policy_weight: float = 1.0,
    **denominators: float | Tensor | None,
) -> Tensor:
    """L = w_π·L_policy + λ·L_env: your trainer's policy loss plus the env CE from the same ``logprobs``.
    ``denominators`` are :func:`env_cross_entropy`'s keywords (obs_count, constant, n_seqs, n_tokens)."""
    if lam == 0:
        return combine(policy_loss, policy_loss, policy_weight, 0.0)
    env = env_cross_entropy(logprobs, env_mask, normalizer, **denominators)
    return combine(policy_loss, env, policy_weight, lam)
