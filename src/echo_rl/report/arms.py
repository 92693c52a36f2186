"""Runs grouped into arms (one method, several seeds) and the statistics a comparison of arms needs.

An arm's pass@1 on a split is the mean over its seeds of each seed's mean over tasks, with a hierarchical
bootstrap interval (seeds, then tasks within: :mod:`echo_rl.eval.bootstrap`); its seeds' own values are
kept beside it (the seed-to-seed spread). Every arm is compared with one reference arm (GRPO) by a
paired difference on the same tasks and seeds. Several arms compared at once make several comparisons:
each difference comes with its unadjusted 95% interval and a Bonferroni-adjusted one over all the
comparisons shown (:class:`Comparisons`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from statistics import mean
from typing import Any

from echo_rl.eval.bootstrap import Counts, Interval, bonferroni, paired_difference, pass1_interval
from echo_rl.eval.results import MODES, Efficiency, EnvCE, EvalResult
from echo_rl.report.runs import RunData, mean_rollouts_kept

SPLITS = {"validation": "validation", "test": "test", "heldout": "held-out families"}
BOOTSTRAP_SAMPLES = 2000


@dataclass
class Arm:
    """One method: its runs (one per seed; none for a policy that was only evaluated) and each seed's final
    evaluation, in the same order."""

    name: str
    label: str
    finals: list[EvalResult]
    runs: list[RunData] = field(default_factory=list)
    algorithm: str | None = None

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs] or [None] * len(self.finals)

    def counts(self, split: str, mode: str) -> list[Counts]:
        """Per seed, ``{task: (n, c)}`` of ``split``/``mode`` (seeds without that evaluation left out)."""
        return [s.tasks for r in self.finals if (s := r.summary(split, mode)) is not None and s.tasks]

    def score(self, split: str, mode: str, confidence: float = 0.95) -> Interval | None:
        return pass1_interval(self.counts(split, mode), confidence, BOOTSTRAP_SAMPLES)

    def headline_mode(self, split: str) -> str | None:
        """The mode :meth:`~echo_rl.eval.results.EvalResult.headline` picks for ``split`` (on the first seed)."""
        found = next((h for r in self.finals if (h := r.headline(split))), None)
        return found[0] if found else None

    def env_ce(self, which: str = "heldout", tokens: str = "all") -> list[float]:
        """Per seed: held-out env CE (``heldout``: new families; ``validation``: unseen tasks, seen families)
        over all env tokens, or (``tokens="copyable"``) over those only copying predicts."""
        sets: list[EnvCE | None] = [r.env_ce if which == "heldout" else r.env_ce_validation for r in self.finals]
        values = [ce.value if tokens == "all" else ce.copyable for ce in sets if ce is not None]
        return [v for v in values if v is not None]

    def efficiency(self, split: str) -> Efficiency | None:
        """The first seed's efficiency on ``split``'s headline evaluation."""
        found = next((h for r in self.finals if (h := r.headline(split))), None)
        return found[1].efficiency if found else None

    def steps_to_best(self) -> list[int | None]:
        return [run.steps_to_best() for run in self.runs]

    def alarms(self) -> list[int]:
        return [len(run.alarms) for run in self.runs]

    def rollouts_kept(self) -> list[float | None]:
        return [mean_rollouts_kept(run.train) for run in self.runs]


def _arm_name(run: RunData) -> str:
    return re.sub(r"-seed\d+$", "", run.name)


def group_runs(runs: list[RunData]) -> list[Arm]:
    """Runs whose configs differ only in ``name`` and ``seed`` are one arm (in order of first appearance);
    an arm's final evaluations are its runs' last ones."""
    arms: dict[str, Arm] = {}
    for run in runs:
        final = run.final_eval()
        arm = arms.setdefault(run.arm_key, Arm(_arm_name(run), run.label, [], [], run.algorithm))
        arm.runs.append(run)
        if final is not None:
            arm.finals.append(final)
    for arm in arms.values():
        if len(arm.runs) > 1:
            arm.label = re.sub(r"-seed\d+", "", arm.label)
    return list(arms.values())


def cells(arms: list[Arm], splits: list[str]) -> list[tuple[str, str]]:
    """(split, mode) of every evaluation some arm's final results hold, splits in ``splits`` order."""
    return [(s, m) for s in splits for m in MODES if any(r.summary(s, m) for a in arms for r in a.finals)]


