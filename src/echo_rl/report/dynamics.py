"""What happened during training, per arm: the mechanism behind a comparison of ECHO with GRPO.

From each run's step records (``metrics.jsonl``, names in :mod:`echo_rl.train.metrics`):

    pass rate          rollout/pass_rate, mean over the first and over the last ``window`` steps
    own-rollout env CE update/env_ce (the env CE of the step's own training rollouts), first and last window
    zero-advantage     advantage/groups_zero_advantage / advantage/groups, mean over steps: the share of
                       groups whose rollouts all scored alike, which give the policy term no signal
    gradient probe     on the probe's steps (``objective.grad_probe_every``): ‖∇L_GRPO‖, ‖∇L_env‖ (unweighted),
                       λ_eff and cos(∇L_GRPO, ∇L_env), means over probe steps; ‖λ_eff·∇L_env‖ / ‖∇L_GRPO‖, the
                       mean over the probe steps with a policy gradient (a step whose groups all have zero
                       advantage has ‖∇L_GRPO‖ = 0 and logs no ratio; runs from before 2026-12-05 logged
                       ~1e10 there, which is skipped too)

``window`` is 10 steps, or half a shorter run. An arm's value is the mean over its seeds; a quantity no run
logged (no probe, no verifier for env_only) is None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import mean
from typing import Any

from echo_rl.report.arms import Arm
from echo_rl.report.tables import Table

WINDOW = 10
PROBES = {"grad_policy": "update/grad_policy_norm", "grad_env": "update/grad_env_norm",
          "lambda_effective": "update/lambda_effective", "cosine": "update/grad_cosine"}

Span = tuple[float, float]  # (mean of the first window, mean of the last)


@dataclass(frozen=True)
class Dynamics:
    pass_rate: Span | None = None
    env_ce_own: Span | None = None
    zero_advantage: float | None = None
    grad_policy: float | None = None
    grad_env: float | None = None
    env_to_policy: float | None = None
    lambda_effective: float | None = None
    cosine: float | None = None


def _series(records: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records if r.get(key) is not None]


def _span(values: list[float], window: int = WINDOW) -> Span | None:
    if not values:
        return None
    n = max(1, min(window, len(values) // 2))
    return mean(values[:n]), mean(values[-n:])


def _zero_advantage(records: list[dict[str, Any]]) -> float | None:
    shares = [r["advantage/groups_zero_advantage"] / r["advantage/groups"] for r in records
              if r.get("advantage/groups") and r.get("advantage/groups_zero_advantage") is not None]
    return mean(shares) if shares else None


def _env_to_policy(records: list[dict[str, Any]]) -> float | None:
    ratios = [r["update/grad_env_to_policy"] for r in records
              if r.get("update/grad_policy_norm") and r.get("update/grad_env_to_policy") is not None]
    return mean(ratios) if ratios else None


def run_dynamics(records: list[dict[str, Any]]) -> Dynamics:
    """One run's :class:`Dynamics` from its training step records."""
    probes = {field: mean(v) if (v := _series(records, key)) else None for field, key in PROBES.items()}
    return Dynamics(_span(_series(records, "rollout/pass_rate")), _span(_series(records, "update/env_ce")),
                    _zero_advantage(records), env_to_policy=_env_to_policy(records), **probes)


def _seed_mean(values: list[Any]) -> Any:
    found = [v for v in values if v is not None]
    if not found:
        return None
    if isinstance(found[0], tuple):
        return mean(v[0] for v in found), mean(v[1] for v in found)
    return mean(found)


def arm_dynamics(arm: Arm) -> Dynamics:
    """The mean over ``arm``'s seeds of each run's :class:`Dynamics`."""
    per_run = [run_dynamics(run.train) for run in arm.runs]
    return Dynamics(**{name: _seed_mean([getattr(d, name) for d in per_run]) for name in Dynamics.__dataclass_fields__})


def _span_text(span: Span | None, fmt: str) -> str:
    return "—" if span is None else f"{span[0]:{fmt}} → {span[1]:{fmt}}"


def _value_text(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


COLUMNS: list[tuple[str, Callable[[Dynamics], str]]] = [
    ("training pass rate, first → last steps", lambda d: _span_text(d.pass_rate, ".2f")),
    ("env CE of its own rollouts, first → last steps", lambda d: _span_text(d.env_ce_own, ".2f")),
    ("zero-advantage groups", lambda d: _value_text(d.zero_advantage, ".0%")),
    ("‖∇L_GRPO‖", lambda d: _value_text(d.grad_policy, ".3g")),
    ("‖∇L_env‖", lambda d: _value_text(d.grad_env, ".3g")),
    ("‖λ·∇L_env‖ / ‖∇L_GRPO‖", lambda d: _value_text(d.env_to_policy, ".3g")),
    ("λ effective", lambda d: _value_text(d.lambda_effective, ".3g")),
    ("cos(∇L_GRPO, ∇L_env)", lambda d: _value_text(d.cosine, "+.3f")),
]


def dynamics_table(arms: list[Arm]) -> Table | None:
    """One row per trained arm (:class:`Dynamics`, seed means), columns no arm logged left out; None when no
    arm was trained."""
    trained = [(arm, arm_dynamics(arm)) for arm in arms if arm.runs]
    columns = [(name, cell) for name, cell in COLUMNS if any(cell(d) != "—" for _, d in trained)]
    if not columns:  # also when no arm was trained
        return None
    return ["arm", *(name for name, _ in columns)], [[arm.label, *(cell(d) for _, cell in columns)] for arm, d in trained]
