"""``echo-rl sandbox``: drop into or run a command in the sandbox an agent would get."""

from __future__ import annotations

import click


@click.group()
def sandbox() -> None:
    """Sandboxed terminals: interactive shell, one-off commands, garbage collection."""
