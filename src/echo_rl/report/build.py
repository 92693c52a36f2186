"""``echo-rl report``: compare runs side by side, with plots.

Runs whose configs differ only in name and seed are one arm (:func:`echo_rl.report.arms.group_runs`): its
scores pool the seeds by a hierarchical bootstrap and show each seed's value. Writes into ``out``:
``report.md``, ``report.html``, one PNG per figure and ``summary.json`` (the table as data). Arms appear in
the order given; list the base/GRPO run before the ECHO runs to get the paper's base → GRPO → ECHO layout.
"""

from __future__ import annotations

import json
from pathlib import Path

from echo_rl.report.arms import SPLITS, Arm, Comparisons, cells, compare_with_reference, group_runs, primary_split
from echo_rl.report.dynamics import WINDOW, dynamics_table
from echo_rl.report.plots import plot_arms
from echo_rl.report.render import Block, Heading, Image, Paragraph, TableBlock, write_page
from echo_rl.report.runs import load_runs
from echo_rl.report.tables import Table, arrow_line, comparison_table, difference_table, family_table, transpose
from echo_rl.report.verdict import verdicts
from echo_rl.rundir import atomic_write_text

METHOD_NOTE = (
    "Scores in percent with 95% intervals from a bootstrap that resamples seeds, then tasks within a seed (a "
    "task's samples are not independent), never narrower than the pooled Wilson interval; with several seeds "
    "each seed's own value and their standard deviation follow. infra_error episodes are excluded from every "
    "denominator and counted beside the score. Tasks without tests/test.sh have no verifier: they are never "
    "scored (pass@k n/a), only counted."
)


def alarm_blocks(arms: list[Arm]) -> list[Block]:
    lines = [
        f"{run.label}: {alarm['signal']} fell to {alarm['value']:.3g} (baseline {alarm['baseline']:.3g}) at step "
        f"{alarm['step']}" for arm in arms for run in arm.runs for alarm in run.alarms
    ]
    if not lines:
        return [Heading("Collapse alarms", 3), Paragraph("No collapse alarm fired.")]
    return [Heading("Collapse alarms", 3), *(Paragraph("ALARM " + line) for line in lines)]


def comparison_blocks(comparisons: Comparisons | None, splits: list[str]) -> list[Block]:
    """The paired-difference table with its multiplicity note (nothing without a comparison)."""
    if comparisons is None or not comparisons.items:
        return []
    return [Heading(f"Each arm against {comparisons.reference.label}", 3), Paragraph(
        f"Differences in pass@1 in points (arm − {comparisons.reference.label}) on the same tasks and seeds. "
        + comparisons.note()), TableBlock(*difference_table(comparisons, splits))]


def dynamics_blocks(arms: list[Arm]) -> list[Block]:
    """The training dynamics table (:mod:`echo_rl.report.dynamics`), nothing when no arm was trained."""
    table = dynamics_table(arms)
    if table is None:
        return []
    return [Heading("Training dynamics (the mechanism)", 3), Paragraph(
        f"From each run's step records, means over seeds. First → last: the mean over the first and over the last "
        f"{WINDOW} steps (half the run when shorter). The env CE of its own rollouts is that of each step's "
        "training rollouts (the env term's targets, trained on or not); zero-advantage groups are those whose "
        "rollouts all scored alike (no policy signal). Gradient norms are unweighted, measured on the gradient "
        "probe's steps (objective.grad_probe_every; — where a run did not probe), with λ effective and the ratio "
        "of the weighted env gradient to the policy gradient under it."), TableBlock(*table)]


def answer_blocks(answers: dict[str, str]) -> list[Block]:
    """The plain answers (:func:`echo_rl.report.verdict.verdicts`) under their question; nothing without any."""
    return [Heading("Did ECHO beat GRPO?"), *(Paragraph(text) for text in answers.values())] if answers else []


def family_blocks(arms: list[Arm], splits: list[str]) -> list[Block]:
    blocks: list[Block] = []
    for split, mode in cells(arms, splits):
        header, rows = family_table(arms, split, mode)
        if rows:
            blocks += [Heading(f"pass@1 per family — {SPLITS.get(split, split)} ({mode})", 3), TableBlock(header, rows)]
    return blocks


def result_blocks(arms: list[Arm], splits: list[str], comparisons: Comparisons | None, note: str,
                  ks: tuple[int, ...] = (1,)) -> tuple[list[Block], Table]:
    """What every report shows of the comparison, with its table as data (summary.json): :data:`METHOD_NOTE`
    and ``note``, one arrow line per split, the table (methods as columns; efficiency on the test split when it
    was evaluated), each arm's tasks without a verifier, the paired differences, the training dynamics, pass@1
    per family, alarms."""
    table = comparison_table(arms, splits, ks, primary=primary_split(arms))
    return [
        Paragraph(f"{METHOD_NOTE} {note}"),
        *(Paragraph(line) for split in splits if (line := arrow_line(arms, split))),
        TableBlock(*transpose(table)),
        *(Paragraph(f"{arm.label}: {text}") for arm in arms for r in arm.finals[-1:] for text in r.unverified_notes()),
        *comparison_blocks(comparisons, splits),
        *dynamics_blocks(arms),
        *family_blocks(arms, splits),
        *alarm_blocks(arms),
    ], table


def build_blocks(arms: list[Arm], plots: dict[str, Path], splits: list[str]) -> tuple[list[Block], Table]:
    """The blocks of ``echo-rl report``'s page, and its table as data."""
    found = compare_with_reference(arms, splits)
    results, table = result_blocks(arms, splits, found, (
        "'base' is the starting policy (step 0 evaluation); other columns are each run's last evaluation. A "
        "verifier-free (env_only) run logs no training reward; its env term learns only from the rollouts its "
        "clean-tool-call filter kept."), ks_of(arms))
    return [
        Heading("echo-rl report", 1),
        Paragraph("Runs: " + "; ".join(f"{run.label} — {run.path}" for arm in arms for run in arm.runs)),
        *answer_blocks(verdicts(arms, found, primary_split(arms))),
        Heading("Comparison (base → GRPO → ECHO)"), *results,
        Heading("Curves"), *(Image(path.name, name) for name, path in plots.items()),
    ], table


def ks_of(arms: list[Arm]) -> tuple[int, ...]:
    found = {k for arm in arms for r in arm.finals for modes in r.scores.values() for s in modes.values() for k in s.passes}
    return tuple(sorted(found)) or (1,)


def build_report(run_paths: list[Path], out: Path) -> Path:
    """Write the report for ``run_paths`` into ``out``; return the path of report.md."""
    runs = load_runs(run_paths)
    arms = group_runs(runs)
    base = next((run.base_eval() for run in runs if run.train and run.base_eval()), None)
    if base is not None:
        arms.insert(0, Arm("base", "base", [base]))
    splits = list(SPLITS)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_arms(arms, splits, out, base)
    blocks, (header, rows) = build_blocks(arms, plots, splits)
    write_page(blocks, out, "echo-rl report")
    summary = {"runs": [str(run.path) for run in runs], "table": {"header": header, "rows": rows}}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return out / "report.md"
