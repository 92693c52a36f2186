"""What the RL and SFT loops share: optimizer and scheduler, a seeded resumable sampler, periodic
evaluation with best-score tracking, atomic checkpoints, the progress display.

A subclass sets ``title`` and ``total_steps``, implements :meth:`Loop.train_step`, and adds its own
checkpointed state through :meth:`Loop.extra_state` / :meth:`Loop.load_extra_state`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.eval.evaluate import Evaluator
from echo_rl.eval.results import EvalResult
from echo_rl.seeding import seed_everything
from echo_rl.train.alarms import Alarm
from echo_rl.train.checkpoint import (
    load_training_state,
    prune_checkpoints,
    read_optimizer_state,
    save_checkpoint,
)
from echo_rl.distributed import shutdown
from echo_rl.train.optim import build_optimizer
from echo_rl.train.policy_sync import sync_weights
from echo_rl.train.precision import require_trainable
from echo_rl.train.progress import ProgressDisplay
from echo_rl.train.sampler import TaskSampler
from echo_rl.train.session import Session, open_session


def due(step: int, every: int, last: int) -> bool:
    """True at multiples of ``every`` (when > 0) and at the last step."""
    return step == last or (every > 0 and step % every == 0)


def validation_score(result: EvalResult) -> float | None:
    """Validation pass@1 of an evaluation result (:meth:`~echo_rl.eval.results.EvalResult.pass1`)."""
    return result.pass1("validation")


class Loop:
    title = "run"
    total_steps = 0

    def __init__(self, session: Session, num_items: int) -> None:
        self.s = session
        cfg = session.cfg
        assert session.trained is not None, "a training session (open_session(..., training=True))"
        self.trained = session.trained
        self.optimizer, self.scheduler = build_optimizer(self.trained.module, cfg.optim)
        self.sampler = TaskSampler(num_items, cfg.seed)
        self.step = 0
        self.best: dict[str, Any] = {"step": None, "score": None}
        self.evaluator: Evaluator | None = None

    def restore(self) -> None:
        """Load the checkpoint the session resumes from (or seed a fresh run)."""
        if self.s.resume_from is None:
            seed_everything(self.s.cfg.seed)
            return
        state = load_training_state(self.s.resume_from, self.scheduler)
        self.trained.load_optimizer_state(self.optimizer, read_optimizer_state(self.s.resume_from))
        self.step, self.best = state["step"], state["best"]
        self.sampler.load_state(state["sampler"])
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    def train_step(self, step: int) -> tuple[dict[str, Any], list[Alarm]]:
        raise NotImplementedError

    def evaluate(self, step: int) -> EvalResult:
        """Evaluate, log, and remember the step of the best validation pass@1."""
        assert self.evaluator is not None
        sync_weights(self.evaluator.policy, self.s.model)  # a separate engine (vLLM) sees the current weights
        result = self.evaluator.run(step, self.s.run)
        self.s.log(result.flatten())
        score = validation_score(result)
        if score is not None and (self.best["score"] is None or score > self.best["score"]):
            self.best = {"step": step, "score": score}
        return result

    def save(self, step: int) -> None:
        """Checkpoint (gathered on every rank, written by rank 0), then prune all but the newest
        ``train.keep_checkpoints`` and the best."""
        s = self.s
        model_state, optimizer_state = self.trained.model_state(), self.trained.optimizer_state(self.optimizer)
        if s.ctx.is_main:
            state = {"sampler": self.sampler.state(), "best": self.best, **self.extra_state()}
            save_checkpoint(s.run.checkpoints, step, s.model, s.tokenizer, optimizer_state, self.scheduler, state,
                            model_state=model_state)
            protect = {self.best["step"]} if self.best["step"] is not None else set()
            prune_checkpoints(s.run.checkpoints, s.cfg.train.keep_checkpoints, protect)

    def fit(self) -> Path:
        """Steps from the resumed one to ``total_steps``: evaluation at step 0 (fresh runs), every
        ``train.eval_every`` and at the end; a checkpoint every ``train.save_every`` and at the end."""
        cfg, s = self.s.cfg, self.s
        last = self.total_steps
        enabled = cfg.logging.progress and s.ctx.is_main
        with ProgressDisplay(self.title, last, self.step, enabled=enabled) as progress:
            if self.step == 0 and self.evaluator is not None:
                self.evaluate(0)
            while self.step < last:
                self.step += 1
                record, alarms = self.train_step(self.step)
                progress.step(self.step, record, alarms)
                if self.evaluator is not None and due(self.step, cfg.train.eval_every, last):
                    self.evaluate(self.step)
                if due(self.step, cfg.train.save_every, last):
                    self.save(self.step)
        return s.run.root


def run_loop(loop: type[Loop], cfg: RunConfig, out: Path, *, resume: bool = False) -> Path:
    """Open a session on ``out`` (train split, plus the evaluated splits when ``train.eval_every``), run
    ``loop`` over it and return the run directory. Under ``torchrun`` every rank calls this."""
    require_trainable(cfg.policy.dtype)
    splits = ("train", *cfg.eval.splits) if cfg.train.eval_every else ("train",)
    session = open_session(cfg, out, resume=resume, splits=splits, training=True)
    try:
        return loop(session).fit()
    finally:
        session.close()
        shutdown(session.ctx)
