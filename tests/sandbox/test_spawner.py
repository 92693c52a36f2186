"""The sandbox spawner: launchers start from a small helper process that runs as the sandboxes' host user;
exit statuses and launch errors come back; a spawner that dies takes its sandboxes with it, is replaced,
and the sandboxes' shells restart through the new one."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import psutil
import pytest

from sandbox_helpers import LABEL, Box, assert_nothing_left, small_config
from echo_rl.sandbox import procs
from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.local import LocalSandbox
from echo_rl.sandbox.spawner import NOBODY, Spawner


def test_exit_statuses_and_launch_errors_come_back():
    async def scenario() -> None:
        spawner = Spawner.shared()
        read, write = os.pipe()
        try:
            exits = await spawner.spawn(["sh", "-c", "exit 7"], {"PATH": "/usr/bin:/bin"}, stdin=read, stdout=write)
            killed = await spawner.spawn(["sleep", "30"], {"PATH": "/usr/bin:/bin"}, stdin=read, stdout=write)
            os.kill(killed, signal.SIGKILL)
            assert (await spawner.wait(exits), await spawner.wait(killed)) == (7, -signal.SIGKILL)
            with pytest.raises(SandboxError, match="no-such-launcher"):
                await spawner.spawn(["/nonexistent/no-such-launcher"], {}, stdin=read, stdout=write)
        finally:
            os.close(read)
            os.close(write)

    asyncio.run(scenario())


def started(argument: str, timeout_s: float = 5.0) -> list[int]:
    """The pids of the processes with ``argument``, once there are any: a job put in the background with
    ``&`` may not have exec'd yet when the command that started it returns."""
    deadline = time.monotonic() + timeout_s
    while not (found := procs.with_argument(argument)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="the drop to nobody happens only for host root")
def test_as_root_every_sandbox_process_runs_as_nobody_on_the_host(loop):
    box = Box(loop, LocalSandbox(small_config(), label=LABEL), "local")
    box.run(box.sandbox.start())
    try:
        box.ok("sleep 4323 >/dev/null 2>&1 &")
        (sleeper,) = started("sleep\x004323")
        chain = [psutil.Process(sleeper), *psutil.Process(sleeper).parents()]
        inside = chain[: [p.pid for p in chain].index(Spawner.shared().server_pid)]  # up to the spawner
        assert inside and all(set(p.uids()) == {NOBODY} for p in inside), [(p.name(), p.uids()) for p in inside]
        assert any(p.name() == "bwrap" for p in inside)
    finally:
        box.run(box.sandbox.stop())
    assert_nothing_left([box])


def test_a_dead_spawner_takes_its_sandboxes_along_and_is_replaced(loop):
    box = Box(loop, LocalSandbox(small_config(), label=LABEL), "local")
    box.run(box.sandbox.start())
    try:
        box.ok("cd /tmp && sleep 4324 >/dev/null 2>&1 &")
        sleeper = started("sleep\x004324")
        assert sleeper
        old = Spawner.shared()
        os.kill(old.server_pid, signal.SIGKILL)
        # the sleep dies with the sandbox's pid namespace, and so does its shell: then the next exec restarts it
        assert not box.run(procs.wait_gone(sleeper, 5)), "sandbox outlived its spawner"
        result = box.exec("echo back; pwd")
        assert result.shell_restarted and result.output.startswith("back\n")
        assert Spawner.shared() is not old and Spawner.shared().alive
        other = Box(loop, LocalSandbox(small_config(), label=LABEL), "local")
        other.run(other.sandbox.start())
        assert other.ok("echo fresh") == "fresh\n"
        other.run(other.sandbox.stop())
    finally:
        box.run(box.sandbox.stop())
    assert_nothing_left([box])
