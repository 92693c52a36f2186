"""The typed evaluation result reads the files main's code wrote (``eval/step-N.json``) and writes the same
layout back; the one pass@1 rule (sampled when evaluated, else greedy)."""

import json
from pathlib import Path

import pytest

from echo_rl.eval.results import EvalResult, read_results, write_result
from echo_rl.eval.summary import summarize_episodes
from echo_rl.rollout.trajectory import Trajectory, Turn
from echo_rl.roles import Role
from echo_rl.rundir import RunDir

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "step-000007-main.json"


def _without_tasks(data):
    """``data`` without the summaries' per-task counts (added since; empty for an old file)."""
    if isinstance(data, dict):
        return {k: _without_tasks(v) for k, v in data.items() if not (k == "tasks" and "valid" in data)}
    return data


def test_a_file_written_before_the_typed_result_round_trips():
    on_disk = json.loads(LEGACY.read_text())
    result = EvalResult.from_json(on_disk)
    sampled = result.summary("validation", "sampled")
    assert result.step == 7 and sampled.infra.excluded == 1 and sampled.unverified.tasks == 1
    assert sampled.pass_at(1).value == pytest.approx(0.25) and sampled.pass_at(2).short_tasks == 1
    assert sampled.families["copy"].pass_at(1).value == pytest.approx(0.5) and sampled.tasks == {}  # not recorded then
    assert sampled.efficiency.turn_limit_rate == pytest.approx(0.25)
    assert result.env_ce.value == 2.5 and result.env_ce.vocab_size is None
    assert result.env_ce_validation.transcripts == 2 and result.extra == {"checkpoint": "ckpt/step-000007", "eval_s": 3.25}
    assert _without_tasks(result.to_json()) == on_disk  # the layout users read is kept, key for key


def test_the_pass1_rule_prefers_sampled_then_greedy():
    result = EvalResult.from_json(json.loads(LEGACY.read_text()))
    assert result.headline("validation")[0] == "sampled" and result.pass1("validation") == pytest.approx(0.25)
    assert result.headline("heldout")[0] == "greedy" and result.pass1("heldout") == pytest.approx(1.0)
    assert result.pass1("test") is None and result.headline("test") is None


def _episode(task, outcome):
    return Trajectory(task_id=task, token_ids=[1, 2], roles=[Role.PROMPT, Role.ACTION], logprobs=[0.0, -1.0],
                      turns=[Turn(action_span=(1, 2), action_text="x", command="ls")], outcome=outcome, family="f")


def test_a_new_result_round_trips_through_the_run_directory(tmp_path):
    summary = summarize_episodes([_episode("a", "solved"), _episode("a", "failed"), _episode("b", "failed")], [1])
    result = EvalResult(3, {"test": {"sampled": summary}})
    run = RunDir.create(tmp_path / "run")
    write_result(run, result)
    (again,) = read_results(run)
    assert again == result and again.summary("test", "sampled").tasks == {"a": (2, 1), "b": (1, 0)}
    assert json.loads(run.eval_result(3).read_text())["scores"]["test"]["sampled"]["pass"]["1"]["value"] == 0.25
    assert result.flatten()["test/sampled/pass@1"] == 0.25


def test_the_score_line_names_every_evaluated_split_and_mode_and_the_env_ce():
    line = EvalResult.from_json(json.loads(LEGACY.read_text())).score_line()
    assert line.startswith("validation/sampled 25.0%") and "heldout/greedy 100.0%" in line
    assert line.endswith("held-out env CE 2.500")
