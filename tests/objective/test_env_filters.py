"""Each env-target filter removes exactly the observation tokens of the turns it names (stable-ECHO 2), and
the rollout filters keep exactly the rollouts of clean tool calls (verifier-free adaptation, issue 21)."""

import pytest
import torch
from objective_helpers import make_batch, trajectory

from echo_rl.config import EnvFilters, EnvLossConfig, ObjectiveConfig
from echo_rl.objective.echo import env_term
from echo_rl.objective.filters import passes_rollout_filters

FIRST_OUTPUT = [11, 12, 13]
TURNS = [
    {"env": FIRST_OUTPUT},  # 0: clean
    {"warning": 2, "warnings": ["Missing <think> block"], "env": 3},  # 1: parse failed, command ran
    {"warning": 2, "warnings": ["No command"], "command": None, "exit_code": None, "env": 2},  # 2: rejected
    {"env": 4, "exit_code": 127, "output": "bash: foo: command not found"},  # 3: error only
    {"env": list(FIRST_OUTPUT)},  # 4: repeats turn 0 verbatim
    {"env": 3, "exit_code": -1, "timed_out": True},  # 5: timed out: error only
    {"env": 2, "exit_code": 0, "output": "sh: x: command not found"},  # 6: error text, exit 0: error only
]
NAMED = {"parse_failed": [1, 2], "rejected": [2], "error_only": [3, 5, 6], "repeated": [4]}


def _turn_tokens(traj, turns, targets):
    spans = [traj.turns[i].env_span for i in turns]
    if targets == "warning_plus_env":
        spans += [traj.turns[i].warning_span for i in turns if traj.turns[i].warning_span]
    return {p for span in spans for p in range(*span)}


@pytest.mark.parametrize("targets", ["env_only", "warning_plus_env"])
@pytest.mark.parametrize("name", list(NAMED))
def test_each_filter_removes_exactly_its_turns_tokens(name, targets):
    traj = trajectory(TURNS)
    unfiltered = make_batch([traj], ObjectiveConfig(env=EnvLossConfig(targets=targets)))
    cfg = ObjectiveConfig(env=EnvLossConfig(targets=targets, filters=EnvFilters(**{name: True})))
    batch = make_batch([traj], cfg)
    before = set(torch.nonzero(unfiltered.target_mask[0]).flatten().tolist())
    after = set(torch.nonzero(batch.target_mask[0]).flatten().tolist())
    removed = _turn_tokens(traj, NAMED[name], targets)
    assert before - after == removed and after == before - removed
    assert batch.stats[f"filter/{name}"] == pytest.approx(len(removed) / len(before))
    assert batch.stats["filter/total"] == pytest.approx(len(removed) / len(before))
    assert torch.equal(batch.obs_count, unfiltered.obs_count)  # Z (paper normalisation) is unchanged


def test_all_filters_together_report_each_share_and_the_union():
    traj = trajectory(TURNS)
    batch = make_batch(
        [traj],
        ObjectiveConfig(
            env=EnvLossConfig(filters=EnvFilters(parse_failed=True, rejected=True, error_only=True, repeated=True))
        ),
    )
    kept = set(torch.nonzero(batch.target_mask[0]).flatten().tolist())
    assert kept == set(range(*traj.turns[0].env_span))
    total = sum(len(range(*turn.env_span)) for turn in traj.turns)
    assert batch.stats["filter/total"] == pytest.approx(1 - len(kept) / total)
    assert batch.stats["filter/parse_failed"] == pytest.approx((3 + 2) / total)


def test_defaults_filter_nothing():
    batch = make_batch([trajectory(TURNS)])
    assert batch.stats == {"filter/rollout": 0.0, "filter/total": 0.0}


def test_rollout_filters_keep_clean_rollouts_only():
    # 7 turns: 5 without warnings, 6 with a command
    traj = trajectory(TURNS)
    assert passes_rollout_filters(traj, _objective(min_clean_turn_share=5 / 7, min_valid_call_share=6 / 7))
    assert not passes_rollout_filters(traj, _objective(min_clean_turn_share=0.8))
    assert not passes_rollout_filters(traj, _objective(min_valid_call_share=0.9))
    clean = trajectory([{"env": 3}, {"env": 2}], seed=1)
    cfg = _objective(min_clean_turn_share=0.8)
    batch = make_batch([traj, clean], cfg)
    assert not batch.target_mask[0].any() and batch.target_mask[1].sum() == 5
    assert batch.stats["filter/rollout"] == pytest.approx(batch.env_mask[0].sum().item() / batch.env_mask.sum().item())


