"""Fixtures of the task-layer tests: real sandboxes (bubblewrap), real generated tasks."""

from __future__ import annotations

import pytest

from echo_rl.config import SandboxConfig
from echo_rl.tasks.task import Task


@pytest.fixture
def local_cfg() -> SandboxConfig:
    return SandboxConfig(backend="local")


@pytest.fixture(scope="session")
def container_cfg(container_engine: str) -> SandboxConfig:
    """The container backend on the engine of the shared ``container_engine`` fixture (which sets one up
    with scripts/setup-podman.sh, or skips saying why)."""
    return SandboxConfig(backend="container", engine_url=container_engine)


@pytest.fixture
def make_task():
    """Build a minimal Harbor task: ``make_task(test_sh, setup="true\\n", **{"tests/x.py": b"..."})``."""

    def build(test_sh: str, setup: str = "true\n", name: str = "custom", files: dict[str, bytes] | None = None) -> Task:
        content = {"tests/test.sh": test_sh.encode(), "environment/setup.sh": setup.encode(), **(files or {})}
        config = {"schema_version": "1.1", "environment": {"workdir": "/home/user"}}
        return Task(name, "Do the thing.\n", config, content, frozenset())

    return build
