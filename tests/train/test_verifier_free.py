"""Verifier-free adaptation (issue 21): tasks without tests train under env_only with no verifier and no
reward, the clean-tool-call filter feeds the env term, evaluation scores the tasks that have tests and says
pass@k is not available for those without; a reward-based algorithm refuses tasks without tests."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file
from train_configs import make_config, rl_config

from echo_rl.cli import main
from echo_rl.configfile import dump_config
from echo_rl.report import build_report
from echo_rl.rollout.trajectory import Trajectory, Turn, load_trajectories
from echo_rl.roles import Role
from echo_rl.rundir import RunDir
from echo_rl.tasks.corpus import export_tasks, resolve_tasks
from echo_rl.train.checkpoint import latest_checkpoint, list_checkpoints
from echo_rl.train.progress import ProgressDisplay
from echo_rl.train.stepstats import rollout_stats, step_metrics
from echo_rl.train.trainer import train


@pytest.fixture
def untested(tmp_path):
    """The training tasks (csv_lookup:0-1) as Harbor folders without tests/: no verifier."""
    tasks, _ = resolve_tasks("csv_lookup:0-1")
    stripped = [
        dataclasses.replace(
            task,
            files={path: data for path, data in task.files.items() if not path.startswith("tests/")},
            executables=frozenset(path for path in task.executables if not path.startswith("tests/")),
        )
        for task in tasks
    ]
    assert not any(task.has_tests for task in stripped)
    return export_tasks(stripped, tmp_path / "untested")


@pytest.mark.slow
def test_tasks_without_tests_train_verifier_free_and_evaluate_on_tasks_with_tests(sft_run, untested, tmp_path):
    overrides = (f"tasks.train={untested}", "train.eval_every=3", "eval.splits=[validation]", "eval.sampled=false")
    run = train(rl_config(sft_run, "env_only", *overrides), tmp_path / "run")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for record in steps:  # no reward: absent, never 0; no groups either
        assert not {"reward_mean", "pass_rate", "groups", "groups_dropped"} & set(record), record
        assert record["rollout/episodes"] == 8 and record["rollout/infra_excluded"] == 0
        assert 0 <= record["filter/rollouts_kept"] <= 1 and math.isfinite(record["update/env_loss"])
        assert record["update/lambda"] == 1.0
    assert any(r["filter/rollouts_kept"] > 0 and r["update/target_tokens"] > 0 for r in steps), "the filter kept nothing"
    print("rollouts kept per step:", [r["filter/rollouts_kept"] for r in steps])
    assert [step for step, _ in list_checkpoints(run / "checkpoints")] == [1, 2, 3]
    start = load_file(latest_checkpoint(sft_run / "checkpoints") / "model.safetensors")
    end = load_file(latest_checkpoint(run / "checkpoints") / "model.safetensors")
    assert any(not torch.equal(start[k], end[k]) for k in start)

    rollouts = [t for s in (1, 2, 3) for t in load_trajectories(run / "rollouts" / f"step-{s:06d}.jsonl")]
    assert all(t.outcome == "unverified" and t.reward is None and "verify_s" not in t.timings for t in rollouts)
    assert {t.verifier_reason for t in rollouts} == {"no tests/test.sh"}

    evals = [r for r in records if r["kind"] == "eval"]  # the validation split has tests: it is scored
    assert [r["step"] for r in evals] == [0, 3]
    assert all(0 <= r["validation/greedy/pass@1"] <= 1 and "validation/greedy/unverified" not in r for r in evals)
    report = build_report([run], tmp_path / "report").read_text()
    assert "rollouts kept by the env filter" in report and "(env_only)" in report


@pytest.mark.parametrize("algorithm", ["grpo", "echo"])
def test_a_task_without_tests_under_a_reward_based_algorithm_is_one_line(algorithm, untested, tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(dump_config(make_config(f"objective.algorithm={algorithm}", f"tasks.train={untested}")))
    out = tmp_path / "out"
    code = main(["train", str(config), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("echo-rl: error: "), err
    assert "task csv_lookup-0" in err and "tests/test.sh" in err and f"objective.algorithm={algorithm}" in err, err
    assert not out.exists()


def test_eval_on_tasks_without_tests_says_pass_at_k_is_not_available(untested, tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(dump_config(make_config()))
    out = tmp_path / "eval"
    args = [f"tasks.validation={untested}", "eval.splits=[validation]", "eval.sampled=false"]
    code = main(["eval", str(config), *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "validation/greedy: 2 tasks (2 episodes) have no tests/test.sh: pass@k is not available" in err, err
    summary = json.loads(RunDir(out).eval_result(0).read_text())["scores"]["validation"]["greedy"]
    assert summary["pass"] == {} and summary["unverified"]["tasks"] == 2 and summary["valid"] == 2
    assert summary["efficiency"]["turns_mean"] >= 1
    assert "n/a: no tests (2 tasks)" in (out / "report" / "report.md").read_text()


def _rollout(outcome: str, reward: float | None) -> Trajectory:
    turns = [Turn(action_span=(0, 1), action_text="ls", command="ls")]
    return Trajectory("t", [1, 2], [Role.ACTION, Role.ENV], [-1.0, 0.0], turns=turns, outcome=outcome, reward=reward)


def test_step_metrics_leave_reward_and_pass_rate_out_without_a_verifier():
    unverified = step_metrics(rollout_stats([_rollout("unverified", None)] * 4, 4))
    assert "reward_mean" not in unverified and "pass_rate" not in unverified
    assert unverified["episodes"] == 4 and unverified["turns_mean"] == 1
    rollouts = [_rollout("solved", 1.0), _rollout("failed", 0.0), _rollout("unverified", None)]
    mixed = step_metrics(rollout_stats(rollouts, 3))
    assert mixed["pass_rate"] == 0.5 and mixed["reward_mean"] == 0.5  # over the verified rollouts only


def test_progress_line_says_no_verifier_and_the_share_kept(capsys):
    with ProgressDisplay("run", 2) as progress:
        progress.step(1, {"kind": "train", "update/loss": 1.0, "update/env_ce": 2.0, "filter/rollouts_kept": 0.75})
        progress.step(2, {"kind": "train", "update/loss": 1.0, "rollout/reward_mean": 0.5, "rollout/pass_rate": 0.25,
                          "update/env_ce": 2.0})
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert "no verifier" in lines[0] and "kept 75%" in lines[0] and "reward" not in lines[0]
    assert "reward 0.500" in lines[1] and "pass 25.0%" in lines[1] and "kept" not in lines[1]
