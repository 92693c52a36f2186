"""``echo-rl report RUN [RUN …]``: plots and a side-by-side table of runs."""

from __future__ import annotations

from pathlib import Path

import click

from echo_rl.cli.common import out_option


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@out_option()
def report(runs: tuple[Path, ...], out: Path | None) -> None:
    """Write a markdown/HTML report comparing RUNS (base → GRPO → ECHO); default --out: FIRST_RUN/report."""
    from echo_rl.report import build_report

    path = build_report(list(runs), out or runs[0] / "report")
    click.echo(f"report written to {path} (and report.html beside it)")
