"""Scores with intervals: unbiased pass@k, Wilson and bootstrap intervals.

pass@k follows Chen et al. (2021): for a task with ``n`` valid samples of which ``c`` solved it,
``1 - C(n-c, k) / C(n, k)``, averaged over tasks. pass@1 is therefore the mean over a task's samples.
Infrastructure failures are never samples: callers pass valid counts only and report exclusions beside.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of ``k`` samples (drawn without replacement from ``n``, of
    which ``c`` are correct) is correct. Requires ``1 <= k <= n`` and ``0 <= c <= n``."""
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n and 0 <= c <= n (n={n}, c={c})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the edges (no rounding residue)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, samples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with a fixed seed)."""
    if not values:
        return 0.0, 1.0
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(samples))
    tail = (1 - confidence) / 2
    low = means[math.floor(tail * (samples - 1))]
    high = means[math.ceil((1 - tail) * (samples - 1))]
    return low, high


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

    The interval is Wilson (at the task-mean proportion, over all valid samples) for k = 1 and a bootstrap
    over tasks for k > 1.
    """
    usable = {task: nc for task, nc in counts.items() if nc[0] >= k}
    short = len(counts) - len(usable)
    per_task = [pass_at_k(n, c, k) for n, c in usable.values()]
    samples = sum(n for n, _ in usable.values())
    value = sum(per_task) / len(per_task) if per_task else 0.0
    if k == 1:
        low, high = wilson_interval(value * samples, samples, confidence)
    else:
        low, high = bootstrap_interval(per_task, confidence, bootstrap_samples)
    return Score(k, value, low, high, len(usable), samples, short)
