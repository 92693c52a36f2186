"""Stages 3 and 4 of the demo: the RL runs (one method × seed at a time, all from the SFT checkpoint) and the
final evaluation of the base policy and of every run.

Each run is an ordinary ``echo-rl train`` run directory, ``OUT/runs/<method>-seed<S>/``, trained by
:class:`echo_rl.train.trainer.Trainer` with cheap curve evaluations on the selection split (greedy
validation pass@1 and held-out env CE every ``run.train.eval_every`` steps and at the last). The step-0
evaluation is the same for every run (greedy decoding of the same checkpoint), so it is computed once and
copied into each run. The final evaluation (:func:`final_evaluation`) is the full one, on the report's
splits (``eval.splits``: the test split and held-out families by default, never the validation tasks that
chose the checkpoint): sampled (``eval.samples_per_task`` at the evaluation temperature) and greedy pass@1,
held-out env CE at τ = 1 on the reference transcripts of held-out families and of unseen validation tasks,
efficiency — written to
``RUN/final/`` (``final.json``, ``eval/``, ``rollouts/``). A run whose ``final.json`` carries the same key is
reused by a re-run; one whose ``trained.json`` does (training finished, evaluation missing or failed) is
evaluated again without training again.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.demo.config import DemoConfig, Method, fingerprint, method_run
from echo_rl.demo.prepare import Prepared
from echo_rl.rundir import RunDir, atomic_write_text

FINAL = "final"
TRAINED = "trained.json"


@dataclass
class RunOutcome:
    method: Method
    seed: int
    path: Path
    final: dict[str, Any]
    train_s: float
    eval_s: float
    reused: bool
    train_cpu: float = 0.0
    eval_cpu: float = 0.0


def run_config(cfg: DemoConfig, method: Method, seed: int, prepared: Prepared, checkpoint: Path) -> RunConfig:
    """The RunConfig of one RL run: the method's config on ``seed`` starting from ``checkpoint``."""
    run = method_run(cfg, method, seed)
    data = run.model_dump(mode="json")
    data["policy"]["model"] = str(checkpoint)
    data["tasks"]["corpus"] = str(prepared.corpus)
    data["eval"]["heldout_transcripts"] = str(prepared.env_ce_heldout)
    return RunConfig.model_validate(data)


def final_eval_config(cfg: DemoConfig, run: RunConfig) -> RunConfig:
    """``run`` with the final evaluation's settings (sampled and greedy, every configured split)."""
    data = run.model_dump(mode="json")
    data["seed"] = cfg.eval.seed
    data["eval"] |= {"splits": list(cfg.eval.splits), "sampled": True, "greedy": True,
                     "samples_per_task": cfg.eval.samples_per_task, "max_tasks": cfg.eval.max_tasks, "ks": [1]}
    return RunConfig.model_validate(data)


def _episode_count(cfg: DemoConfig, run: RunConfig) -> int:
    counts = {"train": run.tasks.num_train, "validation": run.tasks.num_validation, "test": run.tasks.num_test,
              "heldout": run.tasks.num_heldout}
    per_task = cfg.eval.samples_per_task + 1
    return sum(min(counts.get(split, 0), cfg.eval.max_tasks or 10**9) * per_task for split in cfg.eval.splits)


def final_evaluation(cfg: DemoConfig, run: RunConfig, checkpoint: Path, prepared: Prepared, out: Path, step: int,
                     label: str) -> dict[str, Any]:
    """Evaluate ``checkpoint`` fully (module docstring) into ``out``; return the result, which also holds
    ``env_ce_validation`` (reference transcripts of validation tasks) and ``eval_s``."""
    from echo_rl.eval.evaluate import EnvCESet, Evaluator
    from echo_rl.eval.heldout import heldout_env_ce
    from echo_rl.harness.chat import ChatFormat
    from echo_rl.models.load import load_policy_model
    from echo_rl.rollout.trajectory import load_trajectories
    from echo_rl.train.data import load_task_splits
    from echo_rl.train.policy_sync import make_policy
    from echo_rl.distributed import DistContext

    start = time.monotonic()
    ecfg = final_eval_config(cfg, run)
    splits = load_task_splits(ecfg, ecfg.eval.splits)
    model, tokenizer = load_policy_model(str(checkpoint), dtype=ecfg.policy.dtype, device="cpu")
    chat = ChatFormat.from_config(tokenizer, ecfg.harness)
    policy = make_policy(ecfg, model, tokenizer)
    ctx = DistContext()
    pad = int(tokenizer.pad_token_id)
    heldout = load_trajectories(prepared.env_ce_heldout)
    evaluator = Evaluator(ecfg, policy, chat, splits, label=label, ctx=ctx,
                          env_ce=EnvCESet(model, heldout, prepared.env_ce_heldout, pad))
    rundir = RunDir.create(out)
    result = evaluator.run(step, rundir)
    for split, modes in result.scores.items():
        for mode, summary in modes.items():
            if summary.episodes and not summary.valid:
                reason = next(iter(summary.infra.reasons), "?")
                raise RuntimeError(f"{out}: every {split}/{mode} episode was an infrastructure error: {reason}")
    validation = load_trajectories(prepared.env_ce_validation)
    result.env_ce_validation = heldout_env_ce(model, validation, ecfg, pad, ctx, prepared.env_ce_validation)
    result.extra |= {"checkpoint": str(checkpoint), "eval_s": time.monotonic() - start}
    return result.to_json()


