"""``echo-rl tasks``: build, import, inspect and check task corpora.

TASKS arguments name tasks as ``FAMILY:SEED`` or ``FAMILY:FIRST-LAST`` (generated on the fly), a task
folder, a directory of task folders, or a corpus built by ``tasks build`` (``--split`` picks one split).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from echo_rl.cli.common import config_arguments, out_option
from echo_rl.errors import UserError

if TYPE_CHECKING:
    from echo_rl.config import RunConfig
    from echo_rl.tasks.quality import FamilyCheck
    from echo_rl.tasks.task import Task
    from echo_rl.tasks.verifier import VerifierResult


def _config(config_args: tuple[str, ...]) -> RunConfig:
    from echo_rl.configfile import load_config_args

    return load_config_args(config_args)


def _resolve(spec: str, split: str | None, base_image: str | None = None) -> list[Task]:
    from echo_rl.tasks.corpus import resolve_tasks

    tasks, errors = resolve_tasks(spec, split, base_image)
    for error in errors:
        click.echo(f"skipped: {error}", err=True)
    return tasks


split_option = click.option("--split", type=click.Choice(["train", "validation", "test", "heldout"]), help="Corpus split.")


@click.group()
def tasks() -> None:
    """Harbor tasks and procedural task families."""


@tasks.command("list")
@click.argument("source", required=False)
@split_option
def list_command(source: str | None, split: str | None) -> None:
    """List the procedural families, or the tasks of SOURCE."""
    if source is None:
        from echo_rl.tasks.families import FAMILIES

        for fam in sorted(FAMILIES.values(), key=lambda f: (f.domain, f.name)):
            click.echo(f"{fam.name:<16} {fam.domain:<7} {fam.description}")
        return
    for task in _resolve(source, split):
        click.echo(f"{task.name:<28} {task.family or '-':<16} {task.domain or '-':<7} {task.difficulty or '-'}")


@tasks.command()
@click.argument("task")
@click.option("--files", "show_files", is_flag=True, help="Also print every file of the task.")
@config_arguments
def show(task: str, show_files: bool, config_args: tuple[str, ...]) -> None:
    """Print one task: instruction, metadata, what its sandbox gets on the configured backend (image,
    limits, timeouts, verifier and solution settings), reference commands (and with --files, its files)."""
    from echo_rl.tasks.settings import task_settings

    cfg = _config(config_args)
    found = _resolve(task, None)
    if len(found) != 1:
        raise UserError(f"names {len(found)} tasks, expected one", where=task)
    item = found[0]
    click.echo(f"# {item.name}\n\n{item.instruction.rstrip()}\n")
    click.echo(f"metadata: {json.dumps(item.metadata)}")
    for line in task_settings(item, cfg.sandbox).lines():
        click.echo(line)
    for number, command in enumerate(item.reference_commands or [], 1):
        click.echo(f"turn {number}: {command}")
    for path, data in sorted(item.files.items()) if show_files else ():
        click.echo(f"\n--- {path}\n{data.decode(errors='replace').rstrip()}")


@tasks.command()
@config_arguments
@out_option(required=True)
def build(config_args: tuple[str, ...], out: Path) -> None:
    """Write a corpus (train / validation / heldout Harbor folders + index.jsonl) from the procedural
    families, as configured by the `tasks` section ([CONFIG] [tasks.num_train=…])."""
    from echo_rl.tasks.corpus import build_corpus

    cfg = _config(config_args)
    summary = build_corpus(out, cfg.tasks, cfg.sandbox.base_image)
    for split, count in summary.counts.items():
        click.echo(f"{split:<10} {count:>6} tasks  families: {', '.join(summary.families[split])}")
    click.echo(f"near-duplicates dropped: {summary.duplicates_dropped}; index: {out / 'index.jsonl'}")


@tasks.command("import")
@click.argument("source")
@click.option("--base-image", help="intercode-bash: FROM image of the Dockerfiles (default: sandbox.base_image).")
@config_arguments
@out_option(required=True)
def import_command(source: str, base_image: str | None, config_args: tuple[str, ...], out: Path) -> None:
    """Import Harbor tasks from SOURCE: a directory of task folders, OpenThoughts parquet file(s)
    (a task_binary column holding a tar of a task folder), or `intercode-bash` (the 300 InterCode-Bash
    tasks of the icalfa package)."""
    from echo_rl.tasks.intercode import SOURCE_NAME, import_intercode
    from echo_rl.tasks.importer import import_tasks

    if source == SOURCE_NAME:
        summary = import_intercode(out, base_image or _config(config_args).sandbox.base_image)
    else:
        summary = import_tasks(source, out)
    for error in summary.errors:
        click.echo(f"skipped: {error}", err=True)
    click.echo(f"imported {len(summary.imported)} tasks into {out}, skipped {len(summary.errors)}")


@tasks.command()
@click.argument("source")
@split_option
@click.option("--base-image", help="FROM image of generated Dockerfiles (default: sandbox.base_image).")
@config_arguments
@out_option(required=True)
def export(source: str, split: str | None, base_image: str | None, config_args: tuple[str, ...], out: Path) -> None:
    """Write the tasks of SOURCE (e.g. csv_lookup:0-99) as Harbor folders + index.jsonl."""
    from echo_rl.tasks.corpus import export_tasks

    image = base_image or _config(config_args).sandbox.base_image
    found = _resolve(source, split, image)
    export_tasks(found, out)
    click.echo(f"exported {len(found)} tasks to {out}")


def _with_tests(found: list[Task]) -> list[Task]:
    """The tasks of ``found`` that have a verifier; one ``skipped:`` line on stderr for each other one."""
    for task in [t for t in found if not t.has_tests]:
        click.echo(f"skipped: {task.name}: no tests/test.sh (no verifier to run)", err=True)
    return [t for t in found if t.has_tests]


def _verify_all(kind: str, source: str, split: str | None, config_args: tuple[str, ...], out: Path | None,
                concurrency: int) -> None:
    from echo_rl.tasks.replay import run_noop, run_oracle

    cfg = _config(config_args)
    found = _with_tests(_resolve(source, split))
    if kind == "oracle":
        for task in [t for t in found if "solution/solve.sh" not in t.files]:
            click.echo(f"skipped: {task.name}: no solution/solve.sh", err=True)
        found = [t for t in found if "solution/solve.sh" in t.files]
    run = run_oracle if kind == "oracle" else run_noop
    limit = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> VerifierResult:
        async with limit:
            return await run(task, cfg.sandbox, verifier_timeout_s=cfg.episode.verifier_timeout_s)

    async def main() -> list[VerifierResult]:
        return await asyncio.gather(*(one(task) for task in found))

    results = asyncio.run(main())
    rows = []
    for task, result in zip(found, results):
        click.echo(f"{task.name:<28} {result.outcome:<11} {result.reward:g}  {result.reason}")
        rows.append({"name": task.name, "family": task.family, **result.to_dict()})
    counts = {o: sum(r.outcome == o for r in results) for o in ("solved", "failed", "infra_error")}
    click.echo(f"{kind}: {counts['solved']}/{len(found)} solved, {counts['failed']} failed, "
               f"{counts['infra_error']} infra errors")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{kind}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


concurrency_option = click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1),
                                  help="Sandboxes at once.")


@tasks.command()
@click.argument("source")
@split_option
@concurrency_option
@config_arguments
@out_option()
def oracle(source: str, split: str | None, concurrency: int, config_args: tuple[str, ...], out: Path | None) -> None:
    """Run each task's solution/solve.sh in a fresh sandbox and verify (should be solved)."""
    _verify_all("oracle", source, split, config_args, out, concurrency)


