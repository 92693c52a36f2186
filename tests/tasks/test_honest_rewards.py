"""Rewards the agent cannot move (issue 17.5), on both backends: an agent that leaves a FIFO where test.sh
reads, replaces /bin/bash, fills its disk or leaves a fork bomb running scores 0 as a FAILED task (never
``infra_error``, which would drop the episode from its group), and an honest solution still scores 1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import Sandbox
from echo_rl.sandbox.container import ContainerSandbox, final_paths
from echo_rl.sandbox.engine import TOOLS_IMAGE
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.images import build_task_image
from echo_rl.tasks.task import Task
from echo_rl.tasks.verifier import VerifierResult, verify

TEST_SH = """#!/bin/bash
answer=$(cat /home/user/answer.txt 2>/dev/null)
if [ "$answer" = 42 ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt
"""
FAKE_BASH = "#!/bin/sh\nmkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt\n"
HONEST = "echo 42 > /home/user/answer.txt"
FILL = "i=0; while head -c 4M /dev/zero > /tmp/fill$i 2>/dev/null; do i=$((i+1)); done; echo filled $i"
ATTACKS = {
    "fifo where test.sh reads": ["mkfifo /home/user/answer.txt"],
    # root in a container renames over /bin/bash (and env, which starts test.sh); the local sandbox's /usr is
    # read-only, but its /bin link lives in the agent's writable /
    "replaced /bin/bash": [
        f"printf {FAKE_BASH!r} > /tmp/fake && chmod +x /tmp/fake && cp /tmp/fake /tmp/fake-env",
        "{ mv /tmp/fake /usr/bin/bash && mv /tmp/fake-env /usr/bin/env; } 2>/dev/null"
        " || { rm /bin && mkdir /bin && cp /tmp/fake /bin/bash; }",
        "head -c 9 /bin/bash",  # the attack took: checked below
    ],
    "filled disk": [FILL],
    "fork bomb left running": ["(b() { b | b & }; b) >/dev/null 2>&1 &", "sleep 1"],
}


def task() -> Task:
    files = {
        "tests/test.sh": TEST_SH.encode(),
        "environment/setup.sh": b"true\n",
        "environment/Dockerfile": b"FROM debian:bookworm-slim\nRUN mkdir -p /home/user\nWORKDIR /home/user\n",
    }
    config = {"schema_version": "1.1", "environment": {"workdir": "/home/user"}}
    return Task("answer", "Write 42 to answer.txt.\n", config, files, frozenset({"tests/test.sh"}))


class _SmallTmp(ContainerSandbox):
    """A container whose /tmp is a 32 MB tmpfs: a disk the agent can really fill here (overlay on ext4 has
    no size limit)."""

    def _create_args(self) -> dict[str, Any]:
        return {**super()._create_args(), "tmpfs": {"/tmp": "size=32m"}}


async def _open(cfg: SandboxConfig, small_tmp: bool) -> Sandbox:
    if not small_tmp:
        return await open_task_sandbox(task(), cfg, label="test-tasks")
    image = await asyncio.to_thread(build_task_image, task(), cfg, "test-tasks")
    sandbox = _SmallTmp(cfg.model_copy(update={"workdir": "/home/user"}), image=image, label="test-tasks")
    await sandbox.start()
    return sandbox


def run_agent(cfg: SandboxConfig, commands: list[str], small_tmp: bool = False) -> tuple[VerifierResult, list[str]]:
    """The agent's commands in a fresh sandbox of ``task()``, then the verifier (3 s); (result, outputs)."""

    async def main() -> tuple[VerifierResult, list[str]]:
        sandbox = await _open(cfg, small_tmp)
        try:
            outputs = [(await sandbox.exec(command, timeout_s=10)).output for command in commands]
            return await verify(task(), sandbox, 3.0), outputs
        finally:
            await sandbox.stop()

    return asyncio.run(main())


def check(attack: str, result: VerifierResult, outputs: list[str], honest: bool) -> None:
    if attack == "replaced /bin/bash":
        assert outputs[-1].startswith("#!/bin/sh"), outputs  # the agent's own /bin/bash is the fake
    if attack == "filled disk":
        assert "filled" in outputs[0], outputs
    want = (1.0, "solved") if honest else (0.0, "failed")
    assert (result.reward, result.outcome) == want, result


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_final_states_fail_on_the_local_backend(local_cfg, attack):
    cfg = local_cfg.model_copy(update={"storage_mb": 32}) if attack == "filled disk" else local_cfg
    result, outputs = run_agent(cfg, ATTACKS[attack])
    check(attack, result, outputs, honest=False)
    if attack == "fifo where test.sh reads":
        assert "timed out" in result.reason
    if attack == "filled disk":
        assert "no space left" in result.reason or result.reason.startswith(("could not reset", "test.sh")), result


@pytest.mark.container
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_final_states_fail_on_the_container_backend(container_cfg, attack):
    result, outputs = run_agent(container_cfg, ATTACKS[attack], small_tmp=attack == "filled disk")
    check(attack, result, outputs, honest=False)


@pytest.mark.parametrize("backend", ["local", "container"])
def test_an_honest_solution_still_scores_one(backend, request):
    cfg = request.getfixturevalue(f"{backend}_cfg")
    result, _ = run_agent(cfg, [HONEST])
    assert (result.reward, result.outcome) == (1.0, "solved"), result


@pytest.mark.container
@pytest.mark.parametrize("attack", ["fork bomb left running", "filled disk"])
def test_an_honest_solution_survives_a_bomb_or_a_full_tmp_on_the_container_backend(container_cfg, attack):
    """The verifier's container is fresh: what the agent left running or filling does not reach it."""
    result, outputs = run_agent(container_cfg, [HONEST, *ATTACKS[attack]], small_tmp=attack == "filled disk")
    check(attack, result, outputs[1:], honest=True)


def test_final_paths_copy_the_agents_changes_but_not_the_system():
    changes = [
        {"Path": "/", "Kind": 0}, {"Path": "/home", "Kind": 0}, {"Path": "/home/user", "Kind": 0},
        {"Path": "/home/user-b", "Kind": 1}, {"Path": "/home/user/x", "Kind": 1}, {"Path": "/usr/bin/bash", "Kind": 0},
        {"Path": "/etc/ld.so.preload", "Kind": 1}, {"Path": "/var/gone", "Kind": 2}, {"Path": "/var/gone/x", "Kind": 2},
        {"Path": "/tests/test.sh", "Kind": 1},
    ]
    assert final_paths(changes) == (["/home"], ["/var/gone"])


@pytest.mark.parametrize("backend", ["local", "container"])
def test_the_agents_sandbox_keeps_its_files_and_loses_its_processes(backend, request):
    """Verification leaves the agent's sandbox usable (the quality gate verifies twice in one sandbox)."""
    cfg = request.getfixturevalue(f"{backend}_cfg")

    async def main() -> tuple[VerifierResult, str]:
        sandbox = await open_task_sandbox(task(), cfg, label="test-tasks")
        try:
            await sandbox.exec(f"{HONEST}; sleep 1000 >/dev/null 2>&1 &")
            result = await verify(task(), sandbox, 10.0)
            sleepers = ("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done 2>/dev/null"
                        " | grep -c '^sleep 1000'")
            return result, (await sandbox.exec(f"cat answer.txt; {sleepers}")).output
        finally:
            await sandbox.stop()

    result, after = asyncio.run(main())
    assert result.outcome == "solved" and after.split() == ["42", "0"], (result, after)


@pytest.mark.parametrize("backend", ["local", "container"])
def test_a_pth_file_in_the_agents_user_site_does_not_run_in_the_verifier(backend, request):
    """A python3 test.sh (a Harbor task's pytest) would otherwise import the agent's ~/.local .pth file."""
    cfg = request.getfixturevalue(f"{backend}_cfg")
    files = {
        "tests/test.sh": b"#!/bin/bash\npython3 -c pass\n",  # writes no reward: only the .pth file could
        "environment/setup.sh": b"true\n",
        "environment/Dockerfile": f"FROM {TOOLS_IMAGE}\nRUN mkdir -p /home/user\nWORKDIR /home/user\n".encode(),
    }
    pythonic = Task("pth", "Nothing.\n", task().config, files, frozenset({"tests/test.sh"}))
    forge = ("d=$(HOME=/root python3 -c 'import site; print(site.getusersitepackages())') && mkdir -p $d && "
             "echo 'import os; os.makedirs(\"/logs/verifier\", exist_ok=True); "
             "open(\"/logs/verifier/reward.txt\", \"w\").write(\"1\")' > $d/forge.pth")

    async def main() -> VerifierResult:
        sandbox = await open_task_sandbox(pythonic, cfg, label="test-tasks")
        try:
            assert (await sandbox.exec(forge)).exit_code == 0
            return await verify(pythonic, sandbox, 10.0)
        finally:
            await sandbox.stop()

    result = asyncio.run(main())
    assert (result.outcome, result.reason) == ("failed", "test.sh wrote no reward file"), result


@pytest.mark.parametrize("backend", ["local", "container"])
def test_test_runner_files_the_agent_left_in_the_root_do_not_reach_the_verifier(backend, request):
    """``pytest /tests/…`` would load an agent's ``/conftest.py`` (and take ``/pytest.ini`` as its config)."""
    cfg = request.getfixturevalue(f"{backend}_cfg")
    sees = "for f in /conftest.py /pytest.ini; do [ -e $f ] && seen=1; done; echo $((1 - ${seen:-0}))"
    files = {**task().files, "tests/test.sh": f"#!/bin/bash\n{sees} > /logs/verifier/reward.txt\n".encode()}
    probe = Task("runner-files", "Nothing.\n", task().config, files, frozenset({"tests/test.sh"}))

    async def main() -> VerifierResult:
        sandbox = await open_task_sandbox(probe, cfg, label="test-tasks")
        try:
            planted = await sandbox.exec("echo 'import os' > /conftest.py && echo '[pytest]' > /pytest.ini && ls /")
            assert "conftest.py" in planted.output, planted
            return await verify(probe, sandbox, 10.0)
        finally:
            await sandbox.stop()

    result = asyncio.run(main())
    assert result.outcome == "solved", result