def _objective(algorithm: str = "echo", **env) -> ObjectiveConfig:
    return ObjectiveConfig(algorithm=algorithm, env=EnvLossConfig(**env))


# Hand-built rollouts for the verifier-free filter: which of them are clean tool calls throughout.
ROLLOUTS = {
    "clean": [{"env": 3}, {"env": 4}, {"done": True, "command": None}],
    "clean, a command failed": [{"env": 3, "exit_code": 1, "output": "cat: x: No such file"}, {"env": 2}],
    "a warning": [{"env": 3}, {"warning": 2, "warnings": ["Missing <think> block"], "env": 3}],
    "no command": [{"env": 3}, {"warning": 2, "warnings": ["No command"], "command": None, "exit_code": None}],
    "cut off at the token limit": [{"env": 3}, {"command": None, "exit_code": None, "done": True}],
}
CLEAN = ["clean", "clean, a command failed"]


def _rollouts() -> list:
    trajs = [trajectory(turns, task_id="t", seed=i) for i, turns in enumerate(ROLLOUTS.values())]
    cut = trajs[-1].turns[-1]
    cut.done = False  # a generation cut off at max_turn_tokens: never parsed, nothing ran, no observation
    return trajs


def test_env_only_keeps_exactly_the_clean_rollouts_by_default():
    trajs = _rollouts()
    batch = make_batch(trajs, _objective("env_only"))
    kept = [name for name, row in zip(ROLLOUTS, batch.env_rows) if row]
    assert kept == CLEAN
    for name, targets, env in zip(ROLLOUTS, batch.target_mask, batch.env_mask):
        assert torch.equal(targets, env) if name in CLEAN else not targets.any()
    assert batch.env_seqs == 2 and batch.n_seqs == 5
    assert batch.stats["filter/rollouts_kept"] == pytest.approx(2 / 5)
    # the dropped rollouts leave the env term: its loss is the loss of the clean rollouts alone
    clean = [t for name, t in zip(ROLLOUTS, trajs) if name in CLEAN]
    logprobs = -torch.rand(batch.input_ids.shape)
    alone = make_batch(clean, _objective("env_only"))
    loss, _ = env_term(logprobs, batch, EnvLossConfig())
    rows = [i for i, name in enumerate(ROLLOUTS) if name in CLEAN]
    expected, _ = env_term(logprobs[rows, : alone.input_ids.shape[1]], alone, EnvLossConfig())
    assert loss.item() == pytest.approx(expected.item())


def test_grpo_and_echo_filter_no_rollout_by_default():
    for algorithm in ("grpo", "echo"):
        batch = make_batch(_rollouts(), _objective(algorithm))
        assert batch.env_rows.all() and batch.env_seqs == batch.n_seqs == 5
        assert torch.equal(batch.target_mask, batch.env_mask)
        assert "filter/rollouts_kept" not in batch.stats


def test_rollout_filter_thresholds_are_configurable_under_every_algorithm():
    loose = make_batch(_rollouts(), _objective("env_only", min_clean_turn_share=0.5))  # one warning in two turns
    assert [name for name, row in zip(ROLLOUTS, loose.env_rows) if row] == [*CLEAN, "a warning"]
    off = make_batch(_rollouts(), _objective("env_only", min_clean_turn_share=0.0, min_valid_call_share=0.0))
    assert off.env_rows.all() and "filter/rollouts_kept" not in off.stats
    echo = make_batch(_rollouts(), _objective("echo", min_clean_turn_share=1.0, min_valid_call_share=1.0))
    assert [name for name, row in zip(ROLLOUTS, echo.env_rows) if row] == CLEAN


def test_env_sequences_are_a_denominator_of_the_update():
    batch = make_batch(_rollouts(), _objective("env_only"))
    counts = batch.own_counts()
    assert counts[0] == 5 and counts[-1] == 2  # valid rows, env rows
    summed = batch.with_counts([2 * count for count in counts])  # two ranks alike
    assert (summed.n_seqs, summed.env_seqs) == (10, 4)
    assert all(mb.env_seqs == 4 for mb in summed.micro_batches(2))
