"""``echo-rl tasks``: build, import, inspect and check task corpora."""

from __future__ import annotations

import click


@click.group()
def tasks() -> None:
    """Harbor tasks and procedural task families."""
