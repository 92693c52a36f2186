"""Evaluate a policy: pass@k per split, mode and family, held-out env CE, efficiency.

    evaluator = Evaluator(cfg, policy, chat, splits, label=..., ctx=ctx, env_ce=EnvCESet(...))
    result = evaluator.run(step, run_dir)          # see echo_rl.eval.results for the shape

Modes: ``sampled`` — ``eval.samples_per_task`` episodes per task at ``sampling.eval_temperature``;
``greedy`` — one episode per task at temperature 0. Each rank runs its share of the tasks; the episodes
are gathered so every rank returns the same result, and rank 0 writes it (with the episodes, under
``rollouts/eval-step-N-<split>-<mode>.jsonl``). Every episode samples from its own random stream, seeded
from (seed, split, mode, task, sample index) and the same at every step (common random numbers
across checkpoints), so an evaluation is reproducible, independent of what ran before it, of how many
episodes run at once and of the number of ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
import torch

from echo_rl.config import RunConfig
from echo_rl.eval.heldout import heldout_env_ce
from echo_rl.eval.results import EnvCE, EvalResult, Summary, write_result
from echo_rl.eval.summary import summarize_episodes
from echo_rl.harness.chat import ChatFormat
from echo_rl.rollout.episode import EpisodeRunner, group_requests, run_episodes
from echo_rl.rollout.policy.base import Policy
from echo_rl.rollout.trajectory import Trajectory, save_trajectories
from echo_rl.rundir import RunDir
from echo_rl.seeding import derive_seed
from echo_rl.tasks.task import Task
from echo_rl.distributed import DistContext, gather_lists, shard


@dataclass
class EnvCESet:
    """The model scored and the fixed off-policy transcripts it is scored on; with no transcripts,
    ``skipped`` says why (reported as ``env_ce_skipped``)."""

    model: torch.nn.Module
    transcripts: Sequence[Trajectory]
    path: Path
    pad_id: int
    skipped: str | None = None


class Evaluator:
    def __init__(
        self, cfg: RunConfig, policy: Policy, chat: ChatFormat, splits: dict[str, list[Task]], *,
        label: str, ctx: DistContext, env_ce: EnvCESet | None = None, env_ce_validation: EnvCESet | None = None,
    ) -> None:
        """``env_ce``: the held-out env CE's set (``result.env_ce``); ``env_ce_validation``: a second one, of
        unseen tasks of the training families (``result.env_ce_validation``)."""
        self.cfg = cfg
        self.policy = policy
        self.chat = chat
        cap = cfg.eval.max_tasks
        self.splits = {name: tasks[:cap] for name, tasks in splits.items() if name in cfg.eval.splits and tasks}
        self.label = label
        self.ctx = ctx
        self.env_ce = env_ce
        self.env_ce_validation = env_ce_validation

    def modes(self) -> list[tuple[str, float, int]]:
        """(name, temperature, samples per task) of each configured decoding mode."""
        ev = self.cfg.eval
        modes = [("sampled", self.cfg.sampling.eval_temperature, ev.samples_per_task)] if ev.sampled else []
        return modes + ([("greedy", 0.0, 1)] if ev.greedy else [])

    def score(self, ce: EnvCESet) -> EnvCE:
        """Env CE (nats/token, τ = 1) of ``ce.model`` on ``ce.transcripts``."""
        return heldout_env_ce(ce.model, ce.transcripts, self.cfg, ce.pad_id, self.ctx, ce.path)

    def episodes(
        self, tasks: Sequence[Task], split: str, temperature: float, n: int, step: int, seed: int
    ) -> list[Trajectory]:
        """``n`` episodes of every task of ``tasks`` (this rank's share run here; each episode's random stream
        seeded from ``seed``, its task and its index), gathered."""
        runner = EpisodeRunner(
            self.policy, self.chat, self.cfg, temperature=temperature, label=self.label, split=split, policy_step=step
        )
        requests = shard(group_requests(tasks, n, seed=seed), self.ctx, chunk=n)
        return gather_lists(run_episodes(runner, requests), self.ctx)

    def run(self, step: int, run: RunDir | None = None) -> EvalResult:
        """Evaluate at ``step``; write the result and the episodes into ``run`` on rank 0."""
        scores: dict[str, dict[str, Summary]] = {}
        for split, tasks in self.splits.items():
            for mode, temperature, n in self.modes():
                seed = derive_seed(self.cfg.seed, "eval", split, mode)  # the same draws at every step
                episodes = self.episodes(tasks, split, temperature, n, step, seed)
                ks = [k for k in self.cfg.eval.ks if k <= n] or [1]
                scores.setdefault(split, {})[mode] = summarize_episodes(
                    episodes, ks, self.cfg.eval.confidence, self.cfg.eval.bootstrap_samples
                )
                if run is not None and self.ctx.is_main:
                    save_trajectories(run.rollouts / f"eval-step-{step:06d}-{split}-{mode}.jsonl", episodes)
        result = EvalResult(step, scores)
        ce = self.env_ce
        if ce is not None and ce.transcripts:
            result.env_ce = self.score(ce)
        elif ce is not None:
            result.env_ce_skipped = ce.skipped
        if self.env_ce_validation is not None and self.env_ce_validation.transcripts:
            result.env_ce_validation = self.score(self.env_ce_validation)
        if run is not None and self.ctx.is_main:
            write_result(run, result)
        return result
