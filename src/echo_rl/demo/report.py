"""Stage 5 of the demo: the report — the paper-style table base → GRPO → ECHO, a plain verdict on whether
ECHO beat GRPO on the test split and on whether the paper's result was reproduced, the training dynamics,
curves, the SFT selection, and the wall-time table.

It reads what ``echo-rl report`` reads (:mod:`echo_rl.report`): each run directory
(:func:`~echo_rl.report.runs.load_run`: training records, curve evaluations, alarms) and each run's final
evaluation (``RUN/final/final.json``, an :class:`~echo_rl.eval.results.EvalResult`), grouped into arms
(one method, its seeds) with the same statistics, tables and figures. The final evaluation is on the test
split (never the validation tasks that chose the SFT checkpoint and the ECHO arm) and held-out families;
the curves' validation scores are shown as the selection split's.

Writes ``OUT/report/``: ``report.md``, ``report.html``, ``summary.json``, ``*.png``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from echo_rl.cpu_kernels import describe as describe_kernels
from echo_rl.demo.config import DemoConfig, active_methods, run_threads
from echo_rl.eval.results import EvalResult
from echo_rl.report.arms import SPLITS, Arm, arm_summary, compare_with_reference, primary_split
from echo_rl.report.build import answer_blocks, result_blocks
from echo_rl.report.dynamics import arm_dynamics
from echo_rl.report.figures import Figure, Line, Panel, Reference
from echo_rl.report.plots import draw, plot_arms
from echo_rl.report.render import Block, Heading, Image, Paragraph, TableBlock, to_markdown, write_page
from echo_rl.report.runs import load_run
from echo_rl.report.tables import per_seed, transpose
from echo_rl.report.verdict import verdicts
from echo_rl.rundir import atomic_write_text


def collect(base: Path, outcomes: list[Any], sft: Any, timings: dict[str, float], prepared_stats: dict[str, Any]
            ) -> dict[str, Any]:
    """Where the report's data lives (the base policy's ``final.json``, the runs) and what it says beside the
    scores."""
    runs = [{"method": o.method.name, "label": o.method.label, "seed": o.seed, "path": str(o.path),
             "train_s": o.final["train_s"], "eval_s": o.final["eval_s"], "reused": o.reused} for o in outcomes]
    return {"base": str(base), "runs": runs, "sft": asdict(sft), "timings": timings,
            "prepare": prepared_stats}


def with_selection(final: EvalResult, curve: EvalResult | None) -> EvalResult:
    """``final`` plus the validation (selection split) scores of a curve evaluation of the same policy."""
    if curve is None or "validation" not in curve.scores or "validation" in final.scores:
        return final
    return EvalResult(final.step, {"validation": curve.scores["validation"], **final.scores}, final.env_ce,
                      final.env_ce_skipped, final.env_ce_validation, final.extra)


def demo_arms(summary: dict[str, Any], cfg: DemoConfig) -> list[Arm]:
    """The base policy and one arm per method (its seeds' runs and final evaluations), in config order."""
    runs = {r["path"]: load_run(Path(r["path"])) for r in summary["runs"]}
    first = next(iter(runs.values()), None)
    base = EvalResult.from_json(json.loads(Path(summary["base"]).read_text()))
    arms = [Arm("base", "base (SFT)", [with_selection(base, first.base_eval() if first else None)])]
    for method in active_methods(cfg):
        mine = [r for r in summary["runs"] if r["method"] == method.name]
        if mine:
            data = [runs[r["path"]] for r in mine]
            finals = [with_selection(EvalResult.from_json(json.loads((Path(r["path"]) / "final" / "final.json")
                                                                     .read_text())), d.final_eval())
                      for r, d in zip(mine, data)]
            arms.append(Arm(method.name, method.label, finals, data, data[0].algorithm))
    return arms


def filter_notes(arms: list[Arm]) -> list[str]:
    """One sentence per method whose env term filtered rollouts: what it kept."""
    return [f"{arm.label}: no reward and no verifier on its training rollouts; its env term learnt only from "
            f"rollouts whose every turn was a clean tool call (parsed without warnings, and ran) — "
            f"{per_seed(arm.rollouts_kept(), '.0%')} of the rollouts kept (mean over steps, per seed)."
            for arm in arms if per_seed(arm.rollouts_kept()) != "—"]


def sft_figure(summary: dict[str, Any]) -> Figure | None:
    """The SFT curve (greedy validation pass@1, overall and per family; held-out env CE against ln|V|), the
    selected step dotted; None before any SFT evaluation."""
    curve, selected = summary["sft"]["curve"], summary["sft"]["step"]
    if not curve:
        return None

    def line(label: str, values: list[float], colour: str, strong: bool = False) -> Line:
        steps = [p["step"] for p, v in zip(curve, values) if v is not None]
        kept = [v for v in values if v is not None]
        return Line(label, steps, kept, kept, kept, colour, strong, (selected,) if strong else ())

    families = sorted({f for p in curve for f in p["families"]})
    passes = [line("validation (all)", [p["pass"] for p in curve], "black", True)]
    passes += [line(f, [p["families"].get(f) for p in curve], f"C{(i + 1) % 10}") for i, f in enumerate(families)]
    vocab = summary.get("prepare", {}).get("vocab_size")
    uniform = [Reference(f"uniform guess ln|V| = {math.log(vocab):.2f}", math.log(vocab), "tab:red")] if vocab else []
    env = line("held-out env CE", [p.get("env_ce_heldout") for p in curve], "C0", True)
    return Figure("sft", f"SFT (dotted: the selected step {selected})", [
        Panel("SFT: greedy validation pass@1", "pass@1", passes),
        Panel("SFT: held-out env CE (T=1)", "nats / token", [env] if env.steps else [], uniform),
    ], xlabel="SFT step")


def _setup_blocks(cfg: DemoConfig, summary: dict[str, Any], quick: bool) -> list[Block]:
    run, prep, model = cfg.run, summary["prepare"], cfg.model
    return [
        Heading(f"echo-rl demo{' (--quick)' if quick else ''}: ECHO vs GRPO on a 2-core CPU", 1),
        Paragraph(
            f"A tiny Qwen3 ({prep.get('parameters', 0) / 1e6:.2f}M parameters, {model.num_layers} layers, "
            f"width {model.hidden_size}, byte-level BPE of {prep.get('vocab_size')} ids) is fine-tuned on "
            f"reference-solution transcripts recorded in the sandbox, then trained from the same SFT checkpoint and the "
            f"same seeds ({', '.join(map(str, cfg.seeds))}) with each method for {run.train.steps} RL steps of "
            f"{run.train.tasks_per_step} tasks × {run.train.rollouts_per_task} rollouts (lr {run.optim.lr:g}, grad "
            f"clip {run.optim.grad_clip:g}, temperature {run.sampling.temperature:g}; evaluation temperature "
            f"{run.sampling.eval_temperature:g}). Splits: {run.tasks.num_validation} validation tasks (the selection "
            f"split: the SFT checkpoint, the curves, and the ECHO arm in docs/echo-sweep), {run.tasks.num_test} test "
            f"tasks of the same families on disjoint seeds (reported here, chosen on nothing), {run.tasks.num_heldout} "
            f"tasks of held-out families."),
    ]


def _selection_note(arms: list[Arm], cfg: DemoConfig) -> str:
    if not any(a.counts("validation", m) for a in arms for m in ("sampled", "greedy")):
        return ""
    limit = cfg.run.eval.max_tasks
    tasks = f"the first {limit}" if limit else f"all {cfg.run.tasks.num_validation}"
    return (f" Validation rows are the selection split's last curve evaluation (greedy, {tasks} validation "
            f"tasks), not a final score.")


def _sft_block(cfg: DemoConfig, sft: dict[str, Any]) -> Paragraph:
    sel = sft["selected"]
    fams = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(sel.get("families", {}).items())) or "—"
    select = cfg.sft.select
    floor = f", every family ≥ {100 * select.min_family:.0f}%" if select.min_family else ""
    return Paragraph(
        f"SFT ran {sft['steps_run']} steps{' and stopped early' if sft['stopped_early'] else ''}; the checkpoint of "
        f"step {sft['step']} was selected on the validation split: greedy pass@1 {100 * sel['pass']:.1f}%, "
        f"worst training family {100 * sel['worst_family']:.0f}% (band {100 * select.low:.0f}–"
        f"{100 * select.high:.0f}%{floor}). Per family: {fams}.")


