"""The evaluation result, typed, and its JSON on disk (``RUN/eval/step-N.json``, layout unchanged for readers).

    {"step": N,
     "scores": {split: {mode: summary}},     split ∈ validation | test | heldout, mode ∈ sampled | greedy
     "env_ce": {"value": nats/token, "tokens": n, "transcripts": m, "file": path, "vocab_size": |V|,
                "copyable": nats/token, "copyable_tokens": n} | null,
     "env_ce_skipped": why (only without env CE), "env_ce_validation": like env_ce (optional),
     ...}                                    any other key is kept as it is (``EvalResult.extra``)

    summary = {"episodes", "valid", "infra": {"excluded", "reasons"}, "pass": {"k": Score},
               "unverified": {"episodes", "tasks", "note"} (only when some), "tasks": {task: [n valid, c solved]},
               "families": {family: summary}, "efficiency": {...}}

Code reads a result only through :class:`EvalResult` (``from_json`` / ``to_json``). The one rule for "the
pass@1 of a split" is :meth:`EvalResult.headline`: the sampled evaluation when there is one, else greedy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from echo_rl.eval.bootstrap import Counts
from echo_rl.eval.stats import Score
from echo_rl.rundir import RunDir, atomic_write_text

MODES = ("sampled", "greedy")  # the headline rule's order of preference
TURN_LIMITS = ("max_turns", "max_turn_tokens", "max_context_tokens")


@dataclass(frozen=True)
class Infra:
    """Infrastructure failures: never samples, counted with their reasons."""

    excluded: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Unverified:
    """Valid episodes of tasks without ``tests/test.sh``: pass@k is not available for them."""

    episodes: int
    tasks: int
    note: str


@dataclass(frozen=True)
class Efficiency:
    """Over valid episodes: agent-timeout rate, share with a timed-out command, means per episode."""

    timeout_rate: float
    command_timeout_rate: float
    turns_mean: float
    tokens_mean: float
    action_tokens_mean: float
    stop_reasons: dict[str, int]

    @property
    def turn_limit_rate(self) -> float:
        """Share of episodes stopped by a turn or token limit."""
        total = sum(self.stop_reasons.values())
        return sum(self.stop_reasons.get(r, 0) for r in TURN_LIMITS) / total if total else 0.0


@dataclass(frozen=True)
class Summary:
    """The scores of one set of episodes (one split × mode, or one family of it)."""

    episodes: int
    valid: int
    infra: Infra
    passes: dict[int, Score]  # k -> pass@k; empty when no episode was verified (absent, never 0)
    tasks: Counts = field(default_factory=dict)
    unverified: Unverified | None = None
    families: dict[str, Summary] = field(default_factory=dict)
    efficiency: Efficiency | None = None

    def pass_at(self, k: int = 1) -> Score | None:
        return self.passes.get(k)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"episodes": self.episodes, "valid": self.valid, "infra": asdict(self.infra),
                               "pass": {str(k): s.to_dict() for k, s in self.passes.items()},
                               "tasks": {t: list(nc) for t, nc in self.tasks.items()}}
        if self.unverified is not None:
            out["unverified"] = asdict(self.unverified)
        if self.families:
            out["families"] = {name: fam.to_json() for name, fam in self.families.items()}
        if self.efficiency is not None:
            out["efficiency"] = asdict(self.efficiency)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        eff = data.get("efficiency")
        return cls(
            episodes=data["episodes"], valid=data["valid"], infra=Infra(**data.get("infra", {})),
            passes={int(k): Score(**s) for k, s in data.get("pass", {}).items()},
            tasks={t: (int(n), int(c)) for t, (n, c) in data.get("tasks", {}).items()},
            unverified=Unverified(**data["unverified"]) if data.get("unverified") else None,
            families={name: cls.from_json(fam) for name, fam in data.get("families", {}).items()},
            efficiency=Efficiency(**{f.name: eff[f.name] for f in fields(Efficiency) if f.name in eff}) if eff else None,
        )


@dataclass(frozen=True)
class EnvCE:
    """Held-out env CE: nats per env token of fixed transcripts at τ = 1; ``vocab_size`` gives the uniform
    guess ln|V| it is judged against; ``copyable`` the same over the ``copyable_tokens`` that only copying
    from the transcript predicts (:mod:`echo_rl.eval.copyable`; None without any, and in older files)."""

    value: float
    tokens: int
    transcripts: int
    file: str | None = None
    vocab_size: int | None = None
    copyable: float | None = None
    copyable_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> EnvCE | None:
        return None if not data else cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


_KNOWN = ("step", "scores", "env_ce", "env_ce_skipped", "env_ce_validation")


@dataclass
class EvalResult:
    step: int
    scores: dict[str, dict[str, Summary]]
    env_ce: EnvCE | None = None
    env_ce_skipped: str | None = None
    env_ce_validation: EnvCE | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, split: str, mode: str) -> Summary | None:
        return self.scores.get(split, {}).get(mode)

    def headline(self, split: str = "validation") -> tuple[str, Summary] | None:
        """THE pass@1 rule: ``split``'s sampled evaluation when it ran, else its greedy one."""
        for mode in MODES:
            summary = self.summary(split, mode)
            if summary is not None:
                return mode, summary
        return None

    def pass1(self, split: str = "validation") -> float | None:
        """:meth:`headline` pass@1 of ``split``; None without one (no such split, or none of it has tests)."""
        found = self.headline(split)
        score = found[1].pass_at(1) if found else None
        return None if score is None else score.value

    def score_line(self) -> str:
        """One line: pass@1 of every evaluated split/mode in percent, then the held-out env CE."""
        parts = [f"{split}/{mode} {100 * score.value:.1f}%" for split, modes in self.scores.items()
                 for mode, summary in modes.items() if (score := summary.pass_at(1))]
        if self.env_ce:
            copyable = self.env_ce.copyable
            parts.append(f"held-out env CE {self.env_ce.value:.3f}"
                         + (f" (copyable tokens {copyable:.3f})" if copyable is not None else ""))
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "scores": {
            split: {mode: s.to_json() for mode, s in modes.items()} for split, modes in self.scores.items()},
            "env_ce": self.env_ce.to_json() if self.env_ce else None}
        if self.env_ce_skipped is not None:
            out["env_ce_skipped"] = self.env_ce_skipped
        if self.env_ce_validation is not None:
            out["env_ce_validation"] = self.env_ce_validation.to_json()
        return out | self.extra

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalResult:
        return cls(
            step=int(data["step"]),
            scores={split: {mode: Summary.from_json(s) for mode, s in modes.items()}
                    for split, modes in data.get("scores", {}).items()},
            env_ce=EnvCE.from_json(data.get("env_ce")), env_ce_skipped=data.get("env_ce_skipped"),
            env_ce_validation=EnvCE.from_json(data.get("env_ce_validation")),
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )

    def flatten(self) -> dict[str, Any]:
        """The ``kind: eval`` line of ``metrics.jsonl``: ``<split>/<mode>/pass@k`` with ``_low`` / ``_high``,
        ``…/infra_excluded``, ``…/unverified`` (when any), ``…/timeout_rate``, ``…/turns_mean``,
        ``…/tokens_mean``, ``heldout_env_ce`` (and ``validation_env_ce``); no pass@k where no episode was verified."""
        record: dict[str, Any] = {"kind": "eval", "step": self.step}
        for split, modes in self.scores.items():
            for mode, summary in modes.items():
                prefix = f"{split}/{mode}"
                for k, score in summary.passes.items():
                    record |= {f"{prefix}/pass@{k}": score.value, f"{prefix}/pass@{k}_low": score.low,
                               f"{prefix}/pass@{k}_high": score.high}
                record[f"{prefix}/infra_excluded"] = summary.infra.excluded
                if summary.unverified:
                    record[f"{prefix}/unverified"] = summary.unverified.episodes
                if summary.efficiency:
                    eff = summary.efficiency
                    record |= {f"{prefix}/timeout_rate": eff.timeout_rate, f"{prefix}/turns_mean": eff.turns_mean,
                               f"{prefix}/tokens_mean": eff.tokens_mean}
        if self.env_ce:
            record["heldout_env_ce"] = self.env_ce.value
        if self.env_ce_validation:
            record["validation_env_ce"] = self.env_ce_validation.value
        return record

    def infra_failure(self) -> str | None:
        """Why a split/mode had episodes but every one was an infrastructure error (None when none was so)."""
        for split, modes in self.scores.items():
            for mode, summary in modes.items():
                if summary.episodes and not summary.valid:
                    return f"every {split}/{mode} episode was an infrastructure error: " \
                           f"{next(iter(summary.infra.reasons), '?')}"
        return None

    def unverified_notes(self) -> list[str]:
        """One line per split and mode with episodes of tasks without tests: pass@k is not available there."""
        notes = []
        for split, modes in self.scores.items():
            for mode, summary in modes.items():
                if gap := summary.unverified:
                    scored = "scored over the other tasks" if summary.passes else "no task of it was scored"
                    notes.append(f"{split}/{mode}: {gap.tasks} tasks ({gap.episodes} episodes) have no "
                                 f"tests/test.sh: pass@k is not available for them ({scored})")
        return notes


def write_result(run: RunDir, result: EvalResult) -> None:
    atomic_write_text(run.eval_result(result.step), json.dumps(result.to_json(), indent=1))


def read_result(path: Path) -> EvalResult:
    return EvalResult.from_json(json.loads(Path(path).read_text()))


def read_results(run: RunDir) -> list[EvalResult]:
    """Every ``eval/step-N.json`` of ``run``, by step."""
    paths = run.evals.glob("step-*.json") if run.evals.is_dir() else []
    return sorted((read_result(p) for p in paths), key=lambda r: r.step)
