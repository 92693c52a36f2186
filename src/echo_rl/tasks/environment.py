"""Bring a task's initial state up in a sandbox, for the episode loop, the oracle and the checks.

    sandbox = await open_task_sandbox(task, cfg.sandbox, label="run-3")
    try: ... finally: await stop_after_use(sandbox)

The sandbox comes from the one sandbox factory, :func:`echo_rl.sandbox.make_sandbox`. Local backend: a
fresh sandbox, then the task's ``environment/setup.sh`` runs in its workdir (a task without one cannot run
locally: a one-line :class:`UserError`). Container backend: the task's ``docker_image`` as is, else its
``environment/`` folder built as an image (cached by content), and the sandbox starts from it. Either way the sandbox gets the task's own limits (:func:`~echo_rl.tasks.settings.sandbox_config`);
what the backend cannot apply is said once. Any failure to bring the state up is a :class:`SandboxError`
(an ``infra_error``), and a half-started sandbox is stopped.
"""

from __future__ import annotations

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.sandbox import make_sandbox
from echo_rl.sandbox.base import Sandbox, SandboxError, stop_after_use
from echo_rl.sandbox.notices import notice_once
from echo_rl.tasks.settings import DEFAULT_BUILD_TIMEOUT_S, resolve_env, sandbox_config, task_settings
from echo_rl.tasks.task import DOCKERFILE, Task

SETUP_PATH = "/tmp/echo-rl-setup.sh"


def check_runnable(task: Task, cfg: SandboxConfig) -> None:
    """Raise a one-line :class:`UserError` when ``task`` cannot run on ``cfg``'s backend (or its verifier or
    solution env names a variable echo-rl's environment does not have)."""
    resolve_env(task.verifier_env, "verifier.env", task)
    resolve_env(task.solution_env, "solution.env", task)
    if cfg.backend == "local" and task.setup_script is None:
        raise UserError(
            "has no environment/setup.sh, which the local backend needs (use sandbox.backend=container)",
            where=f"task {task.name}",
        )
    if cfg.backend == "container" and DOCKERFILE not in task.files and not task.docker_image:
        raise UserError("has neither [environment] docker_image nor environment/Dockerfile, one of which the "
                        "container backend needs", where=f"task {task.name}")


async def _setup_local(task: Task, sandbox: Sandbox, cfg: SandboxConfig) -> None:
    await sandbox.upload((task.setup_script or "").encode(), SETUP_PATH)
    timeout = task.build_timeout_s or DEFAULT_BUILD_TIMEOUT_S
    result = await sandbox.exec(
        f"bash {SETUP_PATH}; status=$?; rm -f {SETUP_PATH}; (exit $status)",
        timeout_s=timeout,
        cwd=cfg.workdir,
    )
    if result.timed_out or result.exit_code != 0:
        tail = " | ".join(result.output.strip().splitlines()[-3:])
        raise SandboxError(f"task {task.name}: setup.sh failed (exit {result.exit_code}): {tail}")


async def open_task_sandbox(task: Task, cfg: SandboxConfig, label: str = "echo-rl") -> Sandbox:
    """A started sandbox holding ``task``'s initial state, its shell in the task's workdir. The caller
    stops it. Raises :class:`SandboxError` on infrastructure failure, :class:`UserError` when the task
    cannot run on the configured backend."""
    check_runnable(task, cfg)
    for note in task_settings(task, cfg).not_applied:
        notice_once(f"{cfg.backend} backend: not applied: {note}")
    allow_network = cfg.allow_network and task.allow_internet
    cfg = sandbox_config(task, cfg)
    image = None
    if cfg.backend == "container":
        from echo_rl.tasks.images import task_image

        image = await task_image(task, cfg, label)
    sandbox = make_sandbox(cfg, image=image, allow_network=allow_network, label=label)
    try:
        await sandbox.start()
        if cfg.backend == "local":
            await _setup_local(task, sandbox, cfg)
    except BaseException:
        await stop_after_use(sandbox)  # the start's own error is the one to report
        raise
    return sandbox
