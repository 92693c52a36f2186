"""3-step RL runs of every algorithm on the tiny model and generated tasks (issue 7), and SFT."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from echo_rl.objective.batch import collate
from echo_rl.config import RunConfig
from echo_rl.models.load import load_policy_model
from echo_rl.objective import env_cross_entropy
from echo_rl.rollout.trajectory import load_trajectories
from echo_rl.rundir import RunDir
from echo_rl.train.checkpoint import latest_checkpoint, list_checkpoints


def _env_ce(model_path, transcripts) -> float:
    """Env-token CE (T = 1) of ``transcripts`` under the model at ``model_path``."""
    model, tokenizer = load_policy_model(str(model_path))
    batch = collate(transcripts, [0.0] * len(transcripts), RunConfig().objective, tokenizer.pad_token_id, temperature=1.0)
    return env_cross_entropy(model, batch)["env_ce"]


def test_sft_learns_the_expert_actions(sft_run):
    records = [r for r in RunDir(sft_run).read_metrics() if r["kind"] == "sft"]
    assert [r["step"] for r in records] == list(range(1, 31))
    assert records[-1]["update/loss"] < 0.25 * records[0]["update/loss"]
    demos = load_trajectories(sft_run / "rollouts" / "expert-train.jsonl")
    assert len(demos) == 2 and all(t.outcome == "solved" for t in demos)
    assert latest_checkpoint(sft_run / "checkpoints").name == "step-000030"


@pytest.mark.parametrize("algorithm", ["grpo", "echo", "env_only"])
def test_three_step_run(rl_run, sft_run, algorithm):
    run = rl_run(algorithm)
    records = [r for r in RunDir(run).read_metrics() if r["kind"] == "train"]
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        assert all(math.isfinite(record[f"update/{key}"]) for key in ("loss", "policy_loss", "env_loss", "grad_norm"))
        assert record["rollout/episodes"] == 8 and record["rollout/infra_excluded"] == 0
        # the tokens trained on and the tokens sampled: two names, both kept (all rollouts valid: equal)
        assert record["update/action_tokens"] == record["rollout/action_tokens"] > 0
    if algorithm == "env_only":  # verifier-free: no reward, no groups; the clean-call filter's share kept
        assert all("advantage/groups" not in r and "rollout/reward_mean" not in r for r in records)
        assert all(0 <= r["filter/rollouts_kept"] <= 1 for r in records)
    else:
        assert any(r["advantage/groups_zero_advantage"] < r["advantage/groups"] for r in records), "no GRPO signal"
    start = load_file(latest_checkpoint(sft_run / "checkpoints") / "model.safetensors")
    end = load_file(latest_checkpoint(run / "checkpoints") / "model.safetensors")
    assert any(not torch.equal(start[k], end[k]) for k in start)
    assert [step for step, _ in list_checkpoints(run / "checkpoints")] == [1, 2, 3]

    if algorithm == "grpo":
        assert all(r["update/lambda"] == 0.0 and r["update/env_loss_scaled"] == 0.0 for r in records)


def _relative_env_ce_drop(run, sft_run) -> float:
    """(before − after) / before of the env CE (T = 1) on the transcripts the run trained on."""
    trained_on = [t for step in (1, 2, 3) for t in load_trajectories(run / "rollouts" / f"step-{step:06d}.jsonl")]
    before = _env_ce(latest_checkpoint(sft_run / "checkpoints"), trained_on)
    after = _env_ce(latest_checkpoint(run / "checkpoints"), trained_on)
    print(f"{run.parent.name}: env CE on its trained transcripts {before:.3f} -> {after:.3f}")
    return (before - after) / before


def test_env_ce_on_trained_transcripts_falls_under_echo_and_env_only_not_under_grpo(rl_run, sft_run):
    """GRPO (λ = 0) moves env CE only through the shared weights its action gradient changes; the env
    term of ECHO and env-only lowers it several times more over the same 3 steps."""
    drops = {algorithm: _relative_env_ce_drop(rl_run(algorithm), sft_run) for algorithm in ("grpo", "echo", "env_only")}
    assert drops["echo"] > 0.1 and drops["env_only"] > 0.1
    assert drops["grpo"] < 0.5 * min(drops["echo"], drops["env_only"])
