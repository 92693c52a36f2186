"""Helpers of the sandbox tests: real bubblewrap and real podman, driven from synchronous tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import psutil
import pytest

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import ExecResult, Sandbox
from echo_rl.sandbox.container import ContainerSandbox
from echo_rl.sandbox.engine import TOOLS_IMAGE, connect
from echo_rl.sandbox.local import LocalSandbox
from echo_rl.sandbox.owner import LABEL_KEY
from echo_rl.sandbox.spawner import Spawner

T = TypeVar("T")
LABEL = "echo-rl-test"
BACKENDS = ["local", "container"]


def small_config(**overrides: Any) -> SandboxConfig:
    """Limits small enough that hostile commands hit them quickly."""
    values: dict[str, Any] = {
        "command_timeout_s": 10,
        "max_output_bytes": 64_000,
        "memory_mb": 512,
        "max_processes": 64,
        "max_file_size_mb": 8,
        "base_image": TOOLS_IMAGE,  # these tests run python3: the base with tools, named as such
    }
    return SandboxConfig(**{**values, **overrides})


class Box:
    """A sandbox plus the loop that drives it, with blocking shortcuts for tests."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sandbox: Sandbox, backend: str):
        self.loop, self.sandbox, self.backend = loop, sandbox, backend

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def exec(self, command: str, timeout_s: float | None = None, **kwargs: Any) -> ExecResult:
        return self.run(self.sandbox.exec(command, timeout_s, **kwargs))

    def ok(self, command: str) -> str:
        """Run a command that must succeed; its output."""
        result = self.exec(command)
        assert result.exit_code == 0 and not result.timed_out, result
        return result.output


def make_sandbox(backend: str, request: pytest.FixtureRequest, **overrides: Any) -> Sandbox:
    """An unstarted sandbox of ``backend`` (container: skipped when no engine can be started)."""
    if backend == "container":
        request.getfixturevalue("container_engine")
        return ContainerSandbox(small_config(**overrides), label=LABEL)
    return LocalSandbox(small_config(**overrides), label=LABEL)


def assert_nothing_left(boxes: list[Box]) -> None:
    """No live child process of this test process, no sandbox directory, no container of ``boxes``."""
    assert not live_children(), f"processes leaked: {live_children()}"
    for box in boxes:
        state_dir = getattr(box.sandbox, "state_dir", None)
        assert state_dir is None or not state_dir.exists(), f"{state_dir} left behind"
        if box.backend == "container":
            ids = {c.id for c in connect().containers.list(all=True, filters={"label": f"{LABEL_KEY}={LABEL}"})}
            assert box.sandbox.container_id not in ids  # type: ignore[attr-defined]


def live_children() -> list[str]:
    """Command lines of the live (non-zombie) descendants of this process, the sandbox spawner's server
    aside (it stays for the process's lifetime; what it started is still counted)."""
    found = []
    spawner = Spawner._shared
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and (spawner is None or proc.pid != spawner.server_pid):
                found.append(" ".join(proc.cmdline()))
        except psutil.Error:
            continue
    return found
