"""Stages 3 and 4 of the demo: the RL runs (one method × seed at a time, all from the SFT checkpoint) and the
final evaluation of the base policy and of every run.

Each run is an ordinary ``echo-rl train`` run directory, ``OUT/runs/<method>-seed<S>/``, trained by
:class:`echo_rl.train.trainer.Trainer` with cheap curve evaluations on the selection split (greedy
validation pass@1 and held-out env CE every ``run.train.eval_every`` steps and at the last:
:class:`CurveEvaluations`). The step-0 evaluation is the same for every run (greedy decoding of the same
checkpoint), so it is computed once and recorded in each run. The final evaluation (:func:`final_evaluation`,
in a session as ``echo-rl eval`` opens one) is the full one, on the report's splits (``eval.splits``: the
test split and held-out families by default, never the validation tasks that chose the checkpoint): sampled
(``eval.samples_per_task`` at the evaluation temperature) and greedy pass@1, held-out env CE at τ = 1 on the
reference transcripts of held-out families and of unseen validation tasks, efficiency — written to the run
directory ``RUN/final/`` (``final.json``, ``eval/``, ``rollouts/``, ``metrics.jsonl``). A run whose
``final.json`` carries the same key is reused by a re-run; one whose ``trained.json`` does (training
finished, evaluation missing or failed) is evaluated again without training again.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_rl.cache import fingerprint, keyed_record
from echo_rl.config import RunConfig
from echo_rl.configfile import with_changes
from echo_rl.demo.config import DemoConfig, Method, method_run
from echo_rl.demo.console import Clock
from echo_rl.demo.prepare import Prepared
from echo_rl.eval.results import EvalResult
from echo_rl.rundir import atomic_write_text
from echo_rl.train.loop import Callback, Loop, LoopControl

FINAL = "final"
TRAINED = "trained.json"


@dataclass(frozen=True)
class RunOutcome:
    """One RL run: its final record (``final.json``: the final evaluation, ``train_s``, ``eval_s``), and whether
    an earlier demo trained and evaluated it."""

    method: Method
    seed: int
    path: Path
    final: dict[str, Any]
    reused: bool

    def score_line(self) -> str:
        """The run's final scores and times, one line for the console."""
        return (f"{self.method.label} seed {self.seed}: {EvalResult.from_json(self.final).score_line()}  (train "
                f"{self.final['train_s']:.0f} s, eval {self.final['eval_s']:.0f} s{', reused' if self.reused else ''})")


def run_config(cfg: DemoConfig, method: Method, seed: int, prepared: Prepared, checkpoint: Path) -> RunConfig:
    """The RunConfig of one RL run: the method's config on ``seed`` starting from ``checkpoint``."""
    return with_changes(method_run(cfg, method, seed), {
        "policy": {"model": str(checkpoint)}, "tasks": {"corpus": str(prepared.corpus)},
        "eval": {"heldout_transcripts": str(prepared.env_ce_heldout)}})


def final_eval_config(cfg: DemoConfig, run: RunConfig) -> RunConfig:
    """``run`` with the final evaluation's settings (sampled and greedy, every configured split)."""
    return with_changes(run, {"seed": cfg.eval.seed, "eval": {
        "splits": list(cfg.eval.splits), "sampled": True, "greedy": True, "samples_per_task": cfg.eval.samples_per_task,
        "max_tasks": cfg.eval.max_tasks, "ks": [1]}})


def _episode_count(cfg: DemoConfig, run: RunConfig) -> int:
    counts = {"train": run.tasks.num_train, "validation": run.tasks.num_validation, "test": run.tasks.num_test,
              "heldout": run.tasks.num_heldout}
    per_task = cfg.eval.samples_per_task + 1
    return sum(min(counts.get(split, 0), cfg.eval.max_tasks or 10**9) * per_task for split in cfg.eval.splits)


def final_evaluation(cfg: DemoConfig, run: RunConfig, checkpoint: Path, prepared: Prepared, out: Path, step: int,
                     record: dict[str, Any], log: Any) -> dict[str, Any]:
    """Evaluate ``checkpoint`` fully (module docstring) into the run directory ``out``, recorded at ``step``,
    and save it as ``out/final.json``: the result (with ``env_ce_validation``, on the reference transcripts of
    validation tasks), ``record``, and the evaluation's ``eval_s``."""
    from echo_rl.train.eval_job import evaluate_checkpoint

    log(f"final evaluation of {record['label']}{'' if record['seed'] is None else ' seed ' + str(record['seed'])} "
        f"(step {step}): {_episode_count(cfg, run)} episodes …")
    start = time.monotonic()
    shutil.rmtree(out, ignore_errors=True)
    ecfg = with_changes(final_eval_config(cfg, run), {"eval": {"validation_transcripts": str(prepared.env_ce_validation)}})
    result = evaluate_checkpoint(ecfg, out, model=str(checkpoint), step=step)
    if (why := result.infra_failure()) is not None:
        raise RuntimeError(f"{out}: {why}")
    result.extra["checkpoint"] = str(checkpoint)
    final = result.to_json() | record | {"eval_s": time.monotonic() - start}
    atomic_write_text(out / "final.json", json.dumps(final, indent=1))
    return final