@dataclass(frozen=True)
class Comparison:
    arm: Arm
    split: str
    mode: str
    diff: Interval
    adjusted: Interval


@dataclass
class Comparisons:
    """Each arm but the reference against it, on every (split, mode); ``count`` comparisons in all, the
    ``adjusted`` intervals Bonferroni over that count."""

    reference: Arm
    items: list[Comparison]
    count: int
    confidence: float = 0.95

    def get(self, arm: Arm, split: str, mode: str) -> Comparison | None:
        return next((c for c in self.items if c.arm is arm and (c.split, c.mode) == (split, mode)), None)

    def note(self) -> str:
        """The multiplicity sentence every comparison table carries."""
        others = len({id(c.arm) for c in self.items})
        level = 100 * bonferroni(self.confidence, self.count)
        return (f"{others} arm{'s' if others != 1 else ''} compared with {self.reference.label} on "
                f"{self.count // max(others, 1)} split/mode cell{'s' if self.count // max(others, 1) != 1 else ''}: "
                f"{self.count} comparisons. The first interval is the unadjusted {100 * self.confidence:.0f}% one; "
                f"the second is Bonferroni-adjusted ({level:.2f}% each, so that all {self.count} hold together at "
                f"{100 * self.confidence:.0f}%). Paired bootstrap over seeds, then tasks; seeds paired by position.")


def compare(arms: list[Arm], reference: Arm, splits: list[str], confidence: float = 0.95) -> Comparisons:
    """Paired differences (arm − reference) of every other trained arm on every evaluated (split, mode)."""
    others = [a for a in arms if a is not reference and a.runs]
    grid = [(s, m) for s, m in cells([reference], splits) if reference.counts(s, m)]
    count = len(others) * len(grid)
    adjusted_level = bonferroni(confidence, count)
    items = []
    for arm in others:
        for split, mode in grid:
            a, b = arm.counts(split, mode), reference.counts(split, mode)
            diff = paired_difference(a, b, confidence, BOOTSTRAP_SAMPLES)
            adjusted = paired_difference(a, b, adjusted_level, BOOTSTRAP_SAMPLES)
            if diff is not None and adjusted is not None:
                items.append(Comparison(arm, split, mode, diff, adjusted))
    return Comparisons(reference, items, count, confidence)


def reference_arm(arms: list[Arm]) -> Arm | None:
    """The arm others are compared with: the GRPO arm, else the first trained one."""
    trained = [a for a in arms if a.runs]
    return next((a for a in trained if a.algorithm == "grpo"), trained[0] if trained else None)


def compare_with_reference(arms: list[Arm], splits: list[str]) -> Comparisons | None:
    """Every trained arm against :func:`reference_arm` (None with fewer than two trained arms)."""
    reference = reference_arm(arms)
    return compare(arms, reference, splits) if reference and len([a for a in arms if a.runs]) > 1 else None


def primary_split(arms: list[Arm]) -> str:
    """The split a verdict is on: test when it was evaluated, else validation."""
    return "test" if any(a.counts("test", m) for a in arms for m in MODES) else "validation"


def arm_summary(arm: Arm, primary: str) -> dict[str, Any]:
    """An arm's numbers as data (a report's summary.json): pass@1 per split/mode (with per-seed values), env
    CE, efficiency on ``primary``, steps to best, alarms and rollouts kept per seed."""
    scores = {f"{s}/{m}": asdict(x) for s in SPLITS for m in MODES if (x := arm.score(s, m))}
    eff = arm.efficiency(primary)
    return {"label": arm.label, "seeds": arm.seeds, "scores": scores, "env_ce_heldout": arm.env_ce("heldout"),
            "env_ce_validation": arm.env_ce("validation"), "env_ce_heldout_copyable": arm.env_ce("heldout", "copyable"),
            "env_ce_validation_copyable": arm.env_ce("validation", "copyable"),
            "efficiency": asdict(eff) | {"turn_limit_rate": eff.turn_limit_rate} if eff else None,
            "steps_to_best": arm.steps_to_best(), "alarms": arm.alarms(), "rollouts_kept": arm.rollouts_kept()}


def mean_or_none(values: list[float]) -> float | None:
    return mean(values) if values else None
