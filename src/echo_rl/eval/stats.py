"""Scores with intervals: unbiased pass@k, Wilson and bootstrap-over-tasks intervals.

pass@k follows Chen et al. (2021): for a task with ``n`` valid samples of which ``c`` solved it,
``1 - C(n-c, k) / C(n, k)``, averaged over tasks. pass@1 is therefore the mean over a task's samples.
Infrastructure failures are never samples: callers pass valid counts only and report exclusions beside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from echo_rl.eval.bootstrap import hierarchical_bootstrap, pass1_interval, wilson_interval

__all__ = ["Score", "bootstrap_interval", "pass_at_k", "score_pass_at_k", "wilson_interval"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of ``k`` samples (drawn without replacement from ``n``, of
    which ``c`` are correct) is correct. Requires ``1 <= k <= n`` and ``0 <= c <= n``."""
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n and 0 <= c <= n (n={n}, c={c})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, samples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (:func:`~echo_rl.eval.bootstrap.hierarchical_bootstrap`
    with one seed); (0, 1) without values."""
    found = hierarchical_bootstrap([list(values)], confidence, samples, seed)
    return (0.0, 1.0) if found is None else (found.low, found.high)


@dataclass(frozen=True)
class Score:
    """A pass@k estimate over ``tasks`` tasks with its interval. ``short_tasks`` had fewer than k valid
    samples and are left out of this k's estimate."""

    k: int
    value: float
    low: float
    high: float
    tasks: int
    samples: int
    short_tasks: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score_pass_at_k(
    counts: dict[str, tuple[int, int]], k: int, confidence: float = 0.95, bootstrap_samples: int = 1000
) -> Score:
    """pass@k over tasks given ``{task: (valid samples n, solved c)}``.

    The interval is a percentile bootstrap over tasks (a task's samples are not independent): for k = 1
    :func:`~echo_rl.eval.bootstrap.pass1_interval` (never narrower than Wilson), for k > 1 the plain one.
    ``wilson_interval`` is re-exported from :mod:`echo_rl.eval.bootstrap`.
    """
    usable = {task: nc for task, nc in counts.items() if nc[0] >= k}
    short = len(counts) - len(usable)
    per_task = [pass_at_k(n, c, k) for n, c in usable.values()]
    samples = sum(n for n, _ in usable.values())
    value = sum(per_task) / len(per_task) if per_task else 0.0
    if k == 1:
        found = pass1_interval([usable], confidence, bootstrap_samples)
        low, high = (found.low, found.high) if found else (0.0, 1.0)
    else:
        low, high = bootstrap_interval(per_task, confidence, bootstrap_samples)
    return Score(k, value, low, high, len(usable), samples, short)
