"""Per-term gradients and balancing of the env term against the policy term (stable-ECHO issue, 1 and 3).

Probe — g_π = ∇_θ L_GRPO and g_env = ∇_θ L_env (unweighted), reported as ‖g_π‖, ‖g_env‖, ‖w_env·g_env‖
and cos(g_π, g_env). Cost: the terms share one forward pass per micro-batch but need two backward passes
(``autograd.grad`` twice, the graph kept for the second) and two gradient buffers the size of the trainable
parameters. A probe step's update is assembled from those two gradients, so it costs one extra backward
pass per micro-batch, not a second step. Measured by ``benchmarks/objective.py`` (CPU, one thread): a probe
step takes 1.7× (vocabulary 512) to 2.2× (vocabulary 151,936, where each backward recomputes the chunked
projection) the CPU time of an ECHO step, and 1.1× its peak memory.

Adaptive λ (``env.balance.mode = adaptive``, echo only) — each probe sets the bound b = ρ·‖g_π‖/‖g_env‖
(ρ = ``max_ratio``); until the next probe

    λ_eff = clamp(min(λ(step), b), floor, cap)       (λ(step) alone when g_π = 0 or g_env = 0: fallback)

so that ‖λ_eff·g_env‖ ≤ ρ·‖g_π‖ on the probe step (for floor ≤ b). The schedule's warm-up applies inside λ(step).

Separate clipping (``env.balance.separate_clip`` = c): the update is clip_c(w_π·g_π) + clip_c(λ_eff·g_env)
with clip_c(g) = g·min(1, c/‖g‖); the trainer's global clip still applies to the sum.

The balancer is the one decider of the term weights (w_π, w_env) — by algorithm, with the λ schedule and
the adaptive bound::

    grpo (1, 0)    echo (1, λ_eff)    env_only (0, 1)   (verifier-free adaptation)

    λ(step) = min(1, step / warmup_steps) · { λ                                   constant
                                            { λ + (final − λ) · min(1, step / decay_steps)   linear_decay
                                            { λ · factor^⌊step / every⌋                       step_decay

The loss (:func:`echo_rl.objective.echo.echo_loss`) combines the terms with the weights it is given.
Trainer loop::

    balancer = LambdaBalancer(cfg)
    weights = balancer.weights(step)
    if balancer.probe_due(step):
        grads = per_term_gradients(model, micro_batches, cfg)   # under DDP: grads.all_reduce()
        metrics |= balancer.apply(grads, step)                  # writes p.grad
    else:
        for mb in micro_batches:
            loss, m = echo_loss(model, mb, cfg, weights); loss.backward()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from echo_rl.config import EnvLossConfig, ObjectiveConfig
from echo_rl.objective.echo import batch_logprobs, loss_terms

if TYPE_CHECKING:
    from echo_rl.objective.batch import Batch


def scheduled_lambda(cfg: EnvLossConfig, step: int) -> float:
    """λ(step) of the schedule, warm-up included (module docstring)."""
    schedule = cfg.schedule
    if schedule.kind == "constant":
        lam = cfg.lam
    elif schedule.kind == "linear_decay":
        lam = cfg.lam + (schedule.final - cfg.lam) * min(1.0, step / schedule.decay_steps)
    else:
        lam = cfg.lam * schedule.factor ** (step // schedule.every)
    if schedule.warmup_steps:
        lam *= min(1.0, step / schedule.warmup_steps)
    return lam


def term_weights(cfg: ObjectiveConfig, step: int) -> tuple[float, float]:
    """(w_π, w_env) of the configured algorithm and schedule at ``step``, before any adaptive bound."""
    if cfg.algorithm == "grpo":
        return 1.0, 0.0
    if cfg.algorithm == "env_only":
        return 0.0, 1.0
    return 1.0, scheduled_lambda(cfg.env, step)


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


@dataclass
class TermGradients:
    params: list[torch.nn.Parameter]
    policy: list[Tensor]  # ∇L_GRPO per parameter
    env: list[Tensor]  # ∇L_env per parameter (unweighted)
    metrics: list[dict[str, float]]  # loss_terms metrics of each micro-batch

    def norms(self) -> tuple[float, float, float]:
        """(‖g_π‖, ‖g_env‖, cos(g_π, g_env)); the cosine is 0 when either gradient is 0."""
        policy, env = _dot(self.policy, self.policy) ** 0.5, _dot(self.env, self.env) ** 0.5
        cosine = _dot(self.policy, self.env) / (policy * env) if policy and env else 0.0
        return policy, env, cosine

    def all_reduce(self) -> None:
        """Sum both gradients over data-parallel ranks (``autograd.grad`` bypasses DDP's hooks); the losses'
        global denominators make the sum the full-batch gradient."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for grad in [*self.policy, *self.env]:
                torch.distributed.all_reduce(grad)


def per_term_gradients(
    model: torch.nn.Module, batches: Iterable[Batch], cfg: ObjectiveConfig, params: Sequence[Tensor] | None = None
) -> TermGradients:
    """g_π and g_env summed over ``batches`` (the step's micro-batches): one forward, two backward passes each."""
    params = list(params if params is not None else (p for p in model.parameters() if p.requires_grad))
    policy = [torch.zeros_like(p) for p in params]
    env = [torch.zeros_like(p) for p in params]
    metrics = []
    for batch in batches:
        policy_loss, env_loss, batch_metrics = loss_terms(batch_logprobs(model, batch, cfg), batch, cfg)
        for acc, loss, retain in ((policy, policy_loss, True), (env, env_loss, False)):
            for total, grad in zip(acc, torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)):
                if grad is not None:
                    total += grad
        metrics.append(batch_metrics)
    return TermGradients(params, policy, env, metrics)


