"""Stage 2 of the demo: expert SFT from the random tiny model, stopped and selected by per-family success.

The SFT loop is :class:`echo_rl.train.sft.SFTTrainer`; the demo only watches its evaluations (greedy
validation pass@1, overall and per training family, every ``sft.eval_every`` steps), keeps a checkpoint at
each, stops once the overall score is past the band's ceiling (or ``patience`` evaluations after the first
eligible checkpoint), then picks the checkpoint by :class:`~echo_rl.demo.config.Selection` and removes the
others. ``OUT/sft/selection.json`` records the curve and the choice; a re-run with the same config reuses it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.demo.config import DemoConfig, Selection, fingerprint
from echo_rl.demo.prepare import Prepared
from echo_rl.eval.results import EvalResult
from echo_rl.rundir import atomic_write_text


class _EarlyStop(Exception):
    """Raised at the start of the step after the evaluation that decided to stop."""


def family_scores(result: EvalResult, mode: str = "greedy") -> tuple[float, dict[str, float]]:
    """(validation pass@1, {family: pass@1}) of an evaluation result."""
    summary = result.summary("validation", mode)
    families = {name: score.value for name, fam in summary.families.items() if (score := fam.pass_at(1))}
    return summary.pass_at(1).value, families


def rank(point: dict[str, Any], select: Selection) -> tuple[Any, ...]:
    """Sort key of an evaluated checkpoint (higher is better): eligible first, then in-band, then the worst
    family's score in band (distance to the band outside it), then the lower overall score."""
    overall, worst = point["pass"], point["worst_family"]
    in_band = select.low <= overall <= select.high
    eligible = in_band and worst >= select.min_family
    distance = max(select.low - overall, overall - select.high, 0.0)
    return (eligible, in_band, worst if in_band else -distance, worst, -overall)


def is_eligible(point: dict[str, Any], select: Selection) -> bool:
    return select.low <= point["pass"] <= select.high and point["worst_family"] >= select.min_family


def _make_trainer(select: Selection, families: list[str], on_eval: Any, holder: dict[str, Any],
                  eval_from: int = 0) -> type:
    from echo_rl.train.sft import SFTTrainer

    class DemoSFT(SFTTrainer):
        """SFT that stops itself (see the module docstring)."""

        def __init__(self, session: Any) -> None:
            super().__init__(session)
            holder["trainer"] = self
            self.curve: list[dict[str, Any]] = []
            self.stop = False
            self.first_eligible: int | None = None

        def evaluate(self, step: int) -> dict[str, Any]:
            if step == 0 or step < eval_from:  # nothing learnt yet: its evaluation would tell nothing
                return {}
            result = super().evaluate(step)
            overall, per_family = family_scores(result)
            scored = {name: per_family.get(name) for name in families if name in per_family}
            point = {"step": step, "pass": overall, "families": scored,
                     "worst_family": min(scored.values()) if scored else 0.0,
                     "env_ce_heldout": result.env_ce.value if result.env_ce else None}
            self.curve.append(point)
            eligible = is_eligible(point, select)
            if eligible and self.first_eligible is None:
                self.first_eligible = len(self.curve) - 1
            past = self.first_eligible is not None and len(self.curve) - 1 - self.first_eligible >= select.patience
            self.stop = overall > select.high or past
            on_eval(point, eligible, self.stop)
            return result

        def train_step(self, step: int) -> tuple[dict[str, Any], list[Any]]:
            if self.stop:
                raise _EarlyStop
            return super().train_step(step)

    return DemoSFT


@dataclass(frozen=True)
class SFTResult:
    checkpoint: Path
    step: int
    curve: list[dict[str, Any]]
    selected: dict[str, Any]
    reused: bool
    stopped_early: bool
    steps_run: int


def sft_config(cfg: DemoConfig, prepared: Prepared, n_demos: int) -> RunConfig:
    """The RunConfig of the SFT run: the shared run config with the SFT optimiser and schedule, greedy
    validation (and held-out env CE) at every ``sft.eval_every``, a checkpoint at each."""
    spec = cfg.sft
    data = cfg.run.model_dump(mode="json")
    data["name"] = f"{cfg.name}-sft"
    data["policy"]["threads"] = cfg.threads
    data["policy"]["model"] = str(prepared.model)
    data["tasks"]["corpus"] = str(prepared.corpus)
    data["optim"] |= {"lr": spec.lr, "warmup_steps": spec.warmup_steps, "grad_clip": spec.grad_clip}
    data["train"] |= {
        "sft_batch_size": spec.batch_size, "sft_epochs": spec.max_steps * spec.batch_size / n_demos,
        "sft_env_loss_weight": spec.env_loss_weight, "eval_every": spec.eval_every, "save_every": spec.eval_every,
        "keep_checkpoints": 1_000_000,
    }
    data["eval"] |= {"splits": ["validation"], "sampled": False, "greedy": True, "max_tasks": spec.eval_tasks,
                     "heldout_transcripts": str(prepared.env_ce_heldout)}
    return RunConfig.model_validate(data)


