"""``echo-rl rollout``: run episodes and write trajectories; ``rollout show`` views them."""

from __future__ import annotations

import click


@click.group()
def rollout() -> None:
    """Run a policy on tasks and inspect the trajectories."""
