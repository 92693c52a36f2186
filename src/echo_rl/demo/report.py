"""Stage 5 of the demo: the report — the paper-style table base → GRPO → ECHO, a plain verdict on whether
ECHO beat GRPO (with intervals), curves, the SFT selection, and the wall-time table.

Scores of a method pool its seeds: each task's valid samples and successes are summed over the seeds' final
evaluations, then pass@1 is the mean over tasks with a Wilson interval (as everywhere in echo-rl). The
ECHO − GRPO difference comes with a paired bootstrap interval over tasks (same tasks for both).

Writes ``OUT/report/``: ``report.md``, ``report.html``, ``summary.json``, ``*.png`` (:mod:`echo_rl.demo.plots`; and ``curves/*.png``,
one line per run, from :func:`echo_rl.report.plots.plot_runs`).
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from echo_rl.demo.config import DemoConfig
from echo_rl.demo.plots import plot_final, plot_method_curves, plot_sft
from echo_rl.eval.stats import score_pass_at_k
from echo_rl.eval.summary import pass_value
from echo_rl.report.render import (
    Block,
    Heading,
    Image,
    Paragraph,
    TableBlock,
    to_markdown,
    write_page,
)
from echo_rl.report.tables import MODES
from echo_rl.report.runs import mean_rollouts_kept
from echo_rl.report.tables import SPLITS as SPLIT_NAMES
from echo_rl.rundir import atomic_write_text, read_jsonl

# -- reading episodes --------------------------------------------------------------------------------------

def episodes_file(final_dir: Path, step: int, split: str, mode: str) -> Path:
    return final_dir / "rollouts" / f"eval-step-{step:06d}-{split}-{mode}.jsonl"


def read_episodes(path: Path) -> list[dict[str, Any]]:
    """The facts of each episode the report needs (task, family, outcome, turns, tokens, stop reason)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            t = json.loads(line)
            out.append({"task": t["task_id"], "family": t.get("family"), "outcome": t["outcome"],
                        "turns": len(t.get("turns", [])), "tokens": len(t["token_ids"]), "stop": t["stop_reason"],
                        "command_timeout": any(turn.get("timed_out") for turn in t.get("turns", []))})
    return out


