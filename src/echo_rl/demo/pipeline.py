"""The demo pipeline, stage by stage, with progress and a wall-time table.

    1 prepare   corpus, reference replays in the sandbox, BPE tokenizer, tiny Qwen3   (demo.prepare, cached)
    2 sft       expert SFT, checkpoint selected by per-family validation success     (demo.sft, cached)
    3 base      full evaluation of the SFT checkpoint                                  (demo.runs, cached)
    4 rl        every method × seed from that checkpoint, one after another, each followed by its full
                final evaluation                                                       (demo.runs, cached per run)
    5 report    table, verdict, plots, timings                                         (demo.report)

Output directory::

    OUT/demo.yaml            the resolved demo config
    OUT/cache/<key>/         stage 1 (reused by any demo with the same corpus/tokenizer/model settings)
    OUT/sft/                 the SFT run (selection.json, the selected checkpoint)
    OUT/base/                the base policy's final evaluation
    OUT/runs/<method>-seed<S>/   one `echo-rl train` run directory each (final/ holds its final evaluation)
    OUT/report/              report.md, report.html, summary.json, plots
    OUT/timings.json         wall time per stage
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from echo_rl.demo.config import (
    DemoConfig,
    dump_demo_config,
    load_demo_config,
    method_seeds,
)
from echo_rl.rundir import atomic_write_text


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (sandboxes), user + system."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Wall time (and CPU time) per stage."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.start = time.monotonic()
        self.stages: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._cpu_mark = cpu_seconds()

    def add(self, name: str, seconds: float, cpu: float | None = None) -> None:
        """Add ``seconds`` of wall time to stage ``name``, and ``cpu`` seconds of CPU time (default: all the
        CPU time used since the previous call)."""
        self.stages[name] = self.stages.get(name, 0.0) + seconds
        now = cpu_seconds()
        self.cpu[name] = self.cpu.get(name, 0.0) + (now - self._cpu_mark if cpu is None else cpu)
        self._cpu_mark = now

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def start_demo(cfg: DemoConfig, out: Path) -> Console:
    """What every demo path does first: quiet library logs, ``cfg.threads`` torch threads, ``out`` created;
    returns the console progress goes to (stderr)."""
    import logging
    import warnings

    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("echo_rl.harness.chat").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*TRANSFORMERS_CACHE.*")
    torch.set_num_threads(cfg.threads)
    Path(out).mkdir(parents=True, exist_ok=True)
    return Console(stderr=True)


def run(config_args: tuple[str, ...], out: Path, *, quick: bool = False, seeds: int | None = None,
        model: str | None = None, until: str | None = None) -> Path:
    """Run the demo into ``out`` (see the module docstring); return the path of report.md (with ``until``
    "sft": stop after SFT and return the path of ``sft/selection.json``, which holds the SFT curve)."""
    cfg = load_demo_config(config_args, quick=quick, seeds=seeds)
    if model is not None and model not in ("tiny",):
        from echo_rl.demo.smol import run_smol

        return run_smol(cfg, out, model, quick=quick)
    return run_tiny(cfg, out, quick=quick, until=until)


def run_tiny(cfg: DemoConfig, out: Path, *, quick: bool = False, until: str | None = None) -> Path:
    from echo_rl.demo.prepare import prepare
    from echo_rl.demo.report import collect, write_report
    from echo_rl.demo.runs import evaluate_base, run_one
    from echo_rl.demo.sft import run_sft

    console = start_demo(cfg, out)
    out = Path(out)
    atomic_write_text(out / "demo.yaml", dump_demo_config(cfg))
    clock = Clock(console)
    machine = {"cpus": os.cpu_count(), "load_start": _load(), "torch_threads": cfg.threads}
    runs = [(method, seed) for method in cfg.methods for seed in method_seeds(cfg, method)]
    console.rule(f"[bold]echo-rl demo{' --quick' if quick else ''}[/bold] → {out}")
    console.print(f"{len(cfg.methods)} methods ({', '.join(m.label for m in cfg.methods)}) × seeds "
                  f"{cfg.seeds}: {len(runs)} RL runs of {cfg.run.train.steps} steps; machine load {machine['load_start']}")

    def log(text: str) -> None:
        console.print(f"[dim]{clock.elapsed():6.0f}s[/dim] {text}")

    # 1. corpus, replays, tokenizer, model
    console.rule("1/5 corpus, reference transcripts, tokenizer, model")
    start = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        prepared = prepare(cfg, out / "cache", log, progress)
    clock.add("prepare (corpus, replays, tokenizer, model)", time.monotonic() - start)

    # 2. SFT
    console.rule("2/5 expert SFT (checkpoint chosen by per-family validation success)")
    start = time.monotonic()
    sft = run_sft(cfg, prepared, out / "sft", log)
    clock.add("SFT with checkpoint selection", time.monotonic() - start)
    if until == "sft":
        _print_sft_curve(console, sft.curve)
        return out / "sft" / "selection.json"

    # 3. base evaluation
    console.rule("3/5 evaluating the starting policy")
    start = time.monotonic()
    sft_key = json.loads((out / "sft" / "selection.json").read_text())["key"]
    base = evaluate_base(cfg, prepared, sft.checkpoint, sft_key, out / "base", log)
    base["final_dir"] = str(out / "base")
    log(_score_line("base (SFT)", base))
    clock.add("final evaluation: base", time.monotonic() - start)

    # 4. RL runs, one after another
    outcomes = []
    base_eval: dict[str, Any] = {}
    for index, (method, seed) in enumerate(runs, start=1):
        console.rule(f"4/5 RL run {index}/{len(runs)}: {method.label}, seed {seed}")
        outcome = run_one(cfg, method, seed, prepared, sft.checkpoint, sft_key, out / "runs" / f"{method.name}-seed{seed}",
                          base_eval, log)
        outcomes.append(outcome)
        fresh = not outcome.reused
        clock.add(f"RL: {method.label}", outcome.train_s if fresh else 0.0, outcome.train_cpu if fresh else 0.0)
        clock.add("final evaluation: RL runs", outcome.eval_s if fresh else 0.0, outcome.eval_cpu if fresh else 0.0)
        log(_score_line(f"{method.label} seed {seed}", outcome.final)
            + f"  (train {outcome.train_s:.0f} s, eval {outcome.eval_s:.0f} s{', reused' if outcome.reused else ''})")

    # 5. report
    console.rule("5/5 report")
    start = time.monotonic()
    machine["load_end"] = _load()
    timings = dict(clock.stages)
    summary = collect(cfg, base, outcomes, sft, timings, prepared.stats)
    summary["cpu_timings"] = dict(clock.cpu)
    summary["elapsed_before_report_s"] = clock.elapsed()
    report = write_report(cfg, summary, out / "report", quick=quick, machine=machine)
    clock.add("report", time.monotonic() - start)
    timings = dict(clock.stages)
    summary["timings"], summary["cpu_timings"] = timings, dict(clock.cpu)
    atomic_write_text(out / "timings.json", json.dumps({"stages": timings, "cpu_s": clock.cpu,
                                                        "total_s": clock.elapsed(), "machine": machine}, indent=1))
    _print_summary(console, cfg, summary, timings, clock.elapsed(), report)
    return report


def _score_line(name: str, saved: dict[str, Any]) -> str:
    from echo_rl.eval.results import EvalResult

    result = EvalResult.from_json(saved)
    parts = [f"{split}/{mode} {100 * score.value:.1f}%" for split, modes in result.scores.items()
             for mode, summary in modes.items() if (score := summary.pass_at(1))]
    if result.env_ce:
        parts.append(f"held-out env CE {result.env_ce.value:.3f}")
    return f"{name}: " + ", ".join(parts)


def _print_sft_curve(console: Console, curve: list[dict[str, Any]]) -> None:
    from rich.table import Table

    families = sorted({name for point in curve for name in point["families"]})
    table = Table(title="SFT curve", caption="greedy validation pass@1, overall and per family")
    for name in ("step", "all", *families):
        table.add_column(name, justify="right")
    for point in curve:
        table.add_row(str(point["step"]), f"{point['pass']:.2f}",
                      *(f"{point['families'].get(name, 0.0):.2f}" for name in families))
    console.print(table)


def _print_summary(console: Console, cfg: DemoConfig, summary: dict[str, Any], timings: dict[str, float], total: float,
                   report: Path) -> None:
    from rich.table import Table

    from echo_rl.demo.report import results_table

    header, rows = results_table(summary, cfg)
    table = Table(title="base → GRPO → ECHO", show_lines=False)
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for text in summary.get("verdicts", {}).values():
        console.print(text)
    timing = Table(title="wall time")
    timing.add_column("stage")
    timing.add_column("wall s", justify="right")
    timing.add_column("CPU s", justify="right")
    cpu = summary.get("cpu_timings", {})
    for name, seconds in timings.items():
        timing.add_row(name, f"{seconds:.1f}", f"{cpu.get(name, 0.0):.1f}")
    timing.add_row("total", f"{total:.1f}", f"{sum(cpu.values()):.1f}")
    console.print(timing)
    within = "within" if total <= cfg.budget_s else "OVER"
    console.print(f"demo finished in {total:.0f} s ({within} the {cfg.budget_s:.0f} s budget); report: {report}")
