"""``echo-rl demo``: the main job — a tiny end-to-end reproduction of the paper on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

import click

from echo_rl.cli.common import config_arguments, out_option


@click.command()
@config_arguments
@out_option(default="runs/demo")
@click.option("--quick", is_flag=True, help="A smaller version (under 3 minutes).")
def demo(config_args: tuple[str, ...], out: Path, quick: bool) -> None:
    """Run the whole study at small scale and write a report."""
    from echo_rl.demo import run_demo

    run_demo(config_args, out, quick=quick)
