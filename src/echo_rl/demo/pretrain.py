"""Stage 1b of the demo: language-model pre-training of the fresh tiny model on recorded shell sessions.

    stats = pretrain(cfg, root, sessions_file, n_sessions, log)     # ROOT/model-raw → ROOT/model-init

The loop is :func:`echo_rl.train.sft.sft` with ``train.sft_targets=all`` (every token of every
session: prompt, chat template, commands, outputs) on ``ROOT/sessions.jsonl``
(:mod:`echo_rl.tasks.sessions`, replayed in the sandbox by :mod:`echo_rl.demo.prepare`), for
``pretrain.steps`` steps of ``pretrain.batch_size`` sessions, one checkpoint at the end. Its weights become
``ROOT/model-init``, the model SFT starts from. Its two evaluations, before and after, run no episode: they
measure the held-out env CE (``ROOT/env-ce-heldout.jsonl``, the reference transcripts of the held-out
families, at τ = 1), into the stats.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.demo.config import DemoConfig, stage_run


def pretrain_config(cfg: DemoConfig, root: Path, sessions_file: Path, n_sessions: int) -> RunConfig:
    """The RunConfig of the pre-training run: an all-token SFT over ``sessions_file``, held-out env CE (no
    episodes) before and after, and a checkpoint only at the end."""
    spec = cfg.pretrain
    return stage_run(cfg, "pretrain", spec, spec.steps, n_sessions, root / "model-raw", root / "corpus", {
        "sft_env_loss_weight": 0.0, "sft_targets": "all", "sft_transcripts": str(sessions_file),
        "eval_every": spec.steps, "save_every": 0,
    }, {"splits": [], "heldout_transcripts": str(root / "env-ce-heldout.jsonl")})


def pretrain(cfg: DemoConfig, root: Path, sessions_file: Path, n_sessions: int, log: Callable[[str], None]
             ) -> dict[str, Any]:
    """Pre-train ``root/model-raw`` on ``sessions_file`` (module docstring) into ``root/model-init``; return
    the steps, seconds, final loss and held-out env CE before and after."""
    from echo_rl.eval.results import read_results
    from echo_rl.models.load import load_policy_model, save_checkpoint
    from echo_rl.rundir import RunDir, read_jsonl
    from echo_rl.train.checkpoint import list_checkpoints
    from echo_rl.train.sft import sft

    out = root / "pretrain"
    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.monotonic(), time.process_time()
    sft(pretrain_config(cfg, root, sessions_file, n_sessions), out)
    seconds, cpu = time.monotonic() - start, time.process_time() - cpu
    step, checkpoint = list_checkpoints(out / "checkpoints")[-1]
    save_checkpoint(root / "model-init", *load_policy_model(str(checkpoint)))
    shutil.rmtree(out / "checkpoints")
    results = read_results(RunDir(out))  # at step 0 and at the last: held-out env CE only, no episodes
    before, after = (r.env_ce for r in (results[0], results[-1]))
    last = next((r for r in reversed(read_jsonl(out / "metrics.jsonl")) if r.get("kind") == "sft"), {})
    stats = {"steps": step, "sessions": n_sessions, "seconds": seconds, "cpu_s": cpu, "loss": last.get("update/loss"),
             "env_ce_train": last.get("update/env_ce"),
             "env_ce_heldout_before": before.value if before else None,
             "env_ce_heldout_after": after.value if after else None,
             "env_ce_heldout_copyable_before": before.copyable if before else None,
             "env_ce_heldout_copyable_after": after.copyable if after else None}
    log(f"pre-training: {step} steps on {n_sessions} shell sessions (all tokens) in {seconds:.1f} s "
        f"({cpu:.0f} CPU-s); loss {stats['loss']:.2f}; held-out env CE {_fmt(stats['env_ce_heldout_before'])} -> "
        f"{_fmt(stats['env_ce_heldout_after'])} nats/token (copyable tokens "
        f"{_fmt(stats['env_ce_heldout_copyable_before'])} -> {_fmt(stats['env_ce_heldout_copyable_after'])})")
    return stats


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
