"""Container images of tasks: ``[environment] docker_image`` used as is when a task names one, else the
task's ``environment/`` folder built with the sandbox layer's :func:`~echo_rl.sandbox.engine.build_image`
(cached by content hash, so each distinct environment builds once, within the task's
``build_timeout_sec``): :func:`task_image`, the image a task's container sandbox starts from.

As in Harbor, a task with ``docker_image`` is not built: its Dockerfile (if any) is documentation. The
image must be on the engine; it is pulled only with ``sandbox.pull_images`` (the engine may have no
registry access), so a missing one is a one-line :class:`~echo_rl.errors.UserError` naming the field.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import docker.errors

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.sandbox.engine import build_image, engine_client, has_image
from echo_rl.tasks.settings import DEFAULT_BUILD_TIMEOUT_S
from echo_rl.tasks.task import Task


def build_task_image(task: Task, cfg: SandboxConfig, label: str = "echo-rl") -> str:
    """Build (or find) the image of ``task``'s ``environment/`` folder; returns its tag. Raises
    :class:`~echo_rl.sandbox.base.SandboxError` when the engine or the build fails or times out."""
    with tempfile.TemporaryDirectory(prefix="echo-rl-build-") as tmp:
        context = Path(tmp)
        for rel, data in task.subtree("environment").items():
            path = context / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o755 if f"environment/{rel}" in task.executables else 0o644)
        timeout = task.build_timeout_s or DEFAULT_BUILD_TIMEOUT_S
        return build_image(context, engine=engine_client(cfg), label=label, timeout_s=timeout)


def prebuilt_image(task: Task, cfg: SandboxConfig) -> str:
    """``task``'s ``docker_image``, checked to be on the engine (pulled first with ``sandbox.pull_images``)."""
    image = task.docker_image
    assert image is not None
    client = engine_client(cfg)
    where = f"{task.source}/task.toml" if task.source else f"task {task.name}"
    if has_image(client, image):
        return image
    if cfg.pull_images:
        try:
            client.images.pull(image)
            return image
        except docker.errors.DockerException as err:
            raise UserError(f"environment.docker_image: {image} could not be pulled ({err})", where=where) from None
    raise UserError(f"environment.docker_image: {image} is not on the container engine (echo-rl does not pull "
                    "images unless sandbox.pull_images=true: build or tag it there)", where=where)


async def task_image(task: Task, cfg: SandboxConfig, label: str) -> str:
    """The image ``task``'s container sandbox starts from: its docker_image, else its environment built."""
    if task.docker_image:
        return await asyncio.to_thread(prebuilt_image, task, cfg)
    return await asyncio.to_thread(build_task_image, task, cfg, label)
