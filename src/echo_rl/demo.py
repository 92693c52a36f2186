"""The main job: a tiny end-to-end ECHO study on a laptop CPU (placeholder until the demo issue lands).

For now it resolves the demo config, creates the run directory and writes the config dump, so that the
README's first command runs end to end on a fresh machine.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from echo_rl.config import load_config_args
from echo_rl.rundir import RunDir


def run_demo(config_args: tuple[str, ...], out: Path, *, quick: bool = False) -> None:
    cfg = load_config_args(config_args)
    run = RunDir.create(out)
    run.write_config(cfg)
    Console().print(f"[bold]echo-rl demo[/bold]: config written to {run.config} (quick={quick})")
