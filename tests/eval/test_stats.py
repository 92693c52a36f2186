"""pass@k, intervals and episode summaries: exact values on hand-computed cases."""

from math import comb

import pytest

from echo_rl.eval.stats import (
    bootstrap_interval,
    pass_at_k,
    score_pass_at_k,
    wilson_interval,
)
from echo_rl.eval.summary import summarize_episodes
from echo_rl.rollout.trajectory import Trajectory, Turn
from echo_rl.roles import Role


@pytest.mark.parametrize("n,c,k", [(4, 0, 1), (4, 1, 1), (4, 2, 2), (10, 3, 5), (5, 5, 3), (8, 1, 8)])
def test_pass_at_k_matches_the_combinatorial_definition(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_wilson_interval_known_value_and_edges():
    low, high = wilson_interval(8, 10, 0.95)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25, 0.75]
    first = bootstrap_interval(values, samples=500, seed=3)
    assert first == bootstrap_interval(values, samples=500, seed=3)
    assert first[0] <= sum(values) / len(values) <= first[1]


def test_score_leaves_out_tasks_with_fewer_than_k_valid_samples():
    score = score_pass_at_k({"a": (4, 2), "b": (1, 1)}, k=2)
    assert score.tasks == 1 and score.short_tasks == 1
    assert score.value == pytest.approx(pass_at_k(4, 2, 2))


def _episode(task, outcome, family="f", turns=1, reason="", stop="done"):
    return Trajectory(
        task_id=task,
        token_ids=[1, 2, 3],
        roles=[Role.PROMPT, Role.ACTION, Role.ENV],
        logprobs=[0.0, -0.5, 0.0],
        turns=[Turn(action_span=(1, 2), action_text="x", command="ls") for _ in range(turns)],
        outcome=outcome,
        family=family,
        verifier_reason=reason,
        stop_reason=stop,
    )


def test_infra_errors_leave_denominators_and_are_counted_with_reasons():
    episodes = [
        _episode("t1", "solved"),
        _episode("t1", "failed"),
        _episode("t1", "infra_error", reason="image could not start"),
        _episode("t2", "agent_limit", family="g", stop="max_turns", turns=3),
        _episode("t2", "solved", family="g"),
        _episode("t2", "infra_error", family="g", reason="engine died"),
    ]
    summary = summarize_episodes(episodes, ks=[1, 2])
    assert summary.episodes == 6 and summary.valid == 4
    assert summary.infra.excluded == 2 and summary.infra.reasons == {"engine died": 1, "image could not start": 1}
    assert summary.pass_at(1).value == pytest.approx(0.5)
    assert summary.pass_at(2).value == pytest.approx(1.0)
    assert summary.tasks == {"t1": (2, 1), "t2": (2, 1)}
    assert summary.families["g"].infra.excluded == 1
    assert summary.families["f"].pass_at(1).samples == 2
    assert summary.efficiency.turns_mean == pytest.approx(1.5)
    assert summary.efficiency.stop_reasons == {"done": 3, "max_turns": 1}
    assert summary.efficiency.turn_limit_rate == pytest.approx(0.25)
    assert summary.efficiency.action_tokens_mean == 1
    on_disk = summary.to_json()  # the layout users read in eval/step-N.json
    assert on_disk["pass"]["1"]["value"] == pytest.approx(0.5) and on_disk["infra"]["excluded"] == 2
    assert on_disk["families"]["f"]["pass"]["1"]["samples"] == 2
