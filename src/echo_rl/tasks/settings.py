"""A task's Harbor settings resolved against the run's sandbox configuration, for one backend.

    cfg = sandbox_config(task, run_cfg.sandbox)      # the SandboxConfig a task's sandbox gets
    env = resolve_env(task.verifier_env, "verifier.env", task)
    settings = task_settings(task, run_cfg.sandbox)  # what `echo-rl tasks show` prints

Meaning as in Harbor's task model: ``[environment] cpus / memory_mb / storage_mb`` are the limits of the
task's sandbox (they win over ``sandbox.*``, which are the defaults for tasks that set none);
``docker_image`` is a prebuilt image used as is; ``[verifier] env`` / ``[solution] env`` are variables
for test.sh / solve.sh whose values may be templates ``${VAR}`` or ``${VAR:-default}`` resolved from
echo-rl's own environment when they run; ``[verifier] user`` runs test.sh as that user (None: the
image's user).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.tasks.task import Task

DEFAULT_BUILD_TIMEOUT_S = 600.0  # Harbor's default for build_timeout_sec
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve_env(values: dict[str, str], name: str, task: Task) -> dict[str, str]:
    """``values`` with each ``${VAR}`` / ``${VAR:-default}`` replaced from this process's environment; a
    variable that is unset and has no default is a one-line :class:`UserError` naming the field."""

    def substitute(key: str, match: re.Match[str]) -> str:
        variable, default = match[1], match[2]
        if variable in os.environ:
            return os.environ[variable]
        if default is not None:
            return default
        raise UserError(f"{name}.{key}: ${{{variable}}} is not set in echo-rl's environment", where=_where(task))

    return {key: _TEMPLATE.sub(lambda m, key=key: substitute(key, m), value) for key, value in values.items()}


def _where(task: Task) -> str:
    return f"{task.source}/task.toml" if task.source else f"task {task.name}"


def sandbox_config(task: Task, cfg: SandboxConfig) -> SandboxConfig:
    """``cfg`` with the task's own limits (``cpus``, ``memory_mb``, ``storage_mb``) and work dir."""
    update: dict[str, object] = {key: value for key, value in task.resources.items()}
    if "memory_mb" in update:
        update["memory_mb"] = max(1, round(float(update["memory_mb"])))  # type: ignore[arg-type]
    if "storage_mb" in update:
        update["storage_mb"] = max(1, round(float(update["storage_mb"])))  # type: ignore[arg-type]
    if task.workdir:
        update["workdir"] = task.workdir
    return cfg.model_copy(update=update)


@dataclass(frozen=True)
class TaskSettings:
    """What a task's sandbox, image build, agent and verifier get on one backend; ``not_applied`` names the
    task settings that backend cannot honour (the sandbox layer adds the machine's own, see
    :func:`echo_rl.sandbox.limits.host_notes`)."""

    backend: str
    image: str
    cpus: float | None
    memory_mb: int
    storage_mb: int
    max_processes: int
    workdir: str
    network: bool
    build_timeout_s: float
    agent_timeout_s: float | None
    verifier_timeout_s: float | None
    verifier_user: str | int | None
    verifier_env: dict[str, str] = field(default_factory=dict)
    solution_env: dict[str, str] = field(default_factory=dict)
    not_applied: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable ``key: value`` lines (env values as written: templates are not resolved)."""
        cpus = "no quota" if self.cpus is None else f"{self.cpus:g}"
        out = [
            f"backend: {self.backend}",
            f"image: {self.image}",
            f"limits: cpus {cpus}, memory {self.memory_mb} MB, storage {self.storage_mb} MB, "
            f"processes {self.max_processes}",
            f"workdir: {self.workdir}; network: {'on' if self.network else 'off'}",
            f"timeouts: build {self.build_timeout_s:g} s, agent {_seconds(self.agent_timeout_s)}, "
            f"verifier {_seconds(self.verifier_timeout_s)}",
            f"verifier: user {self.verifier_user if self.verifier_user is not None else '(the image user)'}, "
            f"env {_env(self.verifier_env)}",
            f"solution: env {_env(self.solution_env)}",
        ]
        return out + [f"not applied: {note}" for note in self.not_applied]


def _seconds(value: float | None) -> str:
    return "(run default)" if value is None else f"{value:g} s"


def _env(values: dict[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in values.items()) or "(none)"


def image_of(task: Task, backend: str) -> str:
    """Where the task's sandbox comes from, in words."""
    if backend == "local":
        return "this machine's /usr and /etc, then environment/setup.sh (local backend)"
    if task.docker_image:
        return f"{task.docker_image} (docker_image, used as is)"
    return "built from environment/Dockerfile"


def task_settings(task: Task, cfg: SandboxConfig) -> TaskSettings:
    """The settings ``task`` gets on ``cfg.backend`` (see :class:`TaskSettings`)."""
    resolved = sandbox_config(task, cfg)
    not_applied = []
    if cfg.backend == "local":
        if task.docker_image:
            not_applied.append(f"docker_image {task.docker_image}: the local backend runs environment/setup.sh "
                               "on this machine's tools")
        if task.verifier_user is not None:
            not_applied.append(f"verifier.user {task.verifier_user}: the local sandbox has one user")
    return TaskSettings(
        backend=cfg.backend,
        image=image_of(task, cfg.backend),
        cpus=resolved.cpus,
        memory_mb=resolved.memory_mb,
        storage_mb=resolved.storage_mb,
        max_processes=resolved.max_processes,
        workdir=resolved.workdir,
        network=cfg.allow_network and task.allow_internet,
        build_timeout_s=task.build_timeout_s or DEFAULT_BUILD_TIMEOUT_S,
        agent_timeout_s=task.agent_timeout_s,
        verifier_timeout_s=task.verifier_timeout_s,
        verifier_user=task.verifier_user,
        verifier_env=task.verifier_env,
        solution_env=task.solution_env,
        not_applied=not_applied,
    )
