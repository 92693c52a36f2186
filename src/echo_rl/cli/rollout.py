"""``echo-rl rollout``: run episodes and write trajectories; ``rollout show`` views them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from echo_rl.cli.common import config_arguments, out_option
from echo_rl.errors import UserError

if TYPE_CHECKING:
    from echo_rl.config import RunConfig
    from echo_rl.rollout.trajectory import Trajectory
    from echo_rl.tasks.task import Task

TRAJECTORIES = "trajectories.jsonl"


@click.group()
def rollout() -> None:
    """Run a policy on tasks and inspect the trajectories."""


def run_with_progress(
    cfg: RunConfig, tasks: list[Task], samples: int, temperature: float | None, concurrency: int | None, out: Path
) -> list[Trajectory]:
    """Run ``samples`` episodes of every task with the policy ``cfg.policy`` describes, showing a progress
    bar with the outcome counts; trajectories come back in task order, ``samples`` per task."""
    from rich.progress import TextColumn

    from echo_rl.harness.chat import ChatFormat
    from echo_rl.rollout.episode import EpisodeRunner, group_requests, run_episodes
    from echo_rl.rollout.transcript_file import stamp_tokenizer
    from echo_rl.train.policy_sync import load_policy
    from echo_rl.train.progress import counting_bar
    from echo_rl.train.session import run_label

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    policy, tokenizer = load_policy(cfg)
    chat = ChatFormat.from_config(tokenizer, cfg.harness)
    runner = EpisodeRunner(policy, chat, cfg, temperature=temperature, label=run_label(out))
    requests = group_requests(tasks, samples)
    outcomes: dict[str, int] = {}
    with counting_bar(TextColumn("{task.fields[outcomes]}")) as progress:
        bar = progress.add_task("episodes", total=len(requests), outcomes="")

        def done(trajectory: Trajectory) -> None:
            outcomes[trajectory.outcome] = outcomes.get(trajectory.outcome, 0) + 1
            summary = " ".join(f"{key}={value}" for key, value in sorted(outcomes.items()))
            progress.update(bar, advance=1, outcomes=summary)

        trajectories = run_episodes(runner, requests, concurrency=concurrency, on_done=done)
    policy.close()
    stamp_tokenizer(trajectories, chat)  # lets the file be scored (env CE) or imitated (SFT) later
    return trajectories


@rollout.command()
@config_arguments
@click.option(
    "--tasks",
    "tasks_spec",
    required=True,
    help="Task folder, directory of tasks, corpus, or FAMILY:SEED / FAMILY:FIRST-LAST.",
)
@click.option("--split", type=click.Choice(["train", "validation", "test", "heldout"]), help="Corpus split.")
@click.option("--model", help="Checkpoint directory, 'tiny' or 'smollm2-135m' (default: policy.model).")
@click.option("-n", "samples", type=int, default=4, show_default=True, help="Episodes per task.")
@click.option("--temperature", type=float, help="Sampling temperature (default: sampling.temperature).")
@click.option("--concurrency", type=int, help="Episodes at once (default: sandbox.pool_size).")
@out_option(required=True)
def run(
    config_args: tuple[str, ...],
    tasks_spec: str,
    split: str | None,
    model: str | None,
    samples: int,
    temperature: float | None,
    concurrency: int | None,
    out: Path,
) -> None:
    """Run N episodes per task and write OUT/trajectories.jsonl (+ config.yaml)."""
    from echo_rl.configfile import load_config_args
    from echo_rl.models.load import resolve_checkpoint
    from echo_rl.train.session import resolve_model_spec
    from echo_rl.rollout.trajectory import save_trajectories
    from echo_rl.rundir import RunDir
    from echo_rl.tasks.corpus import resolve_tasks

    cfg = load_config_args(config_args)
    if model is not None:
        cfg.policy.model = model
    if samples < 1:
        raise UserError(f"-n {samples}: must be at least 1")
    cfg.policy.model = resolve_model_spec(cfg.policy.model)  # a run directory: its latest checkpoint
    resolve_checkpoint(cfg.policy.model)
    tasks, errors = resolve_tasks(tasks_spec, split)
    for error in errors:
        click.echo(f"skipped: {error}", err=True)
    if not tasks:
        raise UserError("no tasks found", where=tasks_spec)
    run_dir = RunDir.create(out)
    run_dir.write_config(cfg)
    trajectories = run_with_progress(cfg, tasks, samples, temperature, concurrency, out)
    for trajectory in trajectories:
        trajectory.meta["model"] = cfg.policy.model
    save_trajectories(out / TRAJECTORIES, trajectories)
    solved = sum(t.outcome == "solved" for t in trajectories)
    unverified = sum(t.outcome == "unverified" for t in trajectories)
    gap = f", {unverified} unverified (no tests/test.sh)" if unverified else ""
    click.echo(f"{len(trajectories)} episodes, {solved} solved{gap} -> {out / TRAJECTORIES}")


@rollout.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--model", help="Tokenizer to decode with (default: the model recorded in the file).")
@click.option("--index", "indices", type=int, multiple=True, help="Show only these trajectories (0-based).")
def show(file: Path, model: str | None, indices: tuple[int, ...]) -> None:
    """Print the trajectories of FILE colour-coded by token role."""
    from echo_rl.rollout.trajectory import load_trajectories

    trajectories = load_trajectories(file)
    bad = [i for i in indices if not 0 <= i < len(trajectories)]
    if bad:
        raise UserError(f"--index {bad[0]}: the file has {len(trajectories)} trajectories", where=str(file))
    chosen = [trajectories[i] for i in indices] if indices else trajectories
    spec = model or next((t.meta["model"] for t in chosen if "model" in t.meta), None)
    if spec is None:
        raise UserError("the file names no model to decode with: pass --model", where=str(file))

    from echo_rl.models.load import load_tokenizer
    from echo_rl.rollout.view import show as show_trajectories

    show_trajectories(chosen, load_tokenizer(spec))