@tasks.command()
@click.argument("source")
@split_option
@concurrency_option
@config_arguments
@out_option()
def noop(source: str, split: str | None, concurrency: int, config_args: tuple[str, ...], out: Path | None) -> None:
    """Verify each task's untouched initial state (should fail)."""
    _verify_all("noop", source, split, config_args, out, concurrency)


@tasks.command()
@click.option("--seeds", default=200, show_default=True, type=click.IntRange(1), help="Seeds per family.")
@click.option("--families", help="Comma-separated families (default: all).")
@concurrency_option
@config_arguments
def check(seeds: int, families: str | None, concurrency: int, config_args: tuple[str, ...]) -> None:
    """Quality gates per family over SEEDS seeds: the reference solution replayed turn by turn passes the
    verifier, the untouched state fails, generation is deterministic; near-duplicates are counted.
    Exits 1 when a gate fails."""
    from echo_rl.tasks.families import FAMILIES, generate
    from echo_rl.tasks.quality import check_families, dedup

    cfg = _config(config_args)
    names = families.split(",") if families else sorted(FAMILIES, key=lambda n: (FAMILIES[n].domain, n))
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise UserError(f"--families: unknown family {unknown[0]!r}")
    click.echo(f"{'family':<16} {'domain':<7} {'oracle':>9} {'no-op':>9} {'infra':>5} {'determ':>6} "
               f"{'gen ms/task':>11} {'verify s':>8}")

    def line(c: FamilyCheck) -> None:
        click.echo(f"{c.family:<16} {c.domain:<7} {c.oracle_passed:>4}/{c.seeds:<4} {c.noop_passed:>4}/{c.seeds:<4} "
                   f"{c.infra_errors:>5} {'ok' if not c.nondeterministic else 'NO':>6} "
                   f"{1000 * c.generate_s / c.seeds:>11.2f} {c.verify_s:>8.1f}")

    start = time.perf_counter()
    results = asyncio.run(check_families(names, range(seeds), cfg.sandbox, concurrency=concurrency,
                                         verifier_timeout_s=cfg.episode.verifier_timeout_s, progress=line))
    wall = time.perf_counter() - start
    total = sum(c.seeds for c in results)
    generate_s, verify_s = sum(c.generate_s for c in results), sum(c.verify_s for c in results)
    click.echo(f"tasks: {total}; generation {generate_s:.1f} s ({1000 * generate_s / total:.1f} s per 1,000); "
               f"sandbox + no-op verify + reference replay + verify {verify_s:.1f} s wall at concurrency "
               f"{concurrency} ({1000 * verify_s / total:.1f} s per 1,000); total {wall:.1f} s")
    start = time.perf_counter()
    _, dropped = dedup(generate(name, seed) for name in names for seed in range(seeds))
    click.echo(f"near-duplicates: {len(dropped)} of {total} (threshold 0.9, {time.perf_counter() - start:.1f} s)")
    failed = [c for c in results if not c.ok]
    for c in failed:
        for failure in c.failures[:3]:
            click.echo(f"  {failure}")
    if failed:
        click.echo(f"FAILED gates: {', '.join(c.family for c in failed)}")
        raise click.exceptions.Exit(1)
    click.echo(f"all gates passed ({len(results)} families)")


