"""Intervals on pass@1 that respect how the samples were drawn: a hierarchical percentile bootstrap.

A task's samples are not independent (an easy task is solved by all of them), and seeds (training runs)
differ from each other: the unit of resampling is the seed, then the task within it, never the sample.
With ``S`` seeds, seed ``s`` holding per-task success rates ``r_{s,t} = c_{s,t} / n_{s,t}`` over ``T_s``
tasks,

    pass@1 = (1/S) Σ_s (1/T_s) Σ_t r_{s,t}

and one bootstrap replicate draws ``S`` seeds with replacement, then for each drawn seed ``T_s`` of its
tasks with replacement, and takes the same mean. With one seed this is the bootstrap over tasks. The
interval is the replicates' percentile interval; for pass@1 (:func:`pass1_interval`) it is never narrower
than the Wilson interval of the pooled proportion over all samples, which covers the edge where every
task has the same rate (all solved, none solved) and the bootstrap collapses to a point. A paired difference between two methods uses the same
draws for both: per seed, ``d_{s,t} = r^a_{s,t} − r^b_{s,t}`` over the tasks both evaluated, on the seeds
both ran. Deterministic given ``seed``.

Several comparisons at once: :func:`bonferroni` gives the per-comparison confidence that keeps the
family-wise level.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

Counts = dict[str, tuple[int, int]]  # task -> (valid samples n, solved c)


@dataclass(frozen=True)
class Interval:
    """A pass@1 (or difference) estimate with its bootstrap interval, over ``tasks`` tasks (per seed, at
    most) and ``seeds`` seeds; ``per_seed`` holds each seed's value (their spread is ``seed_sd``)."""

    value: float
    low: float
    high: float
    tasks: int
    seeds: int
    per_seed: tuple[float, ...] = ()
    confidence: float = 0.95

    @property
    def seed_sd(self) -> float | None:
        """Sample standard deviation of the per-seed values (None with fewer than two seeds)."""
        return statistics.stdev(self.per_seed) if len(self.per_seed) > 1 else None


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (i.i.d. samples); (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the edges (no rounding residue)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def rates(counts: Counts, tasks: Sequence[str] | None = None) -> np.ndarray:
    """Per-task success rates c/n (of ``tasks``, default all, in order)."""
    names = sorted(counts) if tasks is None else tasks
    return np.array([counts[t][1] / counts[t][0] for t in names if counts[t][0] > 0], dtype=float)


def hierarchical_bootstrap(
    per_seed: Sequence[np.ndarray], confidence: float = 0.95, samples: int = 2000, seed: int = 0
) -> Interval | None:
    """The module docstring's estimate and interval of the mean of ``per_seed`` (one array of per-task
    values per seed); None when no seed has a value."""
    groups = [np.asarray(g, dtype=float) for g in per_seed if len(g)]
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    means = np.zeros((samples, len(groups)))
    for slot in range(len(groups)):
        drawn = rng.integers(len(groups), size=samples)
        for index, values in enumerate(groups):
            rows = np.flatnonzero(drawn == index)
            if len(rows):
                means[rows, slot] = values[rng.integers(len(values), size=(len(rows), len(values)))].mean(axis=1)
    replicates = means.mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    values = tuple(float(g.mean()) for g in groups)
    return Interval(float(np.mean(values)), float(low), float(high), max(len(g) for g in groups), len(groups),
                    values, confidence)


def pass1_interval(seeds: Sequence[Counts], confidence: float = 0.95, samples: int = 2000,
                   seed: int = 0) -> Interval | None:
    """pass@1 over seeds and tasks (``seeds``: one ``{task: (n, c)}`` per seed) with its interval (module
    docstring: the hierarchical bootstrap, widened to the pooled Wilson interval where that is wider)."""
    found = hierarchical_bootstrap([rates(c) for c in seeds], confidence, samples, seed)
    if found is None:
        return None
    n = sum(nc[0] for c in seeds for nc in c.values())
    low, high = wilson_interval(found.value * n, n, confidence)
    return replace(found, low=min(found.low, low), high=max(found.high, high))


def paired_difference(a: Sequence[Counts], b: Sequence[Counts], confidence: float = 0.95, samples: int = 2000,
                      seed: int = 0) -> Interval | None:
    """pass@1(a) − pass@1(b), seeds paired by position (the first ``min(len(a), len(b))``), tasks by
    name (those both evaluated); None when they share no task."""
    diffs = []
    for ca, cb in zip(a, b):
        shared = sorted(t for t in set(ca) & set(cb) if ca[t][0] and cb[t][0])
        diffs.append(rates(ca, shared) - rates(cb, shared))
    return hierarchical_bootstrap(diffs, confidence, samples, seed)


def bonferroni(confidence: float, comparisons: int) -> float:
    """Per-comparison confidence keeping ``confidence`` family-wise over ``comparisons`` intervals."""
    return 1 - (1 - confidence) / max(comparisons, 1)
