"""What only the container backend has: image builds cached by content, engine settings, labels, errors."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from sandbox_helpers import LABEL, Box, small_config

from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.container import ContainerSandbox
from echo_rl.sandbox.engine import build_image, connect
from echo_rl.sandbox.owner import LABEL_KEY, OWNER_KEY, Owner

pytestmark = pytest.mark.container


def _context(tmp_path, marker: str):
    (tmp_path / "Dockerfile").write_text(
        f"FROM debian:bookworm-slim\nRUN mkdir -p /app && echo {marker} > /app/marker\nWORKDIR /app\n"
    )
    return tmp_path


def test_image_is_built_once_per_content_hash(container_engine, tmp_path):
    (tmp_path / "a").mkdir()
    context = _context(tmp_path / "a", "one")
    tag = build_image(context, label=LABEL)
    image = connect().images.get(tag)
    assert image.labels.get(LABEL_KEY) == LABEL
    assert build_image(context, label=LABEL) == tag and connect().images.get(tag).id == image.id
    (tmp_path / "b").mkdir()
    assert build_image(_context(tmp_path / "b", "two"), label=LABEL) != tag


def test_concurrent_builds_of_one_context_agree(container_engine, tmp_path):
    context = _context(tmp_path, "concurrent")

    async def many() -> list[str]:
        return await asyncio.gather(*(asyncio.to_thread(build_image, context, label=LABEL) for _ in range(4)))

    assert len(set(asyncio.run(many()))) == 1


def _build_containers() -> set[str]:
    """Containers of the engine's storage, build-time ones included (podman lists them with --external)."""
    if shutil.which("podman") is None:
        return set()
    listed = subprocess.run(["podman", "ps", "-a", "--external", "-q"], capture_output=True, text=True, check=True)
    return set(listed.stdout.split())


def test_broken_dockerfile_is_a_sandbox_error_and_leaves_no_build_container(container_engine, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN exit 3\n")
    before = _build_containers()
    with pytest.raises(SandboxError, match="failed"):
        build_image(tmp_path, label=LABEL)
    assert _build_containers() <= before, "the failed step's container (and its mount) was left behind"
    with pytest.raises(SandboxError, match="no Dockerfile"):
        build_image(tmp_path / "missing")


def test_task_image_settings_and_labels(container_engine, tmp_path, loop):
    tag = build_image(_context(tmp_path, "settings"), label=LABEL)
    config = small_config(workdir="/app", cpus=0.5, memory_mb=300)
    box = Box(loop, ContainerSandbox(config, image=tag, label=LABEL), "container")
    box.run(box.sandbox.start())
    try:
        assert box.ok("pwd; cat marker") == "/app\nsettings\n"
        attrs = connect().containers.get(box.sandbox.container_id).attrs
        host = attrs["HostConfig"]
        assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 300 * 1024 * 1024
        assert host["NetworkMode"] == "none" and host["PidsLimit"] == config.max_processes
        labels = attrs["Config"]["Labels"]
        assert labels[LABEL_KEY] == LABEL and Owner.from_tag(labels[OWNER_KEY]) == Owner.current()
    finally:
        box.run(box.sandbox.stop())
    assert box.sandbox.container_id is None


def test_missing_image_and_missing_engine_are_sandbox_errors(container_engine, loop):
    with pytest.raises(SandboxError, match="not available"):
        loop.run_until_complete(ContainerSandbox(small_config(), image="echo-rl-none:missing", label=LABEL).start())
    bad = small_config(engine_url="unix:///nonexistent/engine.sock")
    with pytest.raises(SandboxError, match="no container engine"):
        loop.run_until_complete(ContainerSandbox(bad, label=LABEL).start())
