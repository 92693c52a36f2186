"""Reading finished (or running) run directories for reports.

A run directory (see :mod:`echo_rl.rundir`) gives the report its config (name, algorithm, λ), its per-step
training records (``metrics.jsonl``, ``kind: train``), its evaluations (``eval/step-N.json``) and the
collapse alarms its steps raised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from echo_rl.errors import UserError
from echo_rl.eval.results import EvalResult, read_results
from echo_rl.rundir import RunDir


def mean_rollouts_kept(train_records: list[dict[str, Any]]) -> float | None:
    """Mean over steps of the share of rollouts the env term's rollout filter kept (``filter/rollouts_kept``,
    logged only under a filter); None when no step ran one."""
    shares = [r["filter/rollouts_kept"] for r in train_records if "filter/rollouts_kept" in r]
    return sum(shares) / len(shares) if shares else None


@dataclass
class RunData:
    path: Path
    name: str
    algorithm: str
    lam: float
    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[EvalResult] = field(default_factory=list)  # sorted by step
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def arm_key(self) -> str:
        """What makes runs one arm (method): the config without its ``name`` and ``seed``."""
        return json.dumps({k: v for k, v in self.config.items() if k not in ("name", "seed")}, sort_keys=True)

    @property
    def alarms(self) -> list[dict[str, Any]]:
        return [alarm for record in self.train for alarm in record.get("alarms", [])]

    @property
    def label(self) -> str:
        """``name (GRPO)``, ``name (ECHO λ=…)``, ``name (env_only)``; just the name for an evaluation-only run."""
        if not self.train:
            return self.name
        if self.algorithm == "echo":
            return f"{self.name} (ECHO λ={self.lam:g})"
        return f"{self.name} ({'GRPO' if self.algorithm == 'grpo' else self.algorithm})"

    def final_eval(self) -> EvalResult | None:
        return self.evals[-1] if self.evals else None

    def base_eval(self) -> EvalResult | None:
        """The evaluation of the starting policy (step 0), when the run made one."""
        return self.evals[0] if self.evals and self.evals[0].step == 0 else None

    def validation_curve(self) -> list[tuple[int, float]]:
        """(step, validation pass@1 by :meth:`~echo_rl.eval.results.EvalResult.pass1`) of every evaluation."""
        return [(r.step, v) for r in self.evals if (v := r.pass1("validation")) is not None]

    def steps_to_best(self) -> int | None:
        """The step of the best validation pass@1 (the earliest of ties)."""
        curve = self.validation_curve()
        return max(curve, key=lambda point: (point[1], -point[0]))[0] if curve else None


def load_run(path: Path) -> RunData:
    """Read one run directory; a one-line UserError when ``path`` is not one."""
    run = RunDir(Path(path))
    if not run.config.is_file():
        raise UserError("not a run directory (no config.yaml)", where=str(path))
    config = yaml.safe_load(run.config.read_text()) or {}
    objective = config.get("objective", {})
    return RunData(
        path=run.root,
        name=config.get("name", run.root.name),
        algorithm=objective.get("algorithm", "?"),
        lam=float(objective.get("env", {}).get("lam", 0.0)),
        train=[r for r in run.read_metrics() if r.get("kind") == "train"],
        evals=read_results(run),
        seed=config.get("seed"),
        config=config,
    )


def load_runs(paths: list[Path]) -> list[RunData]:
    """Load runs in the given order; labels are made unique by appending the directory name."""
    runs = [load_run(p) for p in paths]
    labels = [r.label for r in runs]
    for run in runs:
        if labels.count(run.label) > 1:
            run.name = f"{run.name}/{run.path.name}"
    return runs