def timing_table(timings: dict[str, float], cpu: dict[str, float], budget: float) -> TableBlock:
    """Wall and CPU seconds per stage, each stage's share, the total against ``budget``."""
    total = sum(timings.values())
    rows = [[name, f"{seconds:.1f}", f"{cpu.get(name, 0.0):.1f}", f"{100 * seconds / total:.0f}%" if total else "—"]
            for name, seconds in timings.items()]
    rows.append(["total", f"{total:.1f}", f"{sum(cpu.values()):.1f}",
                 f"{'within' if total <= budget else 'OVER'} the {budget:.0f} s budget"])
    return TableBlock(["stage", "wall s", "CPU s (this process + sandboxes)", "share of wall"], rows)



def _stolen(machine: dict[str, Any]) -> str:
    """", and the hypervisor took 31% of the CPUs' time (steal: …)" where it took any."""
    stolen = (machine.get("cpu_shares") or {}).get("stolen")
    if not stolen or stolen < 0.005:
        return ""
    return (f", and the hypervisor took {100 * stolen:.0f}% of the CPUs' time for other machines (steal: every "
            "stage ran slower by about that share)")


def _kernels_note(kernels: dict[str, Any]) -> str:
    """What computed the floats, and which other machines would compute the same start."""
    line = describe_kernels(kernels)
    if kernels.get("class") and kernels.get("mkl") == kernels["class"]:
        return (f"{line}. Another Intel machine of the same class, with the same threads, computes the same "
                "pre-training and SFT; another class, or an unpinned MKL branch, starts RL from another checkpoint "
                "(echo_rl.cpu_kernels).")
    return (f"{line}. MKL was not pinned to a class branch here (it takes them on Intel CPUs only), so another "
            "machine, even of this model, may start RL from another checkpoint (echo_rl.cpu_kernels).")


