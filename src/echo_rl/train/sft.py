"""Expert-demonstration SFT (the paper's "expert SFT initialisation").

    run_dir = sft(cfg, Path("runs/sft"))        # or: echo-rl sft CONFIG --out runs/sft

The demonstrations are the solved transcripts of ``train.sft_transcripts`` (any agent's episodes, as
``echo-rl rollout run`` writes them or as text: :mod:`echo_rl.rollout.transcript_file`) or, without it, the
train tasks' reference solutions replayed in the sandbox (real observations,
:func:`echo_rl.rollout.expert.record_expert_transcripts`), recorded once into
``RUN/rollouts/expert-train.jsonl`` and kept when the verifier solved them. Each step takes the next
``train.sft_batch_size`` of them from the seeded sampler; the loss of a transcript s, at temperature 1, is

    L_s = (1/|M_s|) Σ_{t∈M_s} −log p(x_t | x_<t)  +  w · L_env,s        (w = train.sft_env_loss_weight)

with L_env the ECHO env term (same targets and normalisation as ``objective.env``), averaged over the
step's transcripts. M_s (``train.sft_targets``) is A_s, the action tokens (imitation, the default);
``actions+env``: A_s ∪ O_s, the observations too; ``all``: every token but the first — prompt, chat
template, actions, observations — a plain LM loss for pre-training, which also keeps every transcript
whatever its outcome (a corpus to model, not demonstrations to imitate).
With ``train.sft_rehearsal`` (a corpus, e.g. the pre-training one), each step also draws
``train.sft_rehearsal_batch_size`` (default ``train.sft_batch_size``) of its transcripts R from a second
seeded sampler and adds an LM loss over every token of them (as ``all`` above), so that imitation does not
overwrite what pre-training learnt:

    L = mean_s L_s  +  r · mean_{q∈R} (1/|q|) Σ_{t∈q} −log p(x_t | x_<t)        (r = train.sft_rehearsal_weight)

``ceil(sft_epochs · N / sft_batch_size)`` steps; evaluation and checkpoints as in
:mod:`echo_rl.train.loop` (pick the checkpoint from the validation curve: ``best`` in its state).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from echo_rl.objective.batch import Batch, collate
from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.objective import aggregate, env_term, token_logprobs
from echo_rl.objective.grpo import masked_mean
from echo_rl.rollout.expert import record_expert_transcripts
from echo_rl.rollout.trajectory import Trajectory, load_trajectories, save_trajectories
from echo_rl.rollout.transcript_file import load_transcript_file
from echo_rl.train.alarms import Alarm
from echo_rl.distributed import (
    all_reduce_sum,
    barrier,
    gather_lists,
    shard,
)
from echo_rl.train.loop import Callback, Loop, run_loop
from echo_rl.train.metrics import prefixed
from echo_rl.train.optim import clip_and_step
from echo_rl.train.parallel import accumulate_gradients, autocast_dtype
from echo_rl.train.policy_sync import make_policy
from echo_rl.train.precision import compute_autocast
from echo_rl.train.sampler import TaskSampler
from echo_rl.train.session import Session
from echo_rl.train.update import reduce_metrics

log = logging.getLogger(__name__)


def expert_demonstrations(session: Session) -> list[Trajectory]:
    """The solved transcripts of ``train.sft_transcripts`` when set (any agent's episodes, see
    :mod:`echo_rl.rollout.transcript_file`), else of the train split's reference solutions (recorded by
    rank 0 on first use into ``RUN/rollouts/expert-train.jsonl``; tasks without one are skipped, said once)."""
    cfg = session.cfg
    known = [task for tasks in session.splits.values() for task in tasks]
    if cfg.train.sft_transcripts:
        demos = load_transcript_file(cfg.train.sft_transcripts, session.chat, known, cfg)
        where = f"{cfg.train.sft_transcripts} (train.sft_transcripts)"
    else:
        path = session.run.rollouts / "expert-train.jsonl"
        if session.ctx.is_main and not path.is_file():
            recording = asyncio.run(record_expert_transcripts(session.splits["train"], session.chat, cfg,
                                                              label=session.label))
            if recording.skipped:
                log.warning("SFT: %d train tasks have no demonstration, e.g. %s", len(recording.skipped),
                            recording.skipped[0])
            save_trajectories(path, [t for t in recording.transcripts if t.outcome == "solved"])
        barrier(session.ctx)
        demos, where = load_trajectories(path), "the train tasks' reference solutions"
    demos = [t for t in demos if t.outcome == "solved" or (cfg.train.sft_targets == "all" and t.valid)]
    if not demos:
        raise UserError(f"no solved transcript in {where}: nothing to imitate")
    return demos


def rehearsal_corpus(session: Session) -> list[Trajectory]:
    """The valid transcripts of ``train.sft_rehearsal``, whatever their outcome ([] when it is unset)."""
    cfg = session.cfg
    if not cfg.train.sft_rehearsal:
        return []
    known = [task for tasks in session.splits.values() for task in tasks]
    corpus = [t for t in load_transcript_file(cfg.train.sft_rehearsal, session.chat, known, cfg) if t.valid]
    if not corpus:
        raise UserError("no valid transcript to rehearse", where=f"{cfg.train.sft_rehearsal} (train.sft_rehearsal)")
    return corpus


def sft_target_mask(batch: Batch, targets: str) -> torch.Tensor:
    """[B, T] bool: the tokens the SFT NLL covers (``train.sft_targets``, module docstring) in valid rows."""
    if targets == "actions":
        return batch.action_mask
    if targets == "actions+env":
        return batch.action_mask | batch.warning_mask | batch.env_mask
    mask = batch.attention_mask.bool() & batch.valid[:, None]
    mask[:, 0] = False  # the first token has no context to be predicted from
    return mask


class SFTTrainer(Loop):
    def __init__(self, session: Session) -> None:
        self.demos = expert_demonstrations(session)
        super().__init__(session, len(self.demos))
        cfg = session.cfg
        self.title = f"{cfg.name} (sft)"
        self.total_steps = math.ceil(cfg.train.sft_epochs * len(self.demos) / cfg.train.sft_batch_size)
        self.rehearsal = rehearsal_corpus(session)
        self.rehearsal_sampler = TaskSampler(len(self.rehearsal), cfg.seed + 1) if self.rehearsal else None
        self.restore()
        if cfg.train.eval_every:
            policy = make_policy(cfg, session.model, session.tokenizer, model_path=session.model_path)
            self.evaluator = session.evaluator(policy)

    def extra_state(self) -> dict[str, Any]:
        return {"rehearsal_sampler": self.rehearsal_sampler.state()} if self.rehearsal_sampler else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.rehearsal_sampler:
            if "rehearsal_sampler" not in state:
                raise UserError("cannot resume: the checkpoint was trained without train.sft_rehearsal")
            self.rehearsal_sampler.load_state(state["rehearsal_sampler"])

    def _logprobs(self, batch: Batch) -> torch.Tensor:
        cfg = self.s.cfg
        module = self.trained.module
        with compute_autocast(autocast_dtype(module, cfg.policy.dtype), self.s.ctx.device):
            return token_logprobs(module, batch.input_ids, batch.attention_mask, cfg.objective.logprob_chunk_size).logprobs

    def micro_loss(self, item: tuple[Batch, bool]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one micro-batch, with its metrics: of demonstrations, the NLL over the
        ``train.sft_targets`` tokens (+ weighted env term); of the rehearsal corpus, the weighted LM loss."""
        batch, rehearsed = item
        cfg = self.s.cfg
        logprobs = self._logprobs(batch)
        if rehearsed:
            mask = sft_target_mask(batch, "all").float()
            nll = aggregate(-logprobs, mask, "seq_mean", batch.n_seqs, batch.n_action_tokens, 1.0)
            return cfg.train.sft_rehearsal_weight * nll, {
                "loss": float(cfg.train.sft_rehearsal_weight * nll.detach()), "rehearsal_nll": float(nll.detach()),
                "rehearsal_tokens": float(mask.sum())}
        targets = sft_target_mask(batch, cfg.train.sft_targets).float()
        nll = aggregate(-logprobs, targets, "seq_mean", batch.n_seqs, batch.n_action_tokens, 1.0)
        env, env_metrics = env_term(logprobs, batch, cfg.objective.env)
        weight = cfg.train.sft_env_loss_weight
        loss = nll + weight * env if weight else nll
        action_nll = nll.detach() if cfg.train.sft_targets == "actions" else masked_mean(-logprobs.detach(), batch.action_mask)
        metrics = {"loss": float(loss.detach()), "action_nll": float(action_nll), "env_ce": env_metrics["env_ce"],
                   "action_tokens": float(batch.action_mask.sum()), "env_tokens": float(batch.env_mask.sum()),
                   "target_tokens": float(targets.sum())}
        return loss, metrics

    def train_step(self, step: int) -> tuple[dict[str, Any], list[Alarm]]:
        cfg, s = self.s.cfg, self.s
        start = time.monotonic()
        batch, micro = self._micro_batches(self.demos, self.sampler, cfg.train.sft_batch_size, rehearsed=False)
        if self.rehearsal_sampler:
            size = cfg.train.sft_rehearsal_batch_size or cfg.train.sft_batch_size
            micro += self._micro_batches(self.rehearsal, self.rehearsal_sampler, size, rehearsed=True)[1]
        module = self.trained.module
        module.train()
        parts = accumulate_gradients(module, micro, self.micro_loss, s.ctx)
        lr = self.scheduler.get_last_lr()[0]
        grad_norm = clip_and_step(module, self.optimizer, self.scheduler, cfg.optim.grad_clip)
        module.eval()
        self.trained.refresh()
        metrics = reduce_metrics(gather_lists(parts, s.ctx))
        elapsed = time.monotonic() - start
        targets = float(sft_target_mask(batch, cfg.train.sft_targets).sum()) + metrics.get("rehearsal_tokens", 0.0)
        record = {"kind": "sft", "step": step, **prefixed("update", metrics | {"grad_norm": grad_norm, "lr": lr}),
                  **prefixed("time", {"step_s": elapsed, "tokens_per_s": targets / max(elapsed, 1e-9)})}
        s.log(record)
        return record, []

    def _micro_batches(self, corpus: list[Trajectory], sampler: TaskSampler, size: int, rehearsed: bool
                       ) -> tuple[Batch, list[tuple[Batch, bool]]]:
        """The step's next ``size`` transcripts of ``corpus`` (this rank's share), collated with the counts
        of every rank, and its micro-batches on the device tagged ``rehearsed``."""
        cfg, s = self.s.cfg, self.s
        chosen = shard([corpus[i] for i in sampler.next(size)], s.ctx)
        batch = collate(chosen, [0.0] * len(chosen), cfg.objective, s.pad_id, temperature=1.0)
        batch = batch.with_counts(all_reduce_sum(batch.own_counts(), s.ctx))
        micro = [(mb.to(s.ctx.device), rehearsed) for mb in batch.micro_batches(cfg.train.micro_batch_size)] if chosen else []
        return batch, micro


def sft(cfg: RunConfig, out: Path, *, resume: bool = False, callbacks: Sequence[Callback] = ()) -> Path:
    """Run (or resume) SFT on expert demonstrations into ``out`` with ``callbacks``
    (:class:`echo_rl.train.loop.Callback`); return the run directory."""
    return run_loop(SFTTrainer, cfg, out, resume=resume, callbacks=callbacks)
