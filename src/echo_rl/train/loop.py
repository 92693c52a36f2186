"""What the RL and SFT loops share: optimizer and scheduler, a seeded resumable sampler, periodic
evaluation with best-score tracking, atomic checkpoints, the progress display, callbacks.

A subclass sets ``title`` and ``total_steps``, implements :meth:`Loop.train_step`, and adds its own
checkpointed state through :meth:`Loop.extra_state` / :meth:`Loop.load_extra_state`. Callers change what a
run does through callbacks, not subclasses::

    class StopAt(Callback):
        def on_step_end(self, loop, record, control):
            control.should_stop = loop.step == 5           # ends after step 5 (checkpointed, resumable)

    run_dir = run_loop(Trainer, cfg, out, callbacks=[StopAt()])    # or train(cfg, out, callbacks=[...])

The order of one step, as in Hugging Face's ``Trainer``: :meth:`Loop.train_step`; the loop sets
``control.should_evaluate`` / ``control.should_save`` from the schedule (``train.eval_every``,
``train.save_every``, and the last step); every callback's :meth:`Callback.on_step_end` sees the step's
record and may change them (or set ``should_stop``); the evaluation (then :meth:`Callback.on_evaluate`
with its result, which may set ``should_stop`` or ``should_save``); the checkpoint, written when
``should_save`` or ``should_stop``; the run ends after a step with ``should_stop``. Before the first step
:meth:`Callback.on_train_begin` may turn off the step-0 evaluation of a fresh run; after the last (or the
stopped) one comes :meth:`Callback.on_train_end`. Pruning keeps the newest ``train.keep_checkpoints``, the
best one and the steps in ``control.keep`` (checkpointed with the run, so a resumed run keeps them too).
Under ``torchrun`` every rank runs the callbacks: they must decide alike on every rank (evaluation results
are the same on all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.eval.evaluate import Evaluator
from echo_rl.eval.results import EvalResult, write_result
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


@dataclass
class LoopControl:
    """What the callbacks decide (:class:`Callback`); the loop sets the ``should_evaluate`` /
    ``should_save`` of each step from its schedule before the callbacks see them."""

    should_evaluate: bool = False  # evaluate at this step (step 0: before the first one)
    should_save: bool = False  # checkpoint at this step
    should_stop: bool = False  # end the run after this step (checkpointed)
    keep: set[int] = field(default_factory=set)  # steps whose checkpoints pruning leaves in place


class Callback:
    """Hooks into :meth:`Loop.fit` (module docstring); every hook is a no-op by default. ``loop.step`` is
    the current step; ``control`` is the run's one :class:`LoopControl`."""

    def on_train_begin(self, loop: Loop, control: LoopControl) -> None:
        """Before the first step (``control.should_evaluate``: a fresh run's step-0 evaluation)."""

    def on_step_end(self, loop: Loop, record: dict[str, Any], control: LoopControl) -> None:
        """After :meth:`Loop.train_step`, with the record it logged; before the step's evaluation."""

    def on_evaluate(self, loop: Loop, result: EvalResult, control: LoopControl) -> None:
        """After an evaluation, with its typed result (:class:`echo_rl.eval.results.EvalResult`)."""

    def on_train_end(self, loop: Loop, control: LoopControl) -> None:
        """After the last step, or the step that set ``control.should_stop``."""


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
        self.control = LoopControl()
        self.callbacks: list[Callback] = []

    def restore(self) -> None:
        """Load the checkpoint the session resumes from (or seed a fresh run)."""
        if self.s.resume_from is None:
            seed_everything(self.s.cfg.seed)
            return
        state = load_training_state(self.s.resume_from, self.scheduler)
        self.trained.load_optimizer_state(self.optimizer, read_optimizer_state(self.s.resume_from))
        self.step, self.best = state["step"], state["best"]
        self.control.keep = set(state.get("keep", ()))
        self.sampler.load_state(state["sampler"])
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    def train_step(self, step: int) -> tuple[dict[str, Any], list[Alarm]]:
        raise NotImplementedError

    def evaluate(self, step: int, reuse: EvalResult | None = None) -> EvalResult:
        """Evaluate (the evaluator writes the result and its episodes), log, remember the step of the best
        validation pass@1, call the callbacks' :meth:`Callback.on_evaluate`. ``reuse``: a result computed
        elsewhere for these same weights and evaluation settings, recorded (without episodes) instead."""
        if reuse is None:
            assert self.evaluator is not None
            sync_weights(self.evaluator.policy, self.s.model)  # a separate engine (vLLM) sees the current weights
            result = self.evaluator.run(step, self.s.run)
        else:
            result = reuse
            if self.s.ctx.is_main:
                write_result(self.s.run, result)
        self.s.log(result.flatten())
        score = validation_score(result)
        if score is not None and (self.best["score"] is None or score > self.best["score"]):
            self.best = {"step": step, "score": score}
        for callback in self.callbacks:
            callback.on_evaluate(self, result, self.control)
        return result

    def save(self, step: int) -> None:
        """Checkpoint (gathered on every rank, written by rank 0), then prune all but the newest
        ``train.keep_checkpoints``, the best and those of ``control.keep``."""
        s = self.s
        model_state, optimizer_state = self.trained.model_state(), self.trained.optimizer_state(self.optimizer)
        if s.ctx.is_main:
            state = {"sampler": self.sampler.state(), "best": self.best, "keep": sorted(self.control.keep),
                     **self.extra_state()}
            save_checkpoint(s.run.checkpoints, step, s.model, s.tokenizer, optimizer_state, self.scheduler, state,
                            model_state=model_state)
            protect = self.control.keep | ({self.best["step"]} if self.best["step"] is not None else set())
            prune_checkpoints(s.run.checkpoints, s.cfg.train.keep_checkpoints, protect)

    def fit(self, callbacks: Sequence[Callback] = ()) -> Path:
        """Steps from the resumed one to ``total_steps`` (module docstring for the callbacks): evaluation at
        step 0 (fresh runs), every ``train.eval_every`` and at the end; a checkpoint every
        ``train.save_every``, at the end and where a callback stops the run."""
        cfg, s, control = self.s.cfg, self.s, self.control
        self.callbacks = list(callbacks)
        last = self.total_steps
        control.should_evaluate = self.step == 0
        for callback in self.callbacks:
            callback.on_train_begin(self, control)
        enabled = cfg.logging.progress and s.ctx.is_main
        with ProgressDisplay(self.title, last, self.step, enabled=enabled) as progress:
            if control.should_evaluate and self.evaluator is not None:
                self.evaluate(0)
            while self.step < last and not control.should_stop:
                self.step += 1
                record, alarms = self.train_step(self.step)
                progress.step(self.step, record, alarms)
                control.should_evaluate = due(self.step, cfg.train.eval_every, last)
                control.should_save = due(self.step, cfg.train.save_every, last)
                for callback in self.callbacks:
                    callback.on_step_end(self, record, control)
                if control.should_evaluate and self.evaluator is not None:
                    self.evaluate(self.step)
                if control.should_save or control.should_stop:
                    self.save(self.step)
        for callback in self.callbacks:
            callback.on_train_end(self, control)
        return s.run.root


def run_loop(loop: type[Loop], cfg: RunConfig, out: Path, *, resume: bool = False,
             callbacks: Sequence[Callback] = ()) -> Path:
    """Open a session on ``out`` (train split, plus the evaluated splits when ``train.eval_every``), run
    ``loop`` over it with ``callbacks`` and return the run directory. Under ``torchrun`` every rank calls
    this."""
    require_trainable(cfg.policy.dtype)
    splits = ("train", *cfg.eval.splits) if cfg.train.eval_every else ("train",)
    session = open_session(cfg, out, resume=resume, splits=splits, training=True)
    try:
        return loop(session).fit(callbacks)
    finally:
        session.close()
        shutdown(session.ctx)
