"""Shared fixtures. Tests run the real components (bubblewrap, podman, tokenizers, transformers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import thread as executor_thread
from dataclasses import dataclass

import pytest

from echo_rl.cpu_kernels import pin

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
pin()  # as the CLI does: the tests' own floats are those of the `echo-rl` processes they start


def _blocking_threads() -> set[threading.Thread]:
    """Live threads the interpreter waits for at exit (not daemon, not an executor's worker, which
    ``concurrent.futures`` stops at exit itself)."""
    return {
        t for t in threading.enumerate()
        if t.is_alive() and not t.daemon and t is not threading.main_thread()
        and getattr(t, "_target", None) is not executor_thread._worker
    }


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """A test must not leave a non-daemon thread running: the test process would never exit (CI would
    hang after the summary). Fails the test that started one, naming it."""
    before = _blocking_threads()
    yield
    left = _blocking_threads() - before
    for thread in left:
        thread.join(5)
    left = {t for t in left if t.is_alive()}
    assert not left, f"threads left running (the process could not exit): {sorted(t.name for t in left)}"


def pytest_unconfigure(config):
    """Exit, failing, rather than hang at interpreter shutdown when a thread was left running anyway."""
    left = _blocking_threads()
    if left:
        sys.stdout.flush()
        sys.stderr.write(f"pytest: threads left running, exiting without waiting: {sorted(t.name for t in left)}\n")
        sys.stderr.flush()
        os._exit(1)


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
