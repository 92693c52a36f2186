"""The update options of issue 16 in real training runs from the SFT checkpoint: bf16 compute, the KL to
the frozen starting policy, 2 mini-batches × 2 epochs, GSPO ratios, the overlong filter and dynamic
sampling with refill; a run killed after step 1 and resumed ends on the uninterrupted run's records."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from train_configs import rl_config

from echo_rl.rundir import RunDir
from echo_rl.train.checkpoint import latest_checkpoint
from echo_rl.train.trainer import refill_keep, train

OPTIONS = ("policy.dtype=bfloat16", "objective.kl_coef=0.05", "train.mini_batches=2", "train.update_epochs=2",
           "objective.ratio_level=sequence", "objective.overlong_filter=truncated",
           "objective.dynamic_sampling.enabled=true", "objective.dynamic_sampling.max_refill_draws=1",
           "train.steps=2", "name=options")
TIMING = {"time/rollout_s", "time/step_s", "time/tokens_per_s"}


def _records(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(run).read_metrics() if r["kind"] == "train"]


def test_refill_keeps_the_first_informative_groups_up_to_the_missing_number():
    assert refill_keep([False, True, False, True, True], 2) == {1, 3}
    assert refill_keep([True, True], 0) == set() and refill_keep([False, False], 3) == set()


@pytest.mark.slow  # ~60 s: three short runs
def test_a_run_with_every_update_option_trains_and_resumes_exactly(sft_run, tmp_path):
    run = train(rl_config(sft_run, "echo", *OPTIONS), tmp_path / "full")
    records = _records(run)
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert r["update/optimizer_updates"] == 4
        assert all(math.isfinite(r[f"update/{key}"]) for key in ("loss", "policy_loss", "env_loss", "grad_norm", "kl_ref"))
        assert r["rollout/refill_draws"] <= 1 and r["rollout/episodes"] == 8 + 4 * r["rollout/refill_groups"]
        print({k: r[k] for k in ("update/loss", "update/kl_ref", "update/clip_frac_low", "update/clip_frac_high",
                                 "policy/zero_signal", "policy/overlong", "rollout/refill_draws", "rollout/refill_groups")})
    assert records[0]["update/kl_ref"] > 1e-3, "the policy did not move away from the reference over 4 updates"
    start = load_file(latest_checkpoint(sft_run / "checkpoints") / "model.safetensors")
    end = load_file(latest_checkpoint(run / "checkpoints") / "model.safetensors")
    assert all(end[k].dtype == torch.float32 for k in end)
    assert any(not torch.equal(start[k], end[k]) for k in start)

    half = tmp_path / "half"
    train(rl_config(sft_run, "echo", *OPTIONS, "train.steps=1"), half)
    train(rl_config(sft_run, "echo", *OPTIONS), half, resume=True)
    assert _records(half) == records
