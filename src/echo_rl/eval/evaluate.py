"""Evaluate a policy: pass@k per split, mode and family, held-out env CE, efficiency.

    evaluator = Evaluator(cfg, policy, chat, splits, label=..., ctx=ctx, env_ce=(model, transcripts, path))
    result = evaluator.run(step, run_dir)          # see echo_rl.eval.results for the shape

Modes: ``sampled`` — ``eval.samples_per_task`` episodes per task at ``sampling.eval_temperature``;
``greedy`` — one episode per task at temperature 0. Each rank runs its share of the tasks; the episodes
are gathered so every rank returns the same result, and rank 0 writes it (with the episodes, under
``rollouts/eval-step-N-<split>-<mode>.jsonl``). The sampler is reseeded from (seed, step) first, so an
evaluation is reproducible and independent of what ran before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from echo_rl.config import RunConfig
from echo_rl.eval.heldout import heldout_env_ce
from echo_rl.eval.results import write_result
from echo_rl.eval.summary import summarize_episodes
from echo_rl.harness.chat import ChatFormat
from echo_rl.rollout.episode import EpisodeRunner, group_requests, run_episodes
from echo_rl.rollout.policy.base import Policy
from echo_rl.rollout.trajectory import Trajectory, save_trajectories
from echo_rl.rundir import RunDir
from echo_rl.tasks.task import Task
from echo_rl.train.distributed import DistContext, gather_lists, shard
from echo_rl.train.policy_sync import reseed
from echo_rl.train.seeding import derive_seed


@dataclass
class EnvCESet:
    """The model scored and the fixed off-policy transcripts it is scored on."""

    model: torch.nn.Module
    transcripts: Sequence[Trajectory]
    path: Path
    pad_id: int


class Evaluator:
    def __init__(
        self, cfg: RunConfig, policy: Policy, chat: ChatFormat, splits: dict[str, list[Task]], *,
        label: str, ctx: DistContext, env_ce: EnvCESet | None = None,
    ) -> None:
        self.cfg = cfg
        self.policy = policy
        self.chat = chat
        cap = cfg.eval.max_tasks
        self.splits = {name: tasks[:cap] for name, tasks in splits.items() if name in cfg.eval.splits and tasks}
        self.label = label
        self.ctx = ctx
        self.env_ce = env_ce

    def modes(self) -> list[tuple[str, float, int]]:
        """(name, temperature, samples per task) of each configured decoding mode."""
        ev = self.cfg.eval
        modes = [("sampled", self.cfg.sampling.eval_temperature, ev.samples_per_task)] if ev.sampled else []
        return modes + ([("greedy", 0.0, 1)] if ev.greedy else [])

    def episodes(self, tasks: Sequence[Task], split: str, temperature: float, n: int, step: int) -> list[Trajectory]:
        """``n`` episodes of every task of ``tasks`` (this rank's share run here), gathered in task order."""
        runner = EpisodeRunner(
            self.policy, self.chat, self.cfg, temperature=temperature, label=self.label, split=split, policy_step=step
        )
        return gather_lists(run_episodes(runner, group_requests(shard(tasks, self.ctx), n)), self.ctx)

    def run(self, step: int, run: RunDir | None = None) -> dict[str, Any]:
        """Evaluate at ``step``; write the result and the episodes into ``run`` on rank 0."""
        scores: dict[str, dict[str, Any]] = {}
        for split, tasks in self.splits.items():
            for mode, temperature, n in self.modes():
                reseed(self.policy, derive_seed(self.cfg.seed, "eval", step, split, mode, self.ctx.rank))
                episodes = self.episodes(tasks, split, temperature, n, step)
                ks = [k for k in self.cfg.eval.ks if k <= n] or [1]
                scores.setdefault(split, {})[mode] = summarize_episodes(
                    episodes, ks, self.cfg.eval.confidence, self.cfg.eval.bootstrap_samples
                )
                if run is not None and self.ctx.is_main:
                    save_trajectories(run.rollouts / f"eval-step-{step:06d}-{split}-{mode}.jsonl", episodes)
        result: dict[str, Any] = {"step": step, "scores": scores, "env_ce": None}
        if self.env_ce is not None:
            ce = self.env_ce
            result["env_ce"] = heldout_env_ce(ce.model, ce.transcripts, self.cfg, ce.pad_id, self.ctx, ce.path)
        if run is not None and self.ctx.is_main:
            write_result(run, result)
        return result
