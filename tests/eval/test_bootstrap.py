"""Intervals on pass@1 that resample tasks (and seeds), not samples: each case fails on the naive per-sample
interval (Wilson over all samples as if independent) or on an unpaired comparison."""

import pytest

from echo_rl.eval.bootstrap import (
    bonferroni,
    paired_difference,
    pass1_interval,
    wilson_interval,
)
from echo_rl.eval.stats import score_pass_at_k


def _counts(rates, n=10, prefix="t"):
    return {f"{prefix}{i}": (n, round(rate * n)) for i, rate in enumerate(rates)}


def _width(interval):
    return interval.high - interval.low


def test_samples_correlated_within_a_task_widen_the_interval():
    correlated = _counts([1.0, 0.0] * 10)  # a task is solved by all its samples or none
    independent = _counts([0.5] * 20)      # every task solved by half its samples
    wide, narrow = pass1_interval([correlated]), pass1_interval([independent])
    assert wide.value == narrow.value == pytest.approx(0.5)
    naive = wilson_interval(100, 200)      # 200 samples, 100 solved, in both cases
    assert _width(narrow) == pytest.approx(naive[1] - naive[0])  # no clustering: the i.i.d. interval
    assert _width(wide) > 2 * _width(narrow)  # 20 tasks, not 200 samples, carry the information
    assert 0.2 <= wide.low <= 0.32 and 0.68 <= wide.high <= 0.8  # ± 1.96 · 0.5 / √20
    score = score_pass_at_k(correlated, 1)  # the evaluation's own pass@1 interval is the same
    assert (score.low, score.high) == pytest.approx((wide.low, wide.high))


def test_seeds_that_disagree_widen_the_interval():
    pattern = [0.3, 0.7] * 10
    agree = [_counts(pattern), _counts(pattern)]
    disagree = [_counts([r - 0.2 for r in pattern]), _counts([r + 0.2 for r in pattern])]
    same, apart = pass1_interval(agree), pass1_interval(disagree)
    assert same.value == pytest.approx(apart.value) == pytest.approx(0.5)
    assert _width(apart) > 1.5 * _width(same)
    assert apart.per_seed == pytest.approx((0.3, 0.7)) and apart.seed_sd == pytest.approx(0.2828, abs=1e-3)
    assert same.seed_sd == 0 and pass1_interval([_counts(pattern)]).seed_sd is None


def test_deterministic_given_the_rng_seed():
    seeds = [_counts([0.1, 0.4, 0.9, 0.6, 0.3]), _counts([0.2, 0.5, 0.8, 0.7, 0.0])]
    assert pass1_interval(seeds, seed=4) == pass1_interval(seeds, seed=4)
    assert pass1_interval(seeds, seed=4) != pass1_interval(seeds, seed=5)


def test_paired_difference_sees_a_gain_the_two_intervals_hide():
    rates = [0.0, 0.1, 0.3, 0.5, 0.6, 0.8, 0.9, 1.0] * 3
    base = _counts([min(r, 0.9) for r in rates])
    better = _counts([min(r, 0.9) + 0.1 for r in rates])  # one more solved sample on every task
    a, b = pass1_interval([better]), pass1_interval([base])
    assert a.low < b.high  # on their own the two intervals overlap
    diff = paired_difference([better], [base])
    assert diff.value == pytest.approx(0.1) and diff.low > 0.05 and diff.tasks == len(rates)
    shuffled = paired_difference([better], [dict(zip(base, reversed(base.values())))])
    assert shuffled.low < 0 < shuffled.high  # the pairing by task is what makes it narrow


def test_paired_difference_uses_shared_tasks_and_paired_seeds():
    a = [_counts([1.0, 1.0, 0.0]), _counts([1.0, 0.0])]
    b = [_counts([0.0, 0.0])]
    diff = paired_difference(a, b)
    assert diff.seeds == 1 and diff.tasks == 2 and diff.value == pytest.approx(1.0)
    assert paired_difference([_counts([1.0], prefix="x")], [_counts([1.0])]) is None


def test_bonferroni_keeps_the_family_wise_level():
    assert bonferroni(0.95, 1) == pytest.approx(0.95) and bonferroni(0.95, 10) == pytest.approx(0.995)
    seeds = [_counts([0.1, 0.4, 0.9, 0.6, 0.3, 0.5, 0.2, 0.8])]
    plain, adjusted = pass1_interval(seeds, 0.95), pass1_interval(seeds, bonferroni(0.95, 10))
    assert adjusted.low < plain.low and adjusted.high > plain.high
