"""The demo pipeline, stage by stage, with progress and a wall-time table.

    1 prepare   corpus, reference replays in the sandbox, BPE tokenizer, tiny Qwen3   (demo.prepare, cached)
    2 sft       expert SFT, checkpoint selected on validation success                  (demo.sft, cached)
    3 base      full evaluation of the SFT checkpoint                                  (demo.runs, cached)
    4 rl        every method × seed from that checkpoint, ``rl_workers`` at a time, each followed by its
                full final evaluation                                  (demo.runs, demo.pool, cached per run)
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

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from echo_rl.configfile import dump_config
from echo_rl.demo.config import DemoConfig, active_methods, load_demo_config, method_seeds, run_name, run_threads
from echo_rl.demo.console import Clock, load_average, start_demo
from echo_rl.rundir import atomic_write_text

if TYPE_CHECKING:
    from echo_rl.demo.prepare import Prepared
    from echo_rl.demo.runs import RunOutcome
    from echo_rl.demo.sft import SFTResult


def run(config_args: tuple[str, ...], out: Path, *, quick: bool = False, seeds: int | None = None,
        model: str | None = None, until: str | None = None, methods: list[str] | None = None) -> Path:
    """Run the demo into ``out`` (see the module docstring); return the path of report.md (with ``until``
    "sft": stop after SFT and return the path of ``sft/selection.json``, which holds the SFT curve)."""
    cfg = load_demo_config(config_args, quick=quick, seeds=seeds, methods=methods)
    if model is not None and model not in ("tiny",):
        from echo_rl.demo.smol import run_smol

        return run_smol(cfg, out, model)
    return run_tiny(cfg, Path(out), quick=quick, until=until)


def run_tiny(cfg: DemoConfig, out: Path, *, quick: bool = False, until: str | None = None) -> Path:
    """Stages 1-5 (module docstring) into ``out``; see :func:`run` for what it returns."""
    from echo_rl.cpu_kernels import paths as kernel_paths, pin
    from echo_rl.demo.prepare import prepare
    from echo_rl.demo.runs import evaluate_base
    from echo_rl.demo.sft import run_sft
    from echo_rl.train.progress import counting_bar

    pin()  # as the CLI does, for a caller of this function: the start is then the same on any Intel CPU of this class
    console = start_demo(cfg, out)
    atomic_write_text(out / "demo.yaml", dump_config(cfg))
    clock = Clock(console)
    machine = {"cpus": os.cpu_count(), "load_start": load_average(), "torch_threads": cfg.threads,
               "kernels": kernel_paths()}
    methods = active_methods(cfg)
    runs = [(method, seed) for method in methods for seed in method_seeds(cfg, method)]
    console.rule(f"[bold]echo-rl demo{' --quick' if quick else ''}[/bold] → {out}")
    console.print(f"{len(methods)} methods ({', '.join(m.label for m in methods)}) × seeds "
                  f"{cfg.seeds}: {len(runs)} RL runs of {cfg.run.train.steps} steps; machine load {machine['load_start']}")

    console.rule("1/5 corpus, reference transcripts, tokenizer, model")
    with clock.stage("prepare (corpus, replays, tokenizer, model)"), \
            counting_bar(console=console, transient=True) as progress:
        prepared = prepare(cfg, out / "cache", clock.log, progress)
    console.rule("2/5 expert SFT (checkpoint chosen on validation success)")
    with clock.stage("SFT with checkpoint selection"):
        sft = run_sft(cfg, prepared, out / "sft", clock.log)
    if until == "sft":
        _print_sft_curve(console, sft.curve)
        return out / "sft" / "selection.json"
    console.rule("3/5 evaluating the starting policy")
    with clock.stage("final evaluation: base"):
        base = evaluate_base(cfg, prepared, sft.checkpoint, sft.key, out / "base", clock.log)
        clock.log(_score_line("base (SFT)", base))
    outcomes = _rl_runs(cfg, runs, prepared, sft, out / "runs", clock)
    console.rule("5/5 report")
    return _report(cfg, out, clock, machine, outcomes, sft, prepared, quick)


def _rl_runs(cfg: DemoConfig, runs: list[Any], prepared: Prepared, sft: SFTResult, out: Path, clock: Clock
             ) -> list[RunOutcome]:
    """Stage 4: every method × seed from the SFT checkpoint, ``cfg.rl_workers`` at a time in worker processes
    (:mod:`echo_rl.demo.pool`), or one after another in this process when 1."""
    from echo_rl.demo.runs import CurveEvaluations, run_one

    if cfg.rl_workers > 1 and len(runs) > 1:
        from echo_rl.demo.pool import run_side_by_side

        clock.console.rule(f"4/5 {len(runs)} RL runs, {cfg.rl_workers} at a time ({run_threads(cfg)} torch thread each)")
        with clock.stage(f"RL runs and their final evaluations, {cfg.rl_workers} at a time"):
            return run_side_by_side(cfg, runs, prepared, sft, out, clock)
    outcomes, curve = [], CurveEvaluations()
    for index, (method, seed) in enumerate(runs, start=1):
        clock.console.rule(f"4/5 RL run {index}/{len(runs)}: {method.label}, seed {seed}")
        outcome = run_one(cfg, method, seed, prepared, sft.checkpoint, sft.key, out / run_name(method, seed), curve,
                          clock)
        outcomes.append(outcome)
        clock.log(outcome.score_line())
    return outcomes


def _report(cfg: DemoConfig, out: Path, clock: Clock, machine: dict[str, Any], outcomes: list[RunOutcome],
            sft: SFTResult, prepared: Prepared, quick: bool) -> Path:
    """Stage 5: the report and ``timings.json``; prints the summary."""
    from echo_rl.demo.report import collect, write_report

    with clock.stage("report"):
        machine["load_end"] = load_average()
        machine["cpu_shares"] = clock.machine_shares()
        summary = collect(out / "base" / "final.json", outcomes, sft, dict(clock.stages), prepared.stats)
        summary["cpu_timings"] = dict(clock.cpu)
        summary["elapsed_before_report_s"] = clock.elapsed()
        report = write_report(cfg, summary, out / "report", quick=quick, machine=machine)
    summary["timings"], summary["cpu_timings"] = dict(clock.stages), dict(clock.cpu)
    clock.save(out / "timings.json", machine=machine)
    _print_summary(clock.console, cfg, summary, clock.elapsed(), report)
    return report


def _score_line(name: str, saved: dict[str, Any]) -> str:
    from echo_rl.eval.results import EvalResult

    return f"{name}: {EvalResult.from_json(saved).score_line()}"


def _print_sft_curve(console: Console, curve: list[dict[str, Any]]) -> None:
    from echo_rl.report.render import TableBlock, print_table

    families = sorted({name for point in curve for name in point["families"]})
    rows = [[str(point["step"]), f"{point['pass']:.2f}", *(f"{point['families'].get(name, 0.0):.2f}" for name in families)]
            for point in curve]
    print_table(console, "SFT curve", TableBlock(["step", "all", *families], rows),
                caption="greedy validation pass@1, overall and per family")


def _print_summary(console: Console, cfg: DemoConfig, summary: dict[str, Any], total: float, report: Path) -> None:
    from echo_rl.demo.report import timing_table
    from echo_rl.report.render import TableBlock, print_table
    from echo_rl.report.tables import transpose

    table = summary["table"]
    print_table(console, "base → GRPO → ECHO", TableBlock(*transpose((table["header"], table["rows"]))))
    for text in summary.get("verdicts", {}).values():
        console.print(text)
    print_table(console, "wall time", timing_table(summary["timings"], summary["cpu_timings"], cfg.budget_s))
    console.print(f"demo finished in {total:.0f} s; report: {report}")