@tasks.command("filter")
@click.argument("source")
@split_option
@click.option("--model", help="Checkpoint directory, 'tiny' or 'smollm2-135m' (default: policy.model).")
@click.option("-k", "attempts", type=click.IntRange(1), default=16, show_default=True, help="Attempts per task.")
@click.option("--min-solved", type=click.IntRange(1), default=1, show_default=True)
@concurrency_option
@config_arguments
@out_option(required=True)
def filter_command(
    source: str,
    split: str | None,
    model: str | None,
    attempts: int,
    min_solved: int,
    concurrency: int,
    config_args: tuple[str, ...],
    out: Path,
) -> None:
    """Keep the tasks of SOURCE that a policy solves in at least MIN_SOLVED of K attempts (the paper's
    solvability filter). Any policy backend works: policy.backend=openai with policy.endpoint evaluates a
    served model. Writes the kept tasks to OUT as Harbor folders + index.jsonl, and OUT/filter.json."""
    from echo_rl.cli.rollout import run_with_progress
    from echo_rl.models.load import resolve_checkpoint
    from echo_rl.train.session import resolve_model_spec
    from echo_rl.rundir import atomic_write_text
    from echo_rl.tasks.corpus import export_tasks
    from echo_rl.tasks.quality import solvability_filter

    cfg = _config(config_args)
    if model is not None:
        cfg.policy.model = model
    cfg.policy.model = resolve_model_spec(cfg.policy.model)  # a run directory: its latest checkpoint
    if cfg.policy.backend != "openai":
        resolve_checkpoint(cfg.policy.model)
    found = _with_tests(_resolve(source, split, cfg.sandbox.base_image))
    if not found:
        raise UserError("no tasks with tests found", where=source)
    trajectories = run_with_progress(cfg, found, attempts, None, concurrency, out)
    solved: dict[str, list[bool]] = {task.name: [] for task in found}
    infra = 0
    for trajectory in trajectories:
        if trajectory.valid:
            solved[trajectory.task_id].append(trajectory.outcome == "solved")
        else:
            infra += 1
    report = asyncio.run(solvability_filter(found, lambda task: solved[task.name], min_solved=min_solved))
    export_tasks(report.kept, out)
    summary = {"kept": len(report.kept), "dropped": len(report.dropped), "infra_errors_excluded": infra,
               "attempts": report.attempts}
    atomic_write_text(out / "filter.json", json.dumps(summary, indent=1))
    click.echo(f"kept {len(report.kept)} of {len(found)} tasks ({infra} infra-error attempts excluded) -> {out}")
