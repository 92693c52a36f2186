"""Stage 2 of the demo: expert SFT from the random tiny model, stopped and selected by validation success.

The SFT loop is :class:`echo_rl.train.sft.SFTTrainer`; the demo only watches its evaluations (greedy
validation pass@1, overall and per training family, every ``sft.eval_every`` steps from ``sft.eval_from``)
through a callback, :class:`CheckpointSelection`: it keeps the checkpoint ranked best so far by
:class:`~echo_rl.demo.config.Selection` (:func:`rank`), stops the run once the overall score is past the
band's ceiling (or ``patience`` evaluations after the first eligible checkpoint); the others are removed.
``OUT/sft/selection.json`` records the curve and the choice; a re-run with the same config reuses it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from echo_rl.cache import fingerprint, keyed_record
from echo_rl.config import RunConfig
from echo_rl.demo.config import DemoConfig, Selection, stage_run
from echo_rl.demo.prepare import Prepared
from echo_rl.eval.results import EvalResult
from echo_rl.rundir import atomic_write_text
from echo_rl.train.loop import Callback, Loop, LoopControl


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
    distance = max(select.low - overall, overall - select.high, 0.0)
    return (is_eligible(point, select), in_band, worst if in_band else -distance, worst, -overall)


def is_eligible(point: dict[str, Any], select: Selection) -> bool:
    """In the band, with every training family at ``select.min_family`` or above."""
    return select.low <= point["pass"] <= select.high and point["worst_family"] >= select.min_family


class CheckpointSelection(Callback):
    """The demo's watch over the SFT run (module docstring): ``curve`` holds a point per evaluation,
    ``best`` the best-ranked one (its checkpoint kept), ``log`` gets a line per evaluation."""

    def __init__(self, select: Selection, families: list[str], eval_from: int, log: Any) -> None:
        self.select, self.families, self.eval_from, self.log = select, families, eval_from, log
        self.curve: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.first_eligible: int | None = None
        self.steps_run, self.stopped_early = 0, False

    def on_train_begin(self, loop: Loop, control: LoopControl) -> None:
        control.should_evaluate = False  # nothing learnt yet: its evaluation would tell nothing

    def on_step_end(self, loop: Loop, record: dict[str, Any], control: LoopControl) -> None:
        if loop.step < self.eval_from:
            control.should_evaluate = False

    def on_evaluate(self, loop: Loop, result: EvalResult, control: LoopControl) -> None:
        overall, per_family = family_scores(result)
        scored = {name: per_family[name] for name in self.families if name in per_family}
        point = {"step": result.step, "pass": overall, "families": scored,
                 "worst_family": min(scored.values()) if scored else 0.0,
                 "env_ce_heldout": result.env_ce.value if result.env_ce else None}
        self.curve.append(point)
        if self.best is None or rank(point, self.select) > rank(self.best, self.select):
            self.best, control.keep = point, {point["step"]}
        eligible = is_eligible(point, self.select)
        if eligible and self.first_eligible is None:
            self.first_eligible = len(self.curve) - 1
        past = self.first_eligible is not None and len(self.curve) - 1 - self.first_eligible >= self.select.patience
        control.should_stop = overall > self.select.high or past
        env = f"  held-out env CE {point['env_ce_heldout']:.2f}" if point["env_ce_heldout"] is not None else ""
        self.log(f"  sft step {point['step']}: validation pass@1 {overall:.3f} (greedy), worst family "
                 f"{point['worst_family']:.2f}{env}{'  [eligible]' if eligible else ''}"
                 f"{'  -> stop' if control.should_stop else ''}")
        self.log("    per family: " + " ".join(f"{name}={value:.2f}" for name, value in sorted(scored.items())))

    def on_train_end(self, loop: Loop, control: LoopControl) -> None:
        self.steps_run, self.stopped_early = loop.step, control.should_stop and loop.step < loop.total_steps


@dataclass(frozen=True)
class SFTResult:
    """The SFT stage's outcome, as ``OUT/sft/selection.json`` records it: the selected checkpoint, its step and
    point of the curve, the whole curve, and the run's key (what a later stage's cache key builds on)."""

    key: str
    checkpoint: Path
    step: int
    selected: dict[str, Any]
    curve: list[dict[str, Any]]
    stopped_early: bool
    steps_run: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SFTResult:
        return cls(**{f.name: data[f.name] for f in fields(cls)} | {"checkpoint": Path(data["checkpoint"])})


def sft_config(cfg: DemoConfig, prepared: Prepared, n_demos: int) -> RunConfig:
    """The RunConfig of the SFT run: greedy validation (and held-out env CE) at every ``sft.eval_every``, the
    pre-training sessions rehearsed with ``sft.rehearsal``, a checkpoint at each (pruned to the newest and
    the one :class:`CheckpointSelection` keeps)."""
    spec = cfg.sft
    rehearse = {"sft_rehearsal": str(prepared.sessions), "sft_rehearsal_weight": spec.rehearsal,
                "sft_rehearsal_batch_size": spec.rehearsal_batch_size} if spec.rehearsal else {}
    return stage_run(cfg, "sft", spec, spec.max_steps, n_demos, prepared.model, prepared.corpus, {
        "sft_env_loss_weight": spec.env_loss_weight, "eval_every": spec.eval_every, "save_every": spec.eval_every,
        **rehearse,
    }, {"splits": ["validation"], "sampled": False, "greedy": True, "max_tasks": spec.eval_tasks,
        "heldout_transcripts": str(prepared.env_ce_heldout)})


def sft_key(cfg: DemoConfig, prepared: Prepared, run_cfg: RunConfig) -> str:
    """What the SFT stage's result depends on: the prepared stage, the SFT run's config and ``cfg.sft`` — not
    the run's name, which only labels it, so a config that extends the demo under another name (e.g.
    configs/echo-sweep.yaml) reuses the demo's SFT checkpoint from the same ``--out``."""
    return fingerprint(prepared.root.name, run_cfg.model_dump(mode="json", exclude={"name"}),
                       cfg.sft.model_dump(mode="json"), "sft-v1")


