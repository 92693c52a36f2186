"""``echo-rl train``, ``echo-rl sft`` and ``echo-rl eval``."""

from __future__ import annotations

from pathlib import Path

import click

from echo_rl.cli.common import config_arguments, out_option
from echo_rl.config import load_config_args
from echo_rl.rundir import RunDir


@click.command()
@config_arguments
@out_option(required=True)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out.")
def train(config_args: tuple[str, ...], out: Path, resume: bool) -> None:
    """RL training: GRPO, ECHO or env-only (objective.algorithm)."""
    cfg = load_config_args(config_args)
    RunDir.create(out).write_config(cfg)
    raise click.ClickException("train: not implemented yet")


@click.command()
@config_arguments
@out_option(required=True)
def sft(config_args: tuple[str, ...], out: Path) -> None:
    """Expert-demonstration SFT (loss on action tokens; optional env loss)."""
    cfg = load_config_args(config_args)
    RunDir.create(out).write_config(cfg)
    raise click.ClickException("sft: not implemented yet")


@click.command("eval")
@config_arguments
@out_option(required=True)
def eval_command(config_args: tuple[str, ...], out: Path) -> None:
    """Evaluate a policy: pass@k per family and split, held-out env CE, efficiency."""
    cfg = load_config_args(config_args)
    RunDir.create(out).write_config(cfg)
    raise click.ClickException("eval: not implemented yet")