def _clip(grads: list[Tensor], max_norm: float | None) -> list[Tensor]:
    norm = _dot(grads, grads) ** 0.5
    if max_norm is None or norm <= max_norm:
        return grads
    return [g * (max_norm / norm) for g in grads]


class LambdaBalancer:
    """Holds the adaptive bound between probes and turns measured gradients into the update."""

    def __init__(self, cfg: ObjectiveConfig):
        self.cfg = cfg
        self.bound: float | None = None  # ρ·‖g_π‖/‖g_env‖ from the last probe

    def probe_due(self, step: int) -> bool:
        """True on steps whose gradients must be measured per term (every k steps; every step when
        separate clipping is on)."""
        every = self.cfg.grad_probe_every
        return self.cfg.env.balance.separate_clip is not None or (every > 0 and step % every == 0)

    def weights(self, step: int) -> tuple[float, float]:
        """(w_π, w_env) at ``step``: the algorithm's weights, with λ_eff in adaptive echo mode."""
        w_policy, w_env = term_weights(self.cfg, step)
        balance = self.cfg.env.balance
        if self.cfg.algorithm != "echo" or balance.mode == "none":
            return w_policy, w_env
        lam = w_env if self.bound is None else min(w_env, self.bound)
        return w_policy, min(max(lam, balance.floor), balance.cap)

    def apply(self, grads: TermGradients, step: int) -> dict[str, float]:
        """Update the bound from ``grads`` (adaptive mode), write p.grad = w_π·g_π + λ_eff·g_env (each term
        clipped first when separate clipping is on) and return the probe's metrics; ``grad_env_to_policy`` =
        λ_eff·‖g_env‖ / ‖g_π‖ only when ‖g_π‖ > 0."""
        balance = self.cfg.env.balance
        policy_norm, env_norm, cosine = grads.norms()
        if balance.mode == "adaptive":
            self.bound = balance.max_ratio * policy_norm / env_norm if policy_norm and env_norm else None
        w_policy, w_env = self.weights(step)
        policy = _clip([w_policy * g for g in grads.policy], balance.separate_clip)
        env = _clip([w_env * g for g in grads.env], balance.separate_clip)
        for param, g_policy, g_env in zip(grads.params, policy, env):
            param.grad = g_policy + g_env
        metrics = {
            "grad_policy_norm": policy_norm,
            "grad_env_norm": env_norm,
            "grad_env_weighted_norm": w_env * env_norm,
            "grad_cosine": cosine,
            "lambda_effective": w_env,
        }
        if policy_norm:  # undefined when no group has an advantage (the policy term's gradient is zero)
            metrics["grad_env_to_policy"] = w_env * env_norm / policy_norm
        return metrics
