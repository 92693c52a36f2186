"""Held-out env-token cross-entropy on a FIXED set of off-policy transcripts (method §6).

The transcripts come from ``eval.heldout_transcripts``: a file of any agent's episodes — the paper's "different,
stronger policy" — as ``echo-rl rollout run`` writes them or as text (:mod:`echo_rl.rollout.transcript_file`).
When the file does not exist, the reference solver's transcripts (the tasks' reference solutions replayed in
the sandbox) are written there once; every run naming the same file is measured on the very same tokens.
Token ids made with another tokenizer are refused (one-line UserError). With no transcript at all (no task
has a replayable reference) the evaluation runs without env CE and says why.

The score is Σ −log p(x_t | x_<t) over the terminal-output (ENV) tokens of all transcripts divided by
their number, at temperature 1 (:func:`echo_rl.objective.env_cross_entropy`); the same over the copyable
tokens alone (:mod:`echo_rl.eval.copyable`: content the transcript already showed) says whether the model
reads its context: one that copies pays far less there than on all tokens, one that does not about as much.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from echo_rl.objective.batch import collate
from echo_rl.config import RunConfig
from echo_rl.eval.copyable import copyable_masks
from echo_rl.eval.results import EnvCE
from echo_rl.harness.chat import ChatFormat
from echo_rl.objective import env_cross_entropy
from echo_rl.rollout.expert import record_expert_transcripts
from echo_rl.rollout.trajectory import Trajectory, save_trajectories
from echo_rl.rollout.transcript_file import load_transcript_file, stamp_tokenizer
from echo_rl.tasks.task import Task
from echo_rl.distributed import DistContext, all_reduce_sum, shard

log = logging.getLogger(__name__)


def load_or_record(
    path: Path, tasks: Sequence[Task], chat: ChatFormat, cfg: RunConfig, label: str, *,
    known: Sequence[Task] = (), record: bool = True,
) -> tuple[list[Trajectory], str | None]:
    """The transcripts in ``path`` (:func:`~echo_rl.rollout.transcript_file.load_transcript_file`: echo-rl
    trajectories or the text of any agent's episodes; instructions looked up among ``known``), and None.
    When the file does not exist and ``record`` is set, the reference solutions of (at most
    ``eval.heldout_transcript_tasks`` of) ``tasks`` are replayed and written there first; tasks without a
    replayable reference are skipped with a warning. When nothing could be recorded: ``([], reason)``."""
    if not path.is_file():
        if not record:
            return [], "no held-out transcript was recorded (see the main process's warnings)"
        recording = asyncio.run(record_expert_transcripts(list(tasks)[: cfg.eval.heldout_transcript_tasks], chat,
                                                          cfg, label=label))
        for skipped in recording.skipped:
            log.warning("held-out env CE: skipped %s", skipped)
        if not recording.transcripts:
            why = "; ".join(recording.skipped[:2]) or "no held-out or validation task"
            return [], f"no reference transcript could be recorded ({len(recording.skipped)} skipped: {why})"
        stamp_tokenizer(recording.transcripts, chat)
        save_trajectories(path, recording.transcripts)
    return load_transcript_file(path, chat, [*known, *tasks], cfg), None


def heldout_env_ce(
    model: torch.nn.Module, transcripts: Sequence[Trajectory], cfg: RunConfig, pad_id: int, ctx: DistContext, path: Path
) -> EnvCE:
    """Nats/token at τ = 1 over ``transcripts`` (with the model's output vocabulary size, for the uniform
    guess ln|V|), and over their copyable tokens (:mod:`echo_rl.eval.copyable`, found over the whole set),
    each rank scoring its share in micro-batches of ``train.micro_batch_size``."""
    copyable = shard(copyable_masks(transcripts), ctx)
    mine = shard(transcripts, ctx)
    sums = [0.0] * 4  # env nll, env tokens, copyable nll, copyable tokens
    size = cfg.train.micro_batch_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for start in range(0, len(mine), size):
        chunk = mine[start : start + size]
        batch = collate(chunk, [0.0] * len(chunk), cfg.objective, pad_id, temperature=1.0).to(device)
        mask = torch.zeros_like(batch.env_mask)
        for row, flags in enumerate(copyable[start : start + size]):
            mask[row, : len(flags)] = torch.tensor(flags, dtype=torch.bool)
        scores = env_cross_entropy(model, batch, cfg.objective.logprob_chunk_size, {"copyable": mask & batch.env_mask})
        sums = [a + scores[key] for a, key in zip(sums, ("env_nll_sum", "env_tokens", "copyable_nll_sum",
                                                         "copyable_tokens"))]
    model.train(was_training)
    nll, tokens, copy_nll, copy_tokens = all_reduce_sum(sums, ctx)
    vocab = model.get_output_embeddings().out_features if hasattr(model, "get_output_embeddings") else None
    return EnvCE(nll / max(tokens, 1.0), int(tokens), len(transcripts), str(path), vocab,
                 copy_nll / copy_tokens if copy_tokens else None, int(copy_tokens))
