"""Configs of the training tests: a tiny Qwen3 on two generated ``csv_lookup`` tasks (train and validation)
and two ``cron_edit`` tasks (held-out family).

The plain action format keeps actions ~17 tokens, so 30 SFT steps give a policy that solves the train tasks
sometimes at temperature 0.8 (mixed groups: GRPO has a signal). Every episode samples from its own seeded
stream, so the same tokens come out at any ``sandbox.pool_size``; 1 runs one episode at a time, so that
the log-probs too are computed in batches of the same composition, bit for bit (the resume test compares
metrics exactly).
"""

from __future__ import annotations

from pathlib import Path

from echo_rl.config import RunConfig
from echo_rl.configfile import apply_override, config_from_dict

BASE = {
    "name": "t",
    "seed": 0,
    "policy": {"model": "tiny", "threads": 1},
    "tasks": {"train": "csv_lookup:0-1", "validation": "csv_lookup:0-1", "heldout": "cron_edit:0-1"},
    "harness": {"action_format": "plain", "require_think": False},
    "train": {"steps": 3, "tasks_per_step": 2, "rollouts_per_task": 4, "micro_batch_size": 4, "eval_every": 0,
              "save_every": 1, "save_transcripts": 8, "sft_epochs": 30, "sft_batch_size": 2},
    "eval": {"samples_per_task": 2, "heldout_transcript_tasks": 2, "splits": ["validation", "heldout"]},
    "optim": {"lr": 5.0e-4, "warmup_steps": 0, "grad_clip": 1.0},
    "episode": {"max_turns": 3, "max_context_tokens": 1024, "max_turn_tokens": 32},
    "sandbox": {"command_timeout_s": 10, "retry_backoff_s": 0.1, "pool_size": 1},
    "logging": {"progress": False, "tensorboard": False},
}


def make_config(*overrides: str) -> RunConfig:
    """:data:`BASE` with ``key.sub=value`` overrides."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in BASE.items()}
    for override in overrides:
        apply_override(data, override)
    return config_from_dict(data)


def rl_config(sft_run: Path, algorithm: str, *overrides: str) -> RunConfig:
    """The 3-step RL config of ``algorithm`` starting from the SFT run's latest checkpoint."""
    return make_config(f"policy.model={sft_run}", f"objective.algorithm={algorithm}", f"name={algorithm}", *overrides)
