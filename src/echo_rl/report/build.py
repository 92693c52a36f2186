"""``echo-rl report``: compare runs side by side, with plots.

Writes into ``out``: ``report.md``, ``report.html``, one PNG per plot and ``summary.json`` (the table as
data). Runs appear in the order given; list the base/GRPO run before the ECHO runs to get the paper's
base → GRPO → ECHO layout.
"""

from __future__ import annotations

import json
from pathlib import Path

from echo_rl.eval.results import unverified_notes
from echo_rl.report.plots import plot_runs
from echo_rl.report.render import (
    Block,
    Heading,
    Image,
    Paragraph,
    TableBlock,
    write_page,
)
from echo_rl.report.runs import RunData, load_runs
from echo_rl.report.tables import (
    MODES,
    SPLITS,
    arrow_line,
    comparison_table,
    family_table,
)
from echo_rl.rundir import atomic_write_text


def _ks(runs: list[RunData]) -> list[str]:
    found = set()
    for run in runs:
        for result in run.evals:
            for modes in result.get("scores", {}).values():
                for summary in modes.values():
                    found.update(summary.get("pass", {}))
    return sorted(found, key=int) or ["1"]


def _alarm_blocks(runs: list[RunData]) -> list[Block]:
    lines = [
        f"{run.label}: {alarm['signal']} fell to {alarm['value']:.3g} (baseline {alarm['baseline']:.3g}) at step {alarm['step']}"
        for run in runs
        for alarm in run.alarms
    ]
    if not lines:
        return [Heading("Collapse alarms"), Paragraph("No collapse alarm fired.")]
    return [Heading("Collapse alarms"), *(Paragraph("ALARM " + line) for line in lines)]


def build_blocks(runs: list[RunData], plots: dict[str, Path]) -> list[Block]:
    header, rows = comparison_table(runs, _ks(runs))
    blocks: list[Block] = [
        Heading("echo-rl report", 1),
        Paragraph("Runs: " + "; ".join(f"{run.label} — {run.path}" for run in runs)),
        Heading("Comparison (base → GRPO → ECHO)"),
        Paragraph(
            "Scores in percent with 95% intervals (Wilson for pass@1, bootstrap over tasks for pass@k); "
            "infra_error episodes are excluded from every denominator and counted beside the score. "
            "'base' is the starting policy (step 0 evaluation); other columns are each run's last evaluation. "
            "Tasks without tests/test.sh have no verifier: they are never scored (pass@k n/a), only counted. A "
            "verifier-free (env_only) run logs no training reward; its env term learns only from the rollouts its "
            "clean-tool-call filter kept."
        ),
    ]
    blocks += [Paragraph(line) for split in SPLITS if (line := arrow_line(runs, split))]
    blocks.append(TableBlock(header, rows))
    for run in runs:
        blocks += [Paragraph(f"{run.label}: {note}") for note in unverified_notes(run.final_eval() or {"scores": {}})]
    for split, split_name in SPLITS.items():
        for mode in MODES:
            fam_header, fam_rows = family_table(runs, split, mode)
            if fam_rows:
                blocks += [Heading(f"pass@1 per family — {split_name} ({mode})", 3), TableBlock(fam_header, fam_rows)]
    blocks += _alarm_blocks(runs)
    blocks.append(Heading("Curves"))
    blocks += [Image(path.name, name) for name, path in plots.items()]
    return blocks


def build_report(run_paths: list[Path], out: Path) -> Path:
    """Write the report for ``run_paths`` into ``out``; return the path of report.md."""
    runs = load_runs(run_paths)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_runs(runs, out)
    blocks = build_blocks(runs, plots)
    write_page(blocks, out, "echo-rl report")
    header, rows = comparison_table(runs, _ks(runs))
    summary = {"runs": [str(run.path) for run in runs], "table": {"header": header, "rows": rows}}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return out / "report.md"