def run_sft(cfg: DemoConfig, prepared: Prepared, out: Path, log: Any) -> SFTResult:
    """Run (or reuse) the demo's SFT into ``out`` and return the selected checkpoint."""
    from echo_rl.rollout.trajectory import load_trajectories
    from echo_rl.train.checkpoint import is_complete, list_checkpoints, step_dir_name
    from echo_rl.train.loop import run_loop

    demos = load_trajectories(prepared.expert_train)
    run_cfg = sft_config(cfg, prepared, len(demos))
    key = fingerprint(prepared.root.name, run_cfg.model_dump(mode="json"), cfg.sft.model_dump(mode="json"), "sft-v1")
    record = out / "selection.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        checkpoint = Path(saved["checkpoint"])
        if saved.get("key") == key and is_complete(checkpoint):
            log(f"reusing the SFT checkpoint {checkpoint} (step {saved['step']})")
            return SFTResult(checkpoint, saved["step"], saved["curve"], saved["selected"], True,
                             saved["stopped_early"], saved["steps_run"])
    shutil.rmtree(out, ignore_errors=True)
    (out / "rollouts").mkdir(parents=True)
    shutil.copyfile(prepared.expert_train, out / "rollouts" / "expert-train.jsonl")
    select = cfg.sft.select
    families = list(cfg.run.tasks.families or [])

    def on_eval(point: dict[str, Any], eligible: bool, stop: bool) -> None:
        fams = " ".join(f"{name}={value:.2f}" for name, value in sorted(point["families"].items()))
        env = f"  held-out env CE {point['env_ce_heldout']:.2f}" if point["env_ce_heldout"] is not None else ""
        log(f"  sft step {point['step']}: validation pass@1 {point['pass']:.3f} (greedy), worst family "
            f"{point['worst_family']:.2f}{env}{'  [eligible]' if eligible else ''}{'  -> stop' if stop else ''}")
        log(f"    per family: {fams}")

    holder: dict[str, Any] = {}
    stopped = False
    try:
        run_loop(_make_trainer(select, families, on_eval, holder, cfg.sft.eval_from), run_cfg, out)
    except _EarlyStop:
        stopped = True
    trainer = holder["trainer"]
    curve = trainer.curve
    saved_steps = {step for step, _ in list_checkpoints(out / "checkpoints")}
    candidates = [p for p in curve if p["step"] in saved_steps]
    if not candidates and saved_steps:  # no evaluation ran (eval_from past the end): the last checkpoint
        last = max(saved_steps)
        candidates = [{"step": last, "pass": 0.0, "families": {}, "worst_family": 0.0, "env_ce_heldout": None}]
        curve = candidates
    if not candidates:
        raise RuntimeError("SFT produced no evaluated checkpoint")
    selected = max(candidates, key=lambda p: rank(p, select))
    checkpoint = out / "checkpoints" / step_dir_name(selected["step"])
    for step, path in list_checkpoints(out / "checkpoints"):
        if step != selected["step"]:
            shutil.rmtree(path)
    steps_run = trainer.step - (1 if stopped else 0)
    eligible = is_eligible(selected, select)
    log(f"SFT: selected step {selected['step']} (validation pass@1 {selected['pass']:.3f}, worst family "
        f"{selected['worst_family']:.2f}; {'eligible' if eligible else 'NOT eligible: no checkpoint met the band'}) "
        f"after {steps_run} steps{' (stopped early)' if stopped else ''}")
    atomic_write_text(record, json.dumps({
        "key": key, "checkpoint": str(checkpoint), "step": selected["step"], "selected": selected, "eligible": eligible,
        "curve": curve, "stopped_early": stopped, "steps_run": steps_run, "selection": select.model_dump(),
    }, indent=1))
    return SFTResult(checkpoint, selected["step"], curve, selected, False, stopped, steps_run)
