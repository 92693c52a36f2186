"""Collapse alarms fire on a sharp drop and stay quiet on noise (failure-modes issue, item 6)."""

import pytest

from echo_rl.config import AlarmConfig
from echo_rl.rollout.trajectory import Trajectory, Turn
from echo_rl.roles import Role
from echo_rl.train.alarms import CollapseMonitor
from echo_rl.train.stepstats import merge_stats, rollout_stats, step_metrics


def _rollout(commands, outcome="failed"):
    turns = [Turn(action_span=(0, 1), action_text=c, command=c) for c in commands]
    return Trajectory("t", [1, 2], [Role.ACTION, Role.ENV], [-1.0, 0.0], turns=turns, outcome=outcome,
                      verifier_reason="engine died" if outcome == "infra_error" else "")


def test_step_signals_merge_across_ranks_and_skip_infra_errors():
    rank0 = [_rollout(["ls", "cat a"]), _rollout(["ls"], "solved"), _rollout([]), _rollout(["x"], "infra_error")]
    rank1 = [_rollout(["pwd"]), _rollout(["pwd"]), _rollout(["pwd"], "solved"), _rollout(["pwd"])]
    metrics = step_metrics(merge_stats([rollout_stats(rank0, 4), rollout_stats(rank1, 4)]))
    assert metrics["distinct_commands"] == (2 / 3 + 1 / 4) / 2
    assert metrics["episode_length"] == 7 / 7
    assert metrics["pass_rate"] == 2 / 7
    assert metrics["infra_excluded"] == 1 and metrics["infra_reasons"] == {"engine died": 1}


def test_alarm_fires_on_a_synthetic_sharp_drop_only():
    monitor = CollapseMonitor(AlarmConfig(window=4, min_history=3, entropy_drop=0.5))
    fired = []
    for step, value in enumerate([2.0, 2.1, 1.9, 2.05, 1.8, 1.95, 0.4, 0.3]):
        fired += monitor.update(step, {"update/entropy_action": value, "rollout/episode_length": 4.0})
    assert [(a.signal, a.step) for a in fired] == [("update/entropy_action", 6), ("update/entropy_action", 7)]
    assert fired[0].baseline == pytest.approx(1.925) and "entropy_action fell to 0.4" in fired[0].message()


def test_disabled_threshold_and_short_history_never_fire():
    monitor = CollapseMonitor(AlarmConfig(min_history=3, env_ce_drop=None))
    assert monitor.update(0, {"update/env_ce": 5.0, "update/entropy_action": 2.0}) == []
    assert monitor.update(1, {"update/env_ce": 0.1, "update/entropy_action": 0.1}) == []  # history too short
    for step in range(2, 6):
        assert all(a.signal != "update/env_ce" for a in monitor.update(step, {"update/env_ce": 5.0 if step < 5 else 0.01}))


def test_monitor_state_round_trips():
    cfg = AlarmConfig(window=3, min_history=3)
    first = CollapseMonitor(cfg)
    for step in range(3):
        first.update(step, {"rollout/episode_length": 4.0})
    second = CollapseMonitor(cfg)
    second.load_state(first.state())
    assert [a.signal for a in second.update(3, {"rollout/episode_length": 1.0})] == ["rollout/episode_length"]
