"""Exported generated tasks build and pass on a base as bare as the real ``debian:bookworm-slim`` (no
python3, git or make): their Dockerfile installs what they run. The stand-in is
``localhost/echo-rl/bookworm-slim`` (debootstrap minbase, made by scripts/setup-podman.sh), since no image
can be pulled here."""

from __future__ import annotations

import asyncio

import pytest

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.engine import BARE_SLIM_IMAGE as STAND_IN
from echo_rl.sandbox.engine import connect
from echo_rl.tasks.families import FAMILIES
from echo_rl.tasks.families.build import TOOLS_PRELUDE, generate
from echo_rl.tasks.harbor import load_task, write_task
from echo_rl.tasks.replay import run_noop, run_oracle


@pytest.fixture(scope="module")
def bare_slim(container_cfg: SandboxConfig) -> SandboxConfig:
    """The container backend, its stand-in (made by setup-podman.sh through ``container_engine``) shown bare."""
    found = connect(container_cfg.engine_url).containers.run(
        STAND_IN, ["bash", "-c", "command -v python3 git make; true"], network_mode="none", remove=True
    )
    assert found.strip() == b"", f"{STAND_IN} is not bare: {found!r}"
    return container_cfg


def test_every_generated_dockerfile_starts_with_the_same_prelude():
    heads = {
        tuple(generate(name, 3, base_image="b:1").files["environment/Dockerfile"].decode().split("\n")[:2])
        for name in FAMILIES}
    assert heads == {("FROM b:1", TOOLS_PRELUDE.rstrip("\n"))}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["python_fix", "make_target", "git_log_find"])
def test_exported_task_builds_and_passes_on_a_bare_slim_base(family, bare_slim, tmp_path):
    exported = load_task(write_task(generate(family, 1, base_image=STAND_IN), tmp_path / family))
    oracle = asyncio.run(run_oracle(exported, bare_slim))
    assert (oracle.outcome, oracle.reward) == ("solved", 1.0), oracle
    assert asyncio.run(run_noop(exported, bare_slim)).outcome == "failed"
