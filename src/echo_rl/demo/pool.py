"""Stage 4 with ``rl_workers`` > 1: the RL runs side by side, each in a worker process of its own.

One run of the demo keeps ~1.5-1.6 of 2 cores busy (its process ~1.1: sampling and the update; its sandboxes and
verifiers the rest), and a second torch thread gains it little on an idle machine (README, "Rollout
throughput"); two runs at once with one thread each (:func:`echo_rl.demo.config.run_threads`) fill both
cores: 10 steps of two runs took 52 s side by side against 72 s one after the other with 2 threads
(``benchmarks/rl_workers.py``). Two runs with two threads each oversubscribe the cores (87 s).

A worker trains and evaluates one run at a time with :func:`echo_rl.demo.runs.run_one`, as the parent
would: the same run config, key and directory. A run's result depends on its config (its torch threads
included), not on the runs beside it, so a run trained side by side equals the same run trained one after
another with as many threads (tests/test_demo.py) — up to the last float bits that the batching of its
episodes' sampling leaves to timing, which a long run can amplify (README, Reproducibility). The parent
prints the workers' log lines and a progress bar per run, hands later runs the step-0 curve evaluation an
earlier run computed, and reuses itself, without a worker, the runs an earlier demo trained and evaluated.
Runs start in the order of ``runs``, outcomes come back in that order; a worker's error ends the demo with it
once the runs under way have finished, and a worker ends with the parent (a killed demo leaves nothing
training).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from echo_rl.demo.config import DemoConfig, Method, run_name
from echo_rl.demo.console import Clock, quiet_logs
from echo_rl.demo.prepare import Prepared
from echo_rl.demo.runs import CurveEvaluations, RunOutcome, reuse_saved, run_one
from echo_rl.demo.sft import SFTResult
from echo_rl.eval.results import EvalResult
from echo_rl.train.loop import Callback, Loop, LoopControl
from echo_rl.train.progress import counting_bar

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent ends


_messages: Any = None  # in a worker: the queue to the parent (:func:`_start_worker`)


def _start_worker(messages: Any, parent: int) -> None:
    """A worker's set-up: the parent's message queue, and an end with the parent (a killed demo leaves no
    runs training on; Linux, elsewhere the pool's own shutdown), also when it ended while this one started."""
    global _messages
    _messages = messages
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)
    quiet_logs()


class _Lines:
    """The console of a worker's :class:`Clock`: every printed line goes to the parent."""

    def print(self, text: str) -> None:
        _messages.put(("log", text))


class _Steps(Callback):
    """Reports each finished step of run ``name`` to the parent."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_step_end(self, loop: Loop, record: dict[str, Any], control: LoopControl) -> None:
        _messages.put(("step", (self.name, loop.step)))


def _work(cfg: DemoConfig, method: Method, seed: int, prepared: Prepared, sft: SFTResult, out: Path,
          start: EvalResult | None, started: float) -> tuple[RunOutcome, EvalResult | None]:
    """One run in a worker: :func:`run_one` with the parent's clock start, step reports, no progress bar."""
    curve = CurveEvaluations(start)
    clock = Clock(_Lines(), start=started)  # type: ignore[arg-type]  # a console that only prints
    name = run_name(method, seed)
    outcome = run_one(cfg, method, seed, prepared, sft.checkpoint, sft.key, out / name, curve, clock,
                      extra_callbacks=[_Steps(name)], progress=False)
    return outcome, curve.start


def run_side_by_side(cfg: DemoConfig, runs: list[tuple[Method, int]], prepared: Prepared, sft: SFTResult, out: Path,
                     clock: Clock) -> list[RunOutcome]:
    """Every (method, seed) of ``runs`` from the SFT checkpoint, ``cfg.rl_workers`` at a time (module
    docstring); the outcomes in the order of ``runs``."""
    context = multiprocessing.get_context("spawn")  # a forked torch process can deadlock in its thread pools
    messages = context.Queue()
    start: EvalResult | None = None
    outcomes = {i: saved for i, (method, seed) in enumerate(runs)  # reused runs need no worker
                if (saved := _reused(cfg, method, seed, prepared, sft, out, clock)) is not None}
    pending = [(i, run) for i, run in enumerate(runs) if i not in outcomes]
    running: dict[Future[tuple[RunOutcome, EvalResult | None]], int] = {}
    with counting_bar(console=clock.console) as progress:
        bars = {run_name(m, s): progress.add_task(f"{m.label}, seed {s}", total=cfg.run.train.steps)
                for _, (m, s) in pending}
        with ProcessPoolExecutor(max_workers=cfg.rl_workers, mp_context=context, initializer=_start_worker,
                                 initargs=(messages, os.getpid())) as pool:
            while pending or running:
                while pending and len(running) < cfg.rl_workers:
                    index, (method, seed) = pending.pop(0)
                    running[pool.submit(_work, cfg, method, seed, prepared, sft, out, start, clock.start)] = index
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                _relay(messages, progress, bars, clock)
                for future in done:
                    index = running.pop(future)
                    outcome, computed = future.result()
                    start = start or computed
                    outcomes[index] = outcome
                    progress.update(bars[outcome.path.name], completed=cfg.run.train.steps)
                    clock.log(outcome.score_line())
        _relay(messages, progress, bars, clock)  # the workers have ended: everything they sent has arrived
    return [outcomes[i] for i in range(len(runs))]


def _reused(cfg: DemoConfig, method: Method, seed: int, prepared: Prepared, sft: SFTResult, out: Path,
            clock: Clock) -> RunOutcome | None:
    """A run an earlier demo trained and evaluated, announced as :func:`run_one` does (None: a worker's job)."""
    outcome = reuse_saved(cfg, method, seed, prepared, sft.checkpoint, sft.key, out / run_name(method, seed), clock)
    if outcome is not None:
        clock.log(outcome.score_line())
    return outcome


def _relay(messages: Any, progress: Any, bars: dict[str, Any], clock: Clock) -> None:
    """Print the workers' log lines and move their runs' bars."""
    while True:
        try:
            kind, value = messages.get_nowait()
        except queue.Empty:
            return
        if kind == "log":
            clock.console.print(value)
        else:
            name, step = value
            progress.update(bars[name], completed=step)

