"""``configs/paper.yaml`` is the paper's recipe for real (issue 16 item 9): FSDP2, bf16 compute over fp32
master weights, activation checkpointing. One step of it on the tiny model (what must shrink: model, tasks,
batch, episode limits), on 2 CPU ranks under torchrun. The tiny model is the training tests' SFT checkpoint
of it, so that its episodes run commands and the env term has targets (the untrained one never does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from echo_rl.configfile import load_config
from echo_rl.rundir import RunDir
from echo_rl.train.checkpoint import latest_checkpoint

PAPER = Path(__file__).parents[2] / "configs" / "paper.yaml"
SHRINK = ("policy.threads=1", "tasks.corpus=null", "tasks.train=csv_lookup:0-1",
          "harness.action_format=plain", "harness.require_think=false", "train.steps=1", "train.tasks_per_step=2",
          "train.rollouts_per_task=2", "train.micro_batch_size=1", "train.eval_every=0", "train.save_transcripts=0",
          "episode.max_turns=2", "episode.max_turn_tokens=24", "episode.max_context_tokens=1024",
          "sandbox.pool_size=1", "logging.progress=false", "logging.tensorboard=false")


def test_the_paper_config_is_fsdp2_bf16_compute_with_checkpointing():
    cfg = load_config(PAPER)
    assert (cfg.parallel.mode, cfg.parallel.activation_checkpointing, cfg.policy.dtype) == ("fsdp2", True, "bfloat16")
    assert (cfg.optim.lr, cfg.train.tasks_per_step, cfg.train.rollouts_per_task) == (1e-6, 16, 16)


@pytest.mark.slow
def test_one_step_of_the_paper_recipe_on_the_tiny_model_under_torchrun(tmp_path, sft_run):
    out = tmp_path / "paper"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "echo_rl",
         "train", str(PAPER), f"policy.model={sft_run}", *SHRINK, "--out", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [record] = [r for r in RunDir(out).read_metrics() if r["kind"] == "train"]
    assert record["rollout/episodes"] == 4 and record["update/grad_norm"] > 0
    saved = load_file(latest_checkpoint(out / "checkpoints") / "model.safetensors")
    start = load_file(latest_checkpoint(sft_run / "checkpoints") / "model.safetensors")
    assert all(value.dtype == torch.float32 for value in saved.values()), "the fp32 master weights are saved"
    # at lr 1e-6 / 21 (warm-up) every matrix moves in fp32; bf16 weights would not have moved at all
    frozen = [name for name, value in start.items() if value.ndim == 2 and torch.equal(value, saved[name])]
    assert not frozen, frozen
