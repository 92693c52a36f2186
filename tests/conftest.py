"""Shared fixtures. Tests run the real components (bubblewrap, podman, tokenizers, transformers)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """Run ``echo-rl ARGS…`` as a real subprocess (what a user types); returns a :class:`CliResult`."""

    def invoke(*args: str, cwd: str | None = None, timeout: float = 600) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "echo_rl", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return invoke


def _engine_not_ready() -> str | None:
    """Why the container engine cannot serve the tests as it is (None: it can)."""
    import docker.errors

    from echo_rl.sandbox.base import SandboxError
    from echo_rl.sandbox.engine import BARE_SLIM_IMAGE, TOOLS_IMAGE, connect

    try:
        client = connect()
    except SandboxError as err:
        return str(err)
    for image in (TOOLS_IMAGE, BARE_SLIM_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            return f"no image {image}"
    return None


@pytest.fixture(scope="session")
def container_engine() -> str:
    """The Docker API URL of a running container engine, set up by ``scripts/setup-podman.sh`` (podman,
    the debootstrapped base images, the API socket) where needed; skips with the reason when none can run."""
    from pathlib import Path

    from echo_rl.sandbox.base import SandboxError
    from echo_rl.sandbox.engine import connect, engine_url

    first_reason = _engine_not_ready()
    if first_reason is None:
        return engine_url()
    script = Path(__file__).resolve().parents[1] / "scripts" / "setup-podman.sh"
    if os.geteuid() != 0:
        pytest.skip(f"no container engine ({first_reason}) and not root to run {script.name}")
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"no container engine: {script.name} failed: {proc.stderr.strip().splitlines()[-1:]}")
    url = proc.stdout.strip().splitlines()[-1].partition("=")[2]
    os.environ.setdefault("DOCKER_HOST", url)
    try:
        connect(url)
    except SandboxError as err:
        pytest.skip(f"no container engine: {err}")
    return url