def write_report(cfg: DemoConfig, summary: dict[str, Any], out: Path, *, quick: bool, machine: dict[str, Any]) -> Path:
    """Render the report into ``out`` (module docstring) and add its ``verdicts`` to ``summary``; return the
    path of report.md."""
    out.mkdir(parents=True, exist_ok=True)
    arms = demo_arms(summary, cfg)
    found = compare_with_reference(arms, list(SPLITS))
    primary = primary_split(arms)
    results, (header, rows) = result_blocks(arms, list(SPLITS), found, (
        "Held-out env CE is the cross-entropy (nats/token, T=1) of the reference solver's fixed transcripts, on "
        "families never trained on and on unseen tasks of the training families; mean over seeds (each seed's in "
        "brackets). Its copyable rows keep only the tokens that repeat content the same transcript already showed "
        "(5-grams found earlier in it and in under 10% of the transcripts): a model that reads its context pays "
        "much less there than on all tokens.") + _selection_note(arms, cfg))
    plots = plot_arms(arms, list(SPLITS), out, arms[0].finals[0])
    if (figure := sft_figure(summary)) is not None:
        draw(figure, out / "sft.png")
        plots["sft"] = out / "sft.png"
    answers = verdicts(arms, found, primary)
    summary["verdicts"], summary["table"] = answers, {"header": header, "rows": rows}  # for the console summary
    blocks = [
        *_setup_blocks(cfg, summary, quick),
        *answer_blocks(answers),
        Heading("Results (base → GRPO → ECHO)"), *results,
        Heading("Methods", 3), TableBlock(["method", "configuration (overrides of run)"], [
            [m.label, ", ".join(f"{k}={v}" for k, v in m.overrides.items()) or "—"] for m in active_methods(cfg)]),
        *(Paragraph(note) for note in filter_notes(arms)),
        Heading("Starting policy (SFT)"), _sft_block(cfg, summary["sft"]),
        Heading("Plots"), *(Image(path.name, name) for name, path in plots.items()),
        Heading("Wall time"),
        Paragraph(f"Machine: {machine.get('cpus')} CPUs, load average {machine.get('load_start')} at the start and "
                  f"{machine.get('load_end')} at the end (other processes share the cores: timings scale with it){_stolen(machine)}; torch "
                  f"threads {cfg.threads}; RL runs {cfg.rl_workers} at a time, {run_threads(cfg)} thread(s) each. Rendering this "
                  "report comes on top (see timings.json)."),
        Paragraph(f"Kernels: {_kernels_note(machine.get('kernels') or {})} RL runs are not bit-reproducible: how "
                  "episodes share a batched generation changes the last bits of their log-probs."),
        timing_table(summary["timings"], summary.get("cpu_timings", {}), cfg.budget_s),
    ]
    write_page(blocks, out, "echo-rl demo")
    data = {**summary, "machine": machine, "table_markdown": to_markdown([TableBlock(*transpose((header, rows)))]),
            "arms": {a.name: arm_summary(a, primary) for a in arms},
            "dynamics": {a.name: asdict(arm_dynamics(a)) for a in arms if a.runs},
            "comparisons": [{"arm": c.arm.name, "split": c.split, "mode": c.mode, "diff": asdict(c.diff),
                             "adjusted": asdict(c.adjusted)} for c in (found.items if found else [])],
            "comparison_count": found.count if found else 0}
    atomic_write_text(out / "summary.json", json.dumps(data, indent=1, default=str))
    return out / "report.md"