def run_sft(cfg: DemoConfig, prepared: Prepared, out: Path, log: Any) -> SFTResult:
    """Run (or reuse) the demo's SFT into ``out`` and return the selected checkpoint."""
    from echo_rl.rollout.trajectory import load_trajectories
    from echo_rl.train.checkpoint import is_complete, prune_checkpoints, step_dir_name
    from echo_rl.train.sft import sft

    demos = load_trajectories(prepared.expert_train)
    run_cfg = sft_config(cfg, prepared, len(demos))
    key = sft_key(cfg, prepared, run_cfg)
    record = out / "selection.json"
    saved = keyed_record(record, key)
    if saved is not None and is_complete(Path(saved["checkpoint"])):
        log(f"reusing the SFT checkpoint {saved['checkpoint']} (step {saved['step']})")
        return SFTResult.from_json(saved)
    shutil.rmtree(out, ignore_errors=True)
    (out / "rollouts").mkdir(parents=True)
    shutil.copyfile(prepared.expert_train, out / "rollouts" / "expert-train.jsonl")
    select = cfg.sft.select
    watch = CheckpointSelection(select, list(cfg.run.tasks.families or []), cfg.sft.eval_from, log)
    sft(run_cfg, out, callbacks=[watch])
    selected, curve = watch.best, watch.curve
    assert selected is not None  # the last step is evaluated, and sft.eval_from <= sft.max_steps
    prune_checkpoints(out / "checkpoints", 0, {selected["step"]})
    checkpoint = out / "checkpoints" / step_dir_name(selected["step"])
    result = SFTResult(key, checkpoint, selected["step"], selected, curve, watch.stopped_early, watch.steps_run)
    eligible = is_eligible(selected, select)
    log(f"SFT: selected step {result.step} (validation pass@1 {selected['pass']:.3f}, worst family "
        f"{selected['worst_family']:.2f}; {'eligible' if eligible else 'NOT eligible: no checkpoint met the band'}) "
        f"after {result.steps_run} steps{' (stopped early)' if result.stopped_early else ''}")
    atomic_write_text(record, json.dumps({**asdict(result), "checkpoint": str(checkpoint), "eligible": eligible,
                                          "selection": select.model_dump()}, indent=1))
    return result
