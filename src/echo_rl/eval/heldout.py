"""Held-out env-token cross-entropy on a FIXED set of off-policy transcripts (method §6).

The transcripts are the reference solver's (expert transcripts recorded in the sandbox from the tasks'
reference solutions), written once to a file and reused by every run that names the same file, so GRPO
and ECHO are measured on the very same tokens. Each transcript carries the fingerprint of the tokenizer
that produced its ids; a file made with another tokenizer is refused (one-line UserError).

The score is Σ −log p(x_t | x_<t) over the terminal-output (ENV) tokens of all transcripts divided by
their number, at temperature 1 (:func:`echo_rl.objective.env_cross_entropy`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from echo_rl.batch import collate
from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.harness.chat import ChatFormat
from echo_rl.objective import env_cross_entropy
from echo_rl.rollout.expert import record_expert_transcripts
from echo_rl.rollout.trajectory import Trajectory, load_trajectories, save_trajectories
from echo_rl.tasks.task import Task
from echo_rl.train.distributed import DistContext, all_reduce_sum, shard


def tokenizer_fingerprint(chat: ChatFormat) -> str:
    """A hash of the tokenizer's vocabulary and merges and of the chat template."""
    tokenizer = chat.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256((text + str(tokenizer.chat_template)).encode()).hexdigest()[:16]


def load_or_record(path: Path, tasks: Sequence[Task], chat: ChatFormat, cfg: RunConfig, label: str) -> list[Trajectory]:
    """The transcripts in ``path``; when the file does not exist, record them first from the reference
    solutions of (at most ``eval.heldout_transcript_tasks`` of) ``tasks`` and write the file."""
    fingerprint = tokenizer_fingerprint(chat)
    if not path.is_file():
        chosen = list(tasks)[: cfg.eval.heldout_transcript_tasks]
        recorded = asyncio.run(record_expert_transcripts(chosen, chat, cfg, label=label))
        for transcript in recorded:
            transcript.meta["tokenizer"] = fingerprint
        if not recorded:
            raise UserError("no reference transcript could be recorded for held-out env CE", where=str(path))
        save_trajectories(path, recorded)
    transcripts = load_trajectories(path)
    if any(t.meta.get("tokenizer") != fingerprint for t in transcripts):
        raise UserError("held-out transcripts were made with another tokenizer; give a new file", where=str(path))
    return transcripts


def heldout_env_ce(
    model: torch.nn.Module, transcripts: Sequence[Trajectory], cfg: RunConfig, pad_id: int, ctx: DistContext, path: Path
) -> dict[str, Any]:
    """``{"value": nats/token, "tokens": n, "transcripts": m, "file": path}`` at τ = 1, each rank scoring
    its share in micro-batches of ``train.micro_batch_size``."""
    mine = shard(transcripts, ctx)
    nll = tokens = 0.0
    size = cfg.train.micro_batch_size
    was_training = model.training
    model.eval()
    for start in range(0, len(mine), size):
        chunk = mine[start : start + size]
        batch = collate(chunk, [0.0] * len(chunk), cfg.objective, pad_id, 1.0).to(next(model.parameters()).device)
        scores = env_cross_entropy(model, batch, cfg.objective.logprob_chunk_size)
        nll, tokens = nll + scores["env_nll_sum"], tokens + scores["env_tokens"]
    model.train(was_training)
    nll, tokens = all_reduce_sum([nll, tokens], ctx)
    return {"value": nll / max(tokens, 1.0), "tokens": int(tokens), "transcripts": len(transcripts), "file": str(path)}
