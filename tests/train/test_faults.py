"""Engine faults are excluded, counted and reported — never scored (issue 10, item 1).

The fault is real: a copy of a task whose environment set-up exits 1 (what an image that fails to build
does), so every sandbox for it fails to come up and the episode ends as ``infra_error`` after its retries.
A 1-step run with evaluation on {good, broken} must score exactly as a fault-free run on {good} alone,
with the excluded episodes counted and their reason given beside the scores.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from train_configs import rl_config

from echo_rl.rundir import RunDir
from echo_rl.tasks.corpus import export_tasks, resolve_tasks
from echo_rl.tasks.task import SETUP_SCRIPT
from echo_rl.train.trainer import train

COMPARED = ("update/loss", "update/policy_loss", "update/env_loss", "update/env_ce", "update/grad_norm",
            "rollout/reward_mean", "rollout/pass_rate", "episodes_valid")


def _run(sft_run, tasks_dir, out, tasks_per_step):
    overrides = (f"tasks.train={tasks_dir}", f"tasks.validation={tasks_dir}", "train.steps=1", "train.eval_every=1",
                 f"train.tasks_per_step={tasks_per_step}", "eval.splits=[validation]", "eval.sampled=false",
                 "sandbox.infra_retries=1")
    records = RunDir(train(rl_config(sft_run, "echo", *overrides), out)).read_metrics()
    step = next(r for r in records if r["kind"] == "train")
    step["episodes_valid"] = step["rollout/episodes"] - step["rollout/infra_excluded"]
    final = RunDir(out).eval_result(1).read_text()
    return step, final


def test_injected_engine_faults_are_excluded_and_scores_match_a_fault_free_run(sft_run, tmp_path):
    good = resolve_tasks("csv_lookup:0")[0][0]
    broken = dataclasses.replace(
        good, name="csv_lookup-broken", files={**good.files, SETUP_SCRIPT: b"echo 'engine: image build failed' >&2\nexit 1\n"}
    )
    faulty_step, faulty_eval = _run(sft_run, export_tasks([good, broken], tmp_path / "faulty"), tmp_path / "a", 2)
    clean_step, clean_eval = _run(sft_run, export_tasks([good], tmp_path / "clean"), tmp_path / "b", 1)

    assert faulty_step["rollout/infra_excluded"] == 4 and faulty_step["advantage/groups_dropped"] == 1
    (reason, count), = faulty_step["rollout/infra_reasons"].items()
    assert count == 4 and "setup.sh failed" in reason
    assert clean_step["rollout/infra_excluded"] == 0 and clean_step["advantage/groups_dropped"] == 0
    for key in COMPARED:
        assert faulty_step[key] == pytest.approx(clean_step[key], rel=1e-5, abs=1e-7), key

    faulty, clean = (json.loads(text)["scores"]["validation"]["greedy"] for text in (faulty_eval, clean_eval))
    assert faulty["pass"] == clean["pass"]
    assert faulty["infra"]["excluded"] == 1 and "setup.sh failed" in next(iter(faulty["infra"]["reasons"]))
    assert faulty["valid"] == clean["valid"] == 1
    print(f"faulty run: {faulty_step['rollout/infra_excluded']} rollouts excluded ({reason}); "
          f"pass@1 {faulty['pass']['1']['value']} == fault-free {clean['pass']['1']['value']}")