class CurveEvaluations(Callback):
    """The curve evaluations of the RL runs: the step-0 one, the same for every run, is computed by the first
    run and recorded in the later ones (``start``: one computed elsewhere, e.g. by another worker's run)."""

    def __init__(self, start: EvalResult | None = None) -> None:
        self.start = start

    def on_train_begin(self, loop: Loop, control: LoopControl) -> None:
        if control.should_evaluate and self.start is not None:
            control.should_evaluate = False
            loop.evaluate(0, reuse=copy.deepcopy(self.start))

    def on_evaluate(self, loop: Loop, result: EvalResult, control: LoopControl) -> None:
        if result.step == 0 and self.start is None:
            self.start = copy.deepcopy(result)


def reuse_saved(cfg: DemoConfig, method: Method, seed: int, prepared: Prepared, checkpoint: Path, sft_key: str,
                out: Path, clock: Clock) -> RunOutcome | None:
    """The outcome an earlier demo saved in ``out`` for this run (its ``final.json`` carries the run's key),
    announced on ``clock``; None when there is none."""
    key = run_key(cfg, run_config(cfg, method, seed, prepared, checkpoint), sft_key)
    return _saved_outcome(method, seed, out, key, clock)


def _saved_outcome(method: Method, seed: int, out: Path, key: str, clock: Clock) -> RunOutcome | None:
    """:func:`reuse_saved` for a run whose key is known."""
    saved = keyed_record(out / FINAL / "final.json", key)
    if saved is None:
        return None
    clock.log(f"reusing {out.name} (trained and evaluated by an earlier demo with the same config)")
    return RunOutcome(method, seed, out, saved, reused=True)


def run_one(cfg: DemoConfig, method: Method, seed: int, prepared: Prepared, checkpoint: Path, sft_key: str,
            out: Path, curve: CurveEvaluations, clock: Clock, *, extra_callbacks: Sequence[Callback] = (),
            progress: bool = True) -> RunOutcome:
    """Train (or reuse) one method on one seed into ``out`` and evaluate its final checkpoint, on ``clock``'s
    stages "RL: <label>" and "final evaluation: RL runs"; ``extra_callbacks`` join the trainer's, ``progress``
    False turns its progress bar off (neither is part of the run's key)."""
    from echo_rl.train.checkpoint import latest_checkpoint, read_state
    from echo_rl.train.trainer import train

    run = run_config(cfg, method, seed, prepared, checkpoint)
    key = run_key(cfg, run, sft_key)
    if (saved := _saved_outcome(method, seed, out, key, clock)) is not None:
        return saved
    trained = keyed_record(out / TRAINED, key)
    if trained is not None:
        clock.log(f"reusing the training of {out.name}; evaluating it again")
    else:
        shutil.rmtree(out, ignore_errors=True)
        start = time.monotonic()
        with clock.stage(f"RL: {method.label}"):
            shown = run if progress else with_changes(run, {"logging": {"progress": False}})
            train(shown, out, callbacks=[curve, *extra_callbacks])
        trained = {"key": key, "train_s": time.monotonic() - start}
        atomic_write_text(out / TRAINED, json.dumps(trained))
    last = latest_checkpoint(out / "checkpoints")
    if last is None:
        raise RuntimeError(f"{out}: the run left no checkpoint")
    with clock.stage("final evaluation: RL runs"):
        final = final_evaluation(cfg, run, last, prepared, out / FINAL, read_state(last)["step"], {
            "key": key, "method": method.name, "label": method.label, "seed": seed, "train_s": trained["train_s"]},
            clock.log)
    return RunOutcome(method, seed, out, final, reused=False)


def run_key(cfg: DemoConfig, run: RunConfig, sft_key: str) -> str:
    """What a run's training and final evaluation depend on."""
    return fingerprint(sft_key, run.model_dump(mode="json"), cfg.eval.model_dump(mode="json"), "run-v1")


def evaluate_base(cfg: DemoConfig, prepared: Prepared, checkpoint: Path, sft_key: str, out: Path, log: Any) -> dict[str, Any]:
    """The full evaluation of the SFT checkpoint (the table's base column), reused when its key matches."""
    run = run_config(cfg, cfg.methods[0], cfg.seeds[0], prepared, checkpoint)
    key = fingerprint(sft_key, final_eval_config(cfg, run).model_dump(mode="json"), cfg.eval.model_dump(mode="json"),
                      "base-v1")
    if (saved := keyed_record(out / "final.json", key)) is not None:
        log("reusing the base evaluation")
        return saved
    return final_evaluation(cfg, run, checkpoint, prepared, out, 0,
                            {"key": key, "method": "base", "label": "base (SFT)", "seed": None}, log)