def task_counts(episodes: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in episodes:
        if e["outcome"] != "infra_error":
            counts[e["task"]][0] += 1
            counts[e["task"]][1] += e["outcome"] == "solved"
    return {task: (n, c) for task, (n, c) in counts.items()}


def pooled_score(episodes: list[dict[str, Any]], confidence: float = 0.95) -> dict[str, Any] | None:
    counts = task_counts(episodes)
    if not counts:
        return None
    score = score_pass_at_k(counts, 1, confidence).to_dict()
    score["infra_excluded"] = sum(e["outcome"] == "infra_error" for e in episodes)
    return score


def efficiency(episodes: list[dict[str, Any]]) -> dict[str, float] | None:
    valid = [e for e in episodes if e["outcome"] != "infra_error"]
    if not valid:
        return None
    n = len(valid)
    return {"turns": sum(e["turns"] for e in valid) / n, "tokens": sum(e["tokens"] for e in valid) / n,
            "timeout_rate": sum(e["stop"] == "agent_timeout" for e in valid) / n,
            "command_timeout_rate": sum(e["command_timeout"] for e in valid) / n,
            "turn_limit_rate": sum(e["stop"] in ("max_turns", "max_turn_tokens", "max_context_tokens") for e in valid) / n}


def paired_difference(a: list[dict[str, Any]], b: list[dict[str, Any]], samples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, float] | None:
    """pass@1(a) − pass@1(b) over the tasks both evaluated, with a paired percentile-bootstrap interval."""
    ca, cb = task_counts(a), task_counts(b)
    tasks = sorted(set(ca) & set(cb))
    if not tasks:
        return None
    ra = [ca[t][1] / ca[t][0] for t in tasks]
    rb = [cb[t][1] / cb[t][0] for t in tasks]
    diffs = [x - y for x, y in zip(ra, rb)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(samples))
    tail = (1 - confidence) / 2
    return {"value": sum(diffs) / n, "low": means[math.floor(tail * (samples - 1))],
            "high": means[math.ceil((1 - tail) * (samples - 1))], "tasks": n}


# -- collecting ---------------------------------------------------------------------------------------------

def _curve(run_dir: Path) -> list[tuple[int, float]]:
    points = []
    for path in sorted((run_dir / "eval").glob("step-*.json")):
        result = json.loads(path.read_text())
        modes = result.get("scores", {}).get("validation", {})
        value = pass_value(modes.get("greedy") or modes.get("sampled"))
        if value is not None:
            points.append((result["step"], value))
    return sorted(points)


def _env_curve(run_dir: Path) -> list[tuple[int, float]]:
    points = []
    for path in sorted((run_dir / "eval").glob("step-*.json")):
        result = json.loads(path.read_text())
        if result.get("env_ce"):
            points.append((result["step"], result["env_ce"]["value"]))
    return sorted(points)


def _train_records(run_dir: Path) -> list[dict[str, Any]]:
    return [record for record in read_jsonl(run_dir / "metrics.jsonl") if record.get("kind") == "train"]


def _alarms(run_dir: Path) -> list[dict[str, Any]]:
    """Every collapse alarm the run's training steps logged."""
    return [alarm for record in _train_records(run_dir) for alarm in record.get("alarms", [])]


def steps_to_best(curve: list[tuple[int, float]]) -> int | None:
    return max(curve, key=lambda p: (p[1], -p[0]))[0] if curve else None


def first_reaching(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((step for step, value in curve if value >= target - 1e-12), None)


def collect(cfg: DemoConfig, base: dict[str, Any], outcomes: list[Any], sft: Any, timings: dict[str, float],
            prepared_stats: dict[str, Any]) -> dict[str, Any]:
    """Everything the report shows, as data (also written as summary.json)."""
    columns: list[dict[str, Any]] = []
    base_dir = Path(base["final_dir"])
    base_eps = {(s, m): read_episodes(episodes_file(base_dir, 0, s, m)) for s in cfg.eval.splits for m in MODES}
    columns.append({"name": "base", "label": "base (SFT)", "episodes": base_eps, "results": [base], "runs": []})
    for method in cfg.methods:
        mine = [o for o in outcomes if o.method.name == method.name]
        if not mine:
            continue
        eps: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for split in cfg.eval.splits:
            for mode in MODES:
                eps[(split, mode)] = [e for o in mine for e in read_episodes(
                    episodes_file(o.path / "final", o.final["step"], split, mode))]
        columns.append({"name": method.name, "label": method.label, "episodes": eps,
                        "results": [o.final for o in mine], "runs": mine})
    table: dict[str, Any] = {"columns": [c["label"] for c in columns], "methods": [c["name"] for c in columns], "rows": {}}
    per_run: list[dict[str, Any]] = []
    for col in columns:
        cells: dict[str, Any] = {}
        for split in cfg.eval.splits:
            for mode in MODES:
                cells[f"{split}/{mode}"] = pooled_score(col["episodes"][(split, mode)])
        cells["env_ce_heldout"] = _mean([r["env_ce"]["value"] for r in col["results"] if r.get("env_ce")])
        cells["env_ce_validation"] = _mean([r["env_ce_validation"]["value"] for r in col["results"]
                                            if r.get("env_ce_validation")])
        cells["env_ce_heldout_runs"] = [r["env_ce"]["value"] for r in col["results"] if r.get("env_ce")]
        cells["efficiency"] = efficiency(col["episodes"][("validation", "sampled")] if "validation" in cfg.eval.splits
                                         else [])
        curves = [_curve(o.path) for o in col["runs"]]
        cells["steps_to_best"] = [steps_to_best(c) for c in curves]
        cells["alarms"] = [len(_alarms(o.path)) for o in col["runs"]]
        cells["rollouts_kept"] = [mean_rollouts_kept(_train_records(o.path)) for o in col["runs"]]
        cells["seeds"] = [o.seed for o in col["runs"]]
        table["rows"][col["name"]] = cells
        for o, curve in zip(col["runs"], curves):
            per_run.append({
                "method": col["name"], "seed": o.seed, "path": str(o.path), "curve": curve, "env_curve": _env_curve(o.path),
                "final": {f"{s}/{m}": (o.final["scores"].get(s, {}).get(m) or {}).get("pass", {}).get("1")
                          for s in cfg.eval.splits for m in MODES},
                "env_ce_heldout": (o.final.get("env_ce") or {}).get("value"),
                "env_ce_validation": (o.final.get("env_ce_validation") or {}).get("value"),
                "alarms": _alarms(o.path), "rollouts_kept": mean_rollouts_kept(_train_records(o.path)),
                "train_s": o.train_s, "eval_s": o.eval_s, "reused": o.reused,
            })
    comparisons = {}
    by_name = {c["name"]: c for c in columns}
    grpo = by_name.get("grpo")
    for col in columns:
        if col["name"] in ("base", "grpo") or grpo is None:
            continue
        comparisons[col["name"]] = {
            f"{s}/{m}": paired_difference(col["episodes"][(s, m)], grpo["episodes"][(s, m)])
            for s in cfg.eval.splits for m in MODES
        }
        grpo_best = {o.seed: max((v for _, v in _curve(o.path)), default=None) for o in grpo["runs"]}
        reach = []
        for o in col["runs"]:
            target = grpo_best.get(o.seed)
            reach.append(None if target is None else first_reaching(_curve(o.path), target))
        comparisons[col["name"]]["steps_to_grpo_best"] = reach
        comparisons[col["name"]]["grpo_steps_to_best"] = [steps_to_best(_curve(o.path)) for o in grpo["runs"]]
    return {"table": table, "comparisons": comparisons, "runs": per_run, "sft": _sft_summary(sft),
            "timings": timings, "prepare": prepared_stats, "config": _config_summary(cfg)}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _sft_summary(sft: Any) -> dict[str, Any]:
    return {"selected_step": sft.step, "selected": sft.selected, "curve": sft.curve, "steps_run": sft.steps_run,
            "stopped_early": sft.stopped_early, "checkpoint": str(sft.checkpoint)}


def _config_summary(cfg: DemoConfig) -> dict[str, Any]:
    run = cfg.run
    return {
        "seeds": cfg.seeds, "model": cfg.model.model_dump(), "vocab_size": cfg.tokenizer.vocab_size,
        "rl_steps": run.train.steps, "tasks_per_step": run.train.tasks_per_step,
        "rollouts_per_task": run.train.rollouts_per_task, "lr": run.optim.lr, "grad_clip": run.optim.grad_clip,
        "temperature": run.sampling.temperature, "eval_temperature": run.sampling.eval_temperature,
        "methods": [{"name": m.name, "label": m.label, "overrides": m.overrides} for m in cfg.methods],
        "train_families": run.tasks.families, "heldout_families": run.tasks.heldout_families,
    }


# -- rendering ----------------------------------------------------------------------------------------------

def _pct(score: dict[str, Any] | None) -> str:
    if not score:
        return "—"
    cell = f"{100 * score['value']:.1f} [{100 * score['low']:.1f}, {100 * score['high']:.1f}]"
    if score.get("infra_excluded"):
        cell += f" · {score['infra_excluded']} infra-excluded"
    return cell


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "—" if value is None else format(value, fmt)


def _kept(shares: list[float | None]) -> str:
    """Per-seed shares of rollouts kept, as percentages; — when no run of the method filtered rollouts."""
    if all(share is None for share in shares):
        return "—"
    return ", ".join("—" if share is None else f"{share:.0%}" for share in shares)


def filter_notes(summary: dict[str, Any]) -> list[str]:
    """One sentence per method whose env term filtered rollouts: what it kept."""
    labels = dict(zip(summary["table"]["methods"], summary["table"]["columns"]))
    return [f"{labels[name]}: no reward and no verifier on its training rollouts; its env term learnt only from "
            f"rollouts whose every turn was a clean tool call (parsed without warnings, and ran) — "
            f"{_kept(cells['rollouts_kept'])} of the rollouts kept (mean over steps, per seed)."
            for name, cells in summary["table"]["rows"].items() if _kept(cells.get("rollouts_kept", [])) != "—"]


def _list(values: list[Any]) -> str:
    return "—" if not values else ", ".join("—" if v is None else str(v) for v in values)


def table_rows(summary: dict[str, Any], cfg: DemoConfig) -> tuple[list[str], list[list[str]]]:
    table = summary["table"]
    names = table["methods"]
    rows_data = table["rows"]
    rows: list[list[str]] = []
    temp = cfg.run.sampling.eval_temperature
    for split in cfg.eval.splits:
        for mode in MODES:
            label = f"{SPLIT_NAMES.get(split, split)} pass@1, {'sampled T=' + format(temp, 'g') if mode == 'sampled' else 'greedy'} (%)"
            rows.append([label, *(_pct(rows_data[n][f"{split}/{mode}"]) for n in names)])
    rows.append(["held-out env CE, new families (nats/token, T=1)", *(_num(rows_data[n]["env_ce_heldout"]) for n in names)])
    rows.append(["held-out env CE, new tasks of seen families (T=1)", *(_num(rows_data[n]["env_ce_validation"]) for n in names)])
    eff = {n: rows_data[n]["efficiency"] or {} for n in names}
    rows.append(["turns / episode (validation, sampled)", *(_num(eff[n].get("turns"), ".2f") for n in names)])
    rows.append(["tokens / episode", *(_num(eff[n].get("tokens"), ".0f") for n in names)])
    rows.append(["agent-timeout rate", *(_num(eff[n].get("timeout_rate"), ".1%") for n in names)])
    rows.append(["episodes hitting a turn/token limit", *(_num(eff[n].get("turn_limit_rate"), ".1%") for n in names)])
    rows.append(["steps to best validation (per seed)", *("—" if n == "base" else _list(rows_data[n]["steps_to_best"]) for n in names)])
    rows.append(["collapse alarms (per seed)", *("—" if n == "base" else _list(rows_data[n]["alarms"]) for n in names)])
    rows.append(["rollouts the env term kept, clean-call filter (mean over steps, per seed)",
                 *(_kept(rows_data[n].get("rollouts_kept", [])) for n in names)])
    return ["metric", *table["columns"]], rows


WIDE = 6  # methods beyond which the results table lists one method per row


def results_table(summary: dict[str, Any], cfg: DemoConfig) -> tuple[list[str], list[list[str]]]:
    """:func:`table_rows`, with methods as columns (the paper's layout) or, past :data:`WIDE` methods (a
    sweep), as rows."""
    header, rows = table_rows(summary, cfg)
    if len(header) - 1 <= WIDE:
        return header, rows
    return ["method", *(row[0] for row in rows)], [list(column) for column in zip(*[header[1:], *(r[1:] for r in rows)])]


def against_grpo(summary: dict[str, Any], cfg: DemoConfig) -> tuple[list[str], list[list[str]]]:
    """One row per method compared with GRPO: the paired differences in pass@1 (points, 95% interval) on
    every split and mode, held-out env CE beside GRPO's, and the collapse alarms per seed."""
    rows_data, comps = summary["table"]["rows"], summary["comparisons"]
    labels = dict(zip(summary["table"]["methods"], summary["table"]["columns"]))
    keys = [f"{split}/{mode}" for split in cfg.eval.splits for mode in MODES]
    header = ["method vs GRPO", *(f"Δ {SPLIT_NAMES.get(k.split('/')[0], k)} {k.split('/')[1]}" for k in keys),
              "held-out env CE (GRPO " + _num(rows_data.get("grpo", {}).get("env_ce_heldout")) + ")", "alarms"]
    rows = [[labels[name], *(_diff_text(comp.get(k)) for k in keys), _num(rows_data[name]["env_ce_heldout"]),
             _list(rows_data[name]["alarms"])] for name, comp in comps.items()]
    return header, rows


def _diff_text(diff: dict[str, float] | None) -> str:
    if not diff:
        return "n/a"
    return f"{100 * diff['value']:+.1f} points [{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}]"


def verdict(summary: dict[str, Any], cfg: DemoConfig, method: str = "echo") -> str:
    """One plain sentence per comparison: did ``method`` beat GRPO, with the interval of the difference."""
    comp = summary["comparisons"].get(method)
    rows = summary["table"]["rows"]
    if comp is None or "grpo" not in rows:
        return f"No comparison of {method} with GRPO was run."
    label = dict(zip(summary["table"]["methods"], summary["table"]["columns"]))[method]
    main = comp.get("validation/sampled") or comp.get("validation/greedy")
    key = "validation/sampled" if comp.get("validation/sampled") else "validation/greedy"
    if main is None:
        return f"{label} vs GRPO: no shared validation tasks."
    a, b = rows[method][key], rows["grpo"][key]
    if main["low"] > 0:
        head = f"Yes: {label} beat GRPO at this scale"
    elif main["high"] < 0:
        head = f"No: {label} did worse than GRPO at this scale"
    else:
        head = f"No clear winner: {label} did not beat GRPO beyond noise at this scale"
    seeds = len(rows[method]["seeds"])
    text = (f"{head} — validation pass@1 ({key.split('/')[1]}, {seeds} seed{'s' if seeds != 1 else ''} pooled) "
            f"{100 * a['value']:.1f}% vs {100 * b['value']:.1f}%, difference {_diff_text(main)} "
            f"(95% paired bootstrap over tasks).")
    others = [f"{SPLIT_NAMES.get(k.split('/')[0], k)} {k.split('/')[1]}: {_diff_text(v)}"
              for k, v in comp.items() if k not in (key, "steps_to_grpo_best", "grpo_steps_to_best") and isinstance(v, dict)]
    if others:
        text += " Other splits/modes: " + "; ".join(others) + "."
    ce_m, ce_g = rows[method]["env_ce_heldout"], rows["grpo"]["env_ce_heldout"]
    if ce_m is not None and ce_g is not None:
        text += f" Held-out env CE (new families): {ce_m:.3f} vs GRPO {ce_g:.3f} nats/token"
        base = rows.get("base", {}).get("env_ce_heldout")
        text += f" (base {base:.3f})." if base is not None else "."
    return text


def _timing_rows(timings: dict[str, float], cpu: dict[str, float], budget: float) -> list[list[str]]:
    total = sum(timings.values())
    rows = [[name, f"{seconds:.1f}", f"{cpu.get(name, 0.0):.1f}", f"{100 * seconds / total:.0f}%" if total else "—"]
            for name, seconds in timings.items()]
    rows.append(["total", f"{total:.1f}", f"{sum(cpu.values()):.1f}",
                 f"{'within' if total <= budget else 'OVER'} the {budget:.0f} s budget"])
    return rows


def write_report(cfg: DemoConfig, summary: dict[str, Any], out: Path, *, quick: bool, machine: dict[str, Any]) -> Path:
    """Render ``summary`` into ``out`` (module docstring); return the path of report.md."""
    from echo_rl.report.plots import plot_runs
    from echo_rl.report.runs import load_runs

    out.mkdir(parents=True, exist_ok=True)
    header, rows = results_table(summary, cfg)
    plots: list[tuple[str, str]] = []
    if plot_final(summary, cfg, out / "final_pass.png"):
        plots.append(("final_pass.png", "final pass@1 per method"))
    base_curve = summary["table"]["rows"]["base"]
    base_greedy = (base_curve.get("validation/greedy") or {}).get("value")
    if plot_method_curves(summary, "curve", "Validation pass@1 (greedy) during RL", "pass@1", out / "validation_curve.png",
                           base_greedy):
        plots.append(("validation_curve.png", "validation pass@1 during RL"))
    if plot_method_curves(summary, "env_curve", "Held-out env CE (new families, T=1) during RL", "nats / token",
                           out / "env_ce_curve.png", base_curve.get("env_ce_heldout")):
        plots.append(("env_ce_curve.png", "held-out env CE during RL"))
    if plot_sft(summary, out / "sft.png"):
        plots.append(("sft.png", "SFT curve and checkpoint selection"))
    run_paths = [Path(r["path"]) for r in summary["runs"]]
    curves = plot_runs(load_runs(run_paths), out / "curves") if run_paths and (out / "curves").mkdir(exist_ok=True) is None else {}

    conf = summary["config"]
    sft = summary["sft"]
    prep = summary["prepare"]
    echo_methods = [m for m in summary["table"]["methods"] if m not in ("base", "grpo")]
    blocks: list[Block] = [
        Heading(f"echo-rl demo{' (--quick)' if quick else ''}: ECHO vs GRPO on a 2-core CPU", 1),
        Paragraph(
            f"A tiny Qwen3 ({prep.get('parameters', 0) / 1e6:.2f}M parameters, {conf['model']['num_layers']} layers, "
            f"width {conf['model']['hidden_size']}, byte-level BPE of {prep.get('vocab_size')} ids trained on the corpus' "
            f"transcripts) is fine-tuned on reference-solution transcripts recorded in the sandbox, then trained from the "
            f"same SFT checkpoint and the same seeds ({', '.join(map(str, conf['seeds']))}) with each method for "
            f"{conf['rl_steps']} RL steps of {conf['tasks_per_step']} tasks × {conf['rollouts_per_task']} rollouts "
            f"(lr {conf['lr']:g}, grad clip {conf['grad_clip']:g}, temperature {conf['temperature']:g}; evaluation "
            f"temperature {conf['eval_temperature']:g})."
        ),
        Heading("Did ECHO beat GRPO?"),
        *(Paragraph(verdict(summary, cfg, m)) for m in echo_methods),
        Heading("Results (base → GRPO → ECHO)"),
        Paragraph(
            "Scores in percent with 95% Wilson intervals; each method's seeds are pooled (a task's samples summed over "
            "seeds). Held-out env CE is the cross-entropy (nats/token, temperature 1) of the reference solver's "
            "transcripts — fixed off-policy files recorded once — on tasks of families never trained on, and on unseen "
            "tasks of the training families; mean over seeds. 'steps to best' is the RL step of the best greedy "
            "validation score among the curve evaluations."
        ),
    ]
    arrow = _arrow(summary, cfg)
    if arrow:
        blocks.append(Paragraph(arrow))
    blocks.append(TableBlock(header, rows))
    if summary["comparisons"]:
        blocks += [Heading("Each method against GRPO", 3), Paragraph(
            "Differences in pass@1 in points, with 95% paired-bootstrap intervals over tasks (seeds pooled); an "
            "interval above zero means the method beat GRPO."), TableBlock(*against_grpo(summary, cfg))]
    blocks += [Heading("Methods", 3), TableBlock(["method", "configuration (overrides of run)"], [
        [m["label"], ", ".join(f"{k}={v}" for k, v in m["overrides"].items()) or "—"] for m in conf["methods"]])]
    blocks += [Paragraph(note) for note in filter_notes(summary)]
    per_run_rows = [[r["method"], str(r["seed"]), *(_pct(r["final"].get(f"{s}/{m}")) for s in cfg.eval.splits for m in MODES),
                     _num(r["env_ce_heldout"]), str(steps_to_best(r["curve"])), str(len(r["alarms"]))]
                    for r in summary["runs"]]
    if per_run_rows:
        blocks += [Heading("Per run", 3), TableBlock(
            ["method", "seed", *(f"{SPLIT_NAMES.get(s, s)} {m}" for s in cfg.eval.splits for m in MODES),
             "held-out env CE", "steps to best", "alarms"], per_run_rows)]
    for name, comp in summary["comparisons"].items():
        reach, grpo_best = comp.get("steps_to_grpo_best"), comp.get("grpo_steps_to_best")
        if reach:
            blocks.append(Paragraph(f"{dict(zip(summary['table']['methods'], summary['table']['columns']))[name]}: steps "
                                    f"to reach GRPO's best greedy validation score per seed: {_list(reach)} "
                                    f"(GRPO reached it at {_list(grpo_best)})."))
    alarms = [f"{r['method']} seed {r['seed']}: {a['signal']} fell to {a['value']:.3g} (baseline {a['baseline']:.3g}) "
              f"at step {a['step']}" for r in summary["runs"] for a in r["alarms"]]
    blocks += [Heading("Collapse alarms", 3), *(Paragraph("ALARM " + a) for a in alarms)] if alarms else [
        Heading("Collapse alarms", 3), Paragraph("No collapse alarm fired.")]
    sel = sft["selected"]
    fams = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(sel.get("families", {}).items()))
    blocks += [
        Heading("Starting policy (SFT)"),
        Paragraph(
            f"SFT ran {sft['steps_run']} steps{' and stopped early' if sft['stopped_early'] else ''}; the checkpoint of "
            f"step {sft['selected_step']} was selected: greedy validation pass@1 {100 * sel['pass']:.1f}%, worst "
            f"training family {100 * sel['worst_family']:.0f}% (band {100 * cfg.sft.select.low:.0f}–"
            f"{100 * cfg.sft.select.high:.0f}%, every family ≥ {100 * cfg.sft.select.min_family:.0f}%). Per family: {fams}."
        ),
    ]
    blocks.append(Heading("Plots"))
    blocks += [Image(name, alt) for name, alt in plots]
    blocks += [Image(f"curves/{p.name}", name) for name, p in curves.items()]
    blocks += [
        Heading("Wall time"),
        Paragraph(f"Machine: {machine.get('cpus')} CPUs, load average {machine.get('load_start')} at the start and "
                  f"{machine.get('load_end')} at the end (other processes share the cores: timings scale with it); torch "
                  f"threads {cfg.threads}. Rendering this report comes on top (see timings.json)."),
        TableBlock(["stage", "wall s", "CPU s (this process + sandboxes)", "share of wall"],
                   _timing_rows(summary["timings"], summary.get("cpu_timings", {}), cfg.budget_s)),
    ]
    write_page(blocks, out, "echo-rl demo")
    summary = {**summary, "machine": machine, "table_markdown": to_markdown([TableBlock(header, rows)]),
               "verdicts": {m: verdict(summary, cfg, m) for m in echo_methods}}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    return out / "report.md"


def _arrow(summary: dict[str, Any], cfg: DemoConfig) -> str | None:
    rows, names = summary["table"]["rows"], summary["table"]["methods"]
    labels = dict(zip(names, summary["table"]["columns"]))
    order = [n for n in ("base", "grpo", "echo") if n in rows]
    if len(order) < 2:
        return None
    parts = []
    for split in cfg.eval.splits:
        for mode in MODES:
            values = [rows[n][f"{split}/{mode}"] for n in order]
            if all(values):
                parts.append(f"{SPLIT_NAMES.get(split, split)} pass@1 ({mode}): "
                             + " → ".join(f"{100 * v['value']:.1f}" for v in values))
    return f"Paper-style ({' → '.join(labels[n] for n in order)}): " + "; ".join(parts) if parts else None
