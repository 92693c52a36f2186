"""Options shared by subcommands: ``[CONFIG] [key.sub=value …]`` and ``--out DIR``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def config_arguments(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``[CONFIG] [key.sub=value …]``: an optional YAML file followed by dotted overrides
    (resolved by :func:`echo_rl.configfile.load_config_args`)."""
    return click.argument("config_args", nargs=-1, metavar="[CONFIG] [KEY.SUB=VALUE]...")(func)


def out_option(default: str | None = None, required: bool = False) -> Callable[..., Any]:
    """Add ``--out DIR``, the run directory every result-writing command takes."""
    return click.option(
        "--out",
        "out",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        required=required,
        show_default=default is not None,
        help="Run directory to write results into.",
    )
