"""The RL loop: GRPO, ECHO or env-only (``objective.algorithm``) on terminal tasks.

    run_dir = train(cfg, Path("runs/echo"))                 # or: echo-rl train CONFIG --out runs/echo
    run_dir = train(cfg, Path("runs/echo"), resume=True)    # continue a killed run from its last checkpoint

Step s (1 … ``train.steps``): draw ``train.tasks_per_step`` tasks from the seeded sampler; each rank runs
``train.rollouts_per_task`` episodes of its share of them, each from its own random stream seeded by
(seed, s, task, sample index), so the episodes do not depend on concurrency or ranks (under env_only
no verifier runs on them: verifier-free adaptation, tasks need no tests); one
update (:mod:`echo_rl.train.update`); metrics, collapse alarms and sampled transcripts logged. With
dynamic-sampling refill (``objective.dynamic_sampling.max_refill_draws``), while the step has fewer than
``tasks_per_step`` informative groups the sampler draws another ``tasks_per_step`` tasks (refill r's
episodes seeded by (seed, s, r, task, sample index)), and the step keeps the informative ones among them,
first in draw order, up to the number missing (:func:`refill_keep`). Evaluation
and checkpoints as in :mod:`echo_rl.train.loop`. Every random draw is a function of the seed and the
step, and the checkpoint holds everything else (model, optimizer, scheduler, RNG, sampler position, alarm
history, balancer bound), so a resumed run continues as the uninterrupted one would have.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.objective import LambdaBalancer, informative_groups
from echo_rl.rollout.episode import EpisodeRunner, group_requests, run_episodes
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.seeding import derive_seed
from echo_rl.train.alarms import SIGNALS, Alarm, CollapseMonitor
from echo_rl.distributed import gather_lists, shard
from echo_rl.train.loop import Callback, Loop, run_loop
from echo_rl.train.metrics import merged, prefixed
from echo_rl.train.policy_sync import make_policy, release_for_update, sync_weights
from echo_rl.train.reference import load_reference
from echo_rl.train.session import Session
from echo_rl.train.sinks import write_transcripts
from echo_rl.train.stepstats import merge_stats, rollout_stats, step_metrics
from echo_rl.train.update import policy_update


def sample_evenly(items: list[Trajectory], count: int) -> list[Trajectory]:
    """``count`` items spread evenly over ``items`` (all of them when fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def refill_keep(informative: Sequence[bool], missing: int) -> set[int]:
    """Indices of the groups a refill keeps: the first ``missing`` informative ones (draw order)."""
    return set([g for g, flag in enumerate(informative) if flag][: max(missing, 0)])


class Trainer(Loop):
    """The RL loop over an opened :class:`Session` (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        super().__init__(session, len(session.splits["train"]))
        cfg = session.cfg
        self.title = f"{cfg.name} ({cfg.objective.algorithm})"
        self.total_steps = cfg.train.steps
        self.balancer = LambdaBalancer(cfg.objective)
        self.monitor = CollapseMonitor(cfg.alarms)
        self.policy = make_policy(cfg, session.model, session.tokenizer, model_path=session.model_path,
                                  training=True)
        self.reference = load_reference(cfg, session.initial_model, session.ctx.device)
        self.restore()
        self.evaluator = session.evaluator(self.policy) if cfg.train.eval_every else None

    def extra_state(self) -> dict[str, Any]:
        return {"alarms": self.monitor.state(), "balancer_bound": self.balancer.bound}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.monitor.load_state(state["alarms"])
        self.balancer.bound = state["balancer_bound"]

    def draw(self, step: int, refill: int) -> list[Trajectory]:
        """This rank's groups of one draw of ``tasks_per_step`` tasks (refill 0: the step's own draw)."""
        cfg, s = self.s.cfg, self.s
        tasks = [s.splits["train"][i] for i in self.sampler.next(cfg.train.tasks_per_step)]
        n = cfg.train.rollouts_per_task
        seed = derive_seed(cfg.seed, "rollout", step, *(("refill", refill) if refill else ()))
        runner = EpisodeRunner(
            self.policy, s.chat, cfg, label=s.label, split="train", policy_step=step, verify=cfg.objective.uses_reward
        )
        return run_episodes(runner, shard(group_requests(tasks, n, seed=seed), s.ctx, chunk=n))

    def rollouts(self, step: int) -> tuple[list[Trajectory], dict[str, float]]:
        """This rank's rollouts of step ``step`` (whole groups, task-major) and, with refill on, the
        refill draws made and the groups they added."""
        cfg, ctx = self.s.cfg, self.s.ctx
        local = self.draw(step, 0)
        if not cfg.objective.dynamic_sampling.max_refill_draws:
            return local, {}
        refill = {"refill_draws": 0.0, "refill_groups": 0.0}  # logged as rollout/…
        informative = gather_lists(informative_groups(local, cfg.train.rollouts_per_task), ctx)
        missing = cfg.train.tasks_per_step - sum(informative)
        for r in range(1, cfg.objective.dynamic_sampling.max_refill_draws + 1):
            if missing <= 0:
                break
            kept, added = self.refill(step, r, missing)
            local += kept
            missing -= added
            refill["refill_draws"] += 1
            refill["refill_groups"] += added
        return local, refill

    def refill(self, step: int, r: int, missing: int) -> tuple[list[Trajectory], int]:
        """Refill draw ``r``: this rank's kept rollouts and the number of groups kept over all ranks."""
        ctx, n = self.s.ctx, self.s.cfg.train.rollouts_per_task
        extra = self.draw(step, r)
        mine = informative_groups(extra, n)
        # rank k holds groups k, k + W, …: order every rank's flags by group so all ranks keep the same ones
        index = [ctx.rank + j * ctx.world_size for j in range(len(mine))]
        keep = refill_keep([flag for _, flag in sorted(gather_lists(list(zip(index, mine)), ctx))], missing)
        return [t for j, g in enumerate(index) if g in keep for t in extra[j * n : (j + 1) * n]], len(keep)

    def train_step(self, step: int) -> tuple[dict[str, Any], list[Alarm]]:
        """Rollouts, update, metrics and alarms of one step; returns the logged record and its alarms."""
        cfg, s = self.s.cfg, self.s
        start = time.monotonic()
        local, refill = self.rollouts(step)
        rollout_s = time.monotonic() - start
        release_for_update(self.policy)  # a colocated engine (vLLM) sleeps while the trainer updates
        update = policy_update(self.trained.module, self.optimizer, self.scheduler, self.balancer, local, cfg, step,
                               s.pad_id, s.ctx, reference=self.reference)
        self.trained.refresh()
        sync_weights(self.policy, s.model)
        stats = step_metrics(merge_stats(gather_lists([rollout_stats(local, cfg.train.rollouts_per_task)], s.ctx)))
        times = {"rollout_s": rollout_s, "step_s": time.monotonic() - start,
                 "tokens_per_s": stats["action_tokens"] / max(rollout_s, 1e-9)}
        record = merged({"kind": "train", "step": step}, update, prefixed("rollout", stats | refill),
                        prefixed("time", times))
        alarms = self.monitor.update(step, {name: record.get(name) for name in SIGNALS})
        record["alarms"] = [alarm.to_dict() for alarm in alarms]
        record |= {f"alarm/{alarm.signal}": 1 for alarm in alarms}
        s.log(record)
        if s.ctx.is_main and cfg.train.save_transcripts:
            sampled = sample_evenly(local, cfg.train.save_transcripts)
            write_transcripts(s.run.rollouts / f"step-{step:06d}.jsonl", sampled, s.tokenizer)
        return record, alarms


def train(cfg: RunConfig, out: Path, *, resume: bool = False, callbacks: Sequence[Callback] = ()) -> Path:
    """Run (or resume) RL training into ``out`` with ``callbacks`` (:class:`echo_rl.train.loop.Callback`);
    return the run directory."""
    return run_loop(Trainer, cfg, out, resume=resume, callbacks=callbacks)
