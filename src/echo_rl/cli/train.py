"""``echo-rl train``, ``echo-rl sft`` and ``echo-rl eval``.

Each checks everything (config, tasks, model, tokenizer, output directory) before it writes anything
into ``--out``; under ``torchrun`` every rank runs the same command and rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

import click

from echo_rl.cli.common import config_arguments, out_option
from echo_rl.configfile import load_config_args


@click.command()
@config_arguments
@out_option()
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out.")
@click.option("--plan", is_flag=True, help="Print the per-rank memory plan of this run and exit (writes nothing).")
@click.option("--world-size", type=click.IntRange(min=1), default=None,
              help="With --plan: ranks to plan for (default: WORLD_SIZE, or 1).")
@click.option("--device-memory-gb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --plan: device memory per rank in GiB; exit 2 when the plan does not fit.")
def train(config_args: tuple[str, ...], out: Path | None, resume: bool, plan: bool, world_size: int | None,
          device_memory_gb: float | None) -> None:
    """RL training: GRPO, ECHO or env-only (objective.algorithm)."""
    cfg = load_config_args(config_args)
    if plan:
        from echo_rl.train.memplan import print_plan

        print_plan(cfg, world_size=world_size, device_memory_gb=device_memory_gb, echo=click.echo)
        return
    if out is None:
        raise click.UsageError("Missing option '--out'.")
    from echo_rl.train.trainer import train as run_training

    click.echo(f"run written to {run_training(cfg, out, resume=resume)}", err=True)


@click.command()
@config_arguments
@out_option(required=True)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out.")
def sft(config_args: tuple[str, ...], out: Path, resume: bool) -> None:
    """Expert-demonstration SFT (loss on action tokens; optional env loss)."""
    from echo_rl.train.sft import sft as run_sft

    cfg = load_config_args(config_args)
    click.echo(f"run written to {run_sft(cfg, out, resume=resume)}", err=True)


@click.command("eval")
@config_arguments
@out_option(required=True)
def eval_command(config_args: tuple[str, ...], out: Path) -> None:
    """Evaluate a policy: pass@k per family and split, held-out env CE, efficiency."""
    from echo_rl.cli.evaluate import evaluate_policy

    cfg = load_config_args(config_args)
    report, notes = evaluate_policy(cfg, out)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"evaluation written to {report}", err=True)
