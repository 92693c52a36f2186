"""Container images of tasks: a task's ``environment/`` folder built with the sandbox layer's
:func:`~echo_rl.sandbox.engine.build_image` (cached by content hash, so each distinct environment builds
once), and the :class:`~echo_rl.sandbox.container.ContainerSandbox` that runs it."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.container import ContainerSandbox
from echo_rl.sandbox.engine import build_image
from echo_rl.tasks.task import Task


def build_task_image(task: Task, cfg: SandboxConfig, label: str = "echo-rl") -> str:
    """Build (or find) the image of ``task``'s ``environment/`` folder; returns its tag. Raises
    :class:`~echo_rl.sandbox.base.SandboxError` when the engine or the build fails."""
    with tempfile.TemporaryDirectory(prefix="echo-rl-build-") as tmp:
        context = Path(tmp)
        for rel, data in task.subtree("environment").items():
            path = context / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o755 if f"environment/{rel}" in task.executables else 0o644)
        return build_image(context, engine=cfg.engine_url, label=label)


async def task_sandbox(task: Task, cfg: SandboxConfig, *, allow_network: bool, label: str) -> ContainerSandbox:
    """A (not yet started) container sandbox on ``task``'s image, built first if needed."""
    image = await asyncio.to_thread(build_task_image, task, cfg, label)
    return ContainerSandbox(cfg, image=image, allow_network=allow_network, label=label)