def _trainer_class(base_eval: dict[str, Any]) -> type:
    """The RL trainer, with its step-0 evaluation taken from ``base_eval["result"]`` when present (and
    stored there after the first run computed it)."""
    from echo_rl.eval.results import EvalResult, write_result
    from echo_rl.train.loop import validation_score
    from echo_rl.train.trainer import Trainer

    class DemoTrainer(Trainer):
        def evaluate(self, step: int) -> EvalResult:
            cached = base_eval.get("result")
            if step != 0 or cached is None:
                result = super().evaluate(step)
                if step == 0:
                    base_eval["result"] = copy.deepcopy(result)
                return result
            result = copy.deepcopy(cached)
            if self.s.ctx.is_main:
                write_result(self.s.run, result)
            self.s.log(result.flatten())
            self.best = {"step": 0, "score": validation_score(result)}
            return result

    return DemoTrainer


def run_one(cfg: DemoConfig, method: Method, seed: int, prepared: Prepared, checkpoint: Path, sft_key: str,
            out: Path, base_eval: dict[str, Any], log: Any) -> RunOutcome:
    """Train (or reuse) one method on one seed into ``out`` and evaluate its final checkpoint."""
    from echo_rl.train.checkpoint import latest_checkpoint, read_state
    from echo_rl.train.loop import run_loop

    run = run_config(cfg, method, seed, prepared, checkpoint)
    key = run_key(cfg, run, sft_key)
    final_path, trained_path = out / FINAL / "final.json", out / TRAINED
    if final_path.is_file():
        saved = json.loads(final_path.read_text())
        if saved.get("key") == key:
            log(f"reusing {out.name} (trained and evaluated by an earlier demo with the same config)")
            return RunOutcome(method, seed, out, saved, saved.get("train_s", 0.0), saved.get("eval_s", 0.0), True)
    from echo_rl.demo.pipeline import cpu_seconds

    trained = json.loads(trained_path.read_text()) if trained_path.is_file() else {}
    if trained.get("key") == key:
        log(f"reusing the training of {out.name}; evaluating it again")
    else:
        shutil.rmtree(out, ignore_errors=True)
        start, cpu0 = time.monotonic(), cpu_seconds()
        run_loop(_trainer_class(base_eval), run, out)
        trained = {"key": key, "train_s": time.monotonic() - start, "train_cpu_s": cpu_seconds() - cpu0}
        atomic_write_text(trained_path, json.dumps(trained))
    last = latest_checkpoint(out / "checkpoints")
    if last is None:
        raise RuntimeError(f"{out}: the run left no checkpoint")
    step = read_state(last)["step"]
    log(f"final evaluation of {out.name} (step {step}): {_episode_count(cfg, run)} episodes …")
    cpu1 = cpu_seconds()
    final = final_evaluation(cfg, run, last, prepared, out / FINAL, step, label=sandbox_label(method, seed))
    cpu2 = cpu_seconds()
    final |= {"key": key, "method": method.name, "label": method.label, "seed": seed, "train_s": trained["train_s"],
              "train_cpu_s": trained["train_cpu_s"], "eval_cpu_s": cpu2 - cpu1}
    atomic_write_text(final_path, json.dumps(final, indent=1))
    return RunOutcome(method, seed, out, final, trained["train_s"], final["eval_s"], False, trained["train_cpu_s"],
                      cpu2 - cpu1)


def run_key(cfg: DemoConfig, run: RunConfig, sft_key: str) -> str:
    """What a run's training and final evaluation depend on."""
    return fingerprint(sft_key, run.model_dump(mode="json"), cfg.eval.model_dump(mode="json"), "run-v1")


def sandbox_label(method: Method, seed: int) -> str:
    """The sandbox label of a method's final evaluation (labels take letters, digits, '_' and '-')."""
    return "demo-" + re.sub(r"[^A-Za-z0-9_-]", "_", method.name) + f"-{seed}"


def evaluate_base(cfg: DemoConfig, prepared: Prepared, checkpoint: Path, sft_key: str, out: Path, log: Any) -> dict[str, Any]:
    """The full evaluation of the SFT checkpoint (the table's base column), reused when its key matches."""
    run = run_config(cfg, cfg.methods[0], cfg.seeds[0], prepared, checkpoint)
    key = fingerprint(sft_key, final_eval_config(cfg, run).model_dump(mode="json"), cfg.eval.model_dump(mode="json"),
                      "base-v1")
    path = out / "final.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            log("reusing the base evaluation")
            return saved
    shutil.rmtree(out, ignore_errors=True)
    log(f"final evaluation of the SFT checkpoint: {_episode_count(cfg, run)} episodes …")
    result = final_evaluation(cfg, run, checkpoint, prepared, out, 0, label="demo-base")
    result |= {"key": key, "method": "base", "label": "base (SFT)", "seed": None}
    atomic_write_text(path, json.dumps(result, indent=1))
    return result
