"""What only the local backend has: namespaces and privileges, the unshare fallback, the host-backed root
and its symlink-safe file access, the state directory's name."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sandbox_helpers import LABEL, Box, assert_nothing_left, small_config
from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.local import LocalSandbox, find_launcher
from echo_rl.sandbox.owner import Owner


@pytest.fixture(params=["bwrap", "unshare"])
def local_box(request, loop):
    box = Box(loop, LocalSandbox(small_config(), label=LABEL, launcher=request.param), "local")
    box.run(box.sandbox.start())
    yield box
    box.run(box.sandbox.stop())
    assert_nothing_left([box])


def test_isolation_and_privileges(local_box: Box):
    out = local_box.ok("id -u; hostname; grep CapEff /proc/self/status; ps -e --no-headers | wc -l; echo $HOME; pwd")
    uid, hostname, caps, nprocs, home, cwd = out.split("\n")[:6]
    assert uid == "1000" and hostname == "sandbox" and caps.split()[1] == "0000000000000000"
    assert int(nprocs) <= 4, "own pid namespace: only the sandbox's processes are visible"
    assert home == "/home/user" and cwd == "/home/user"
    assert local_box.exec("cat /etc/shadow").exit_code != 0
    assert local_box.exec("touch /etc/x-test").exit_code != 0
    assert local_box.ok("touch /tmp/a /var/tmp/b /tests/c /logs/d /newdir-test && echo ok") == "ok\n"
    assert not Path("/newdir-test").exists()


def test_same_persistence_under_unshare_and_bwrap(local_box: Box):
    local_box.ok("cd /tmp; f() { echo f$1; }; export V=1")
    assert local_box.ok("pwd; f 2; echo $V") == "/tmp\nf2\n1\n"


def test_state_dir_is_labelled_and_owned(loop):
    box = Box(loop, LocalSandbox(small_config(), label="run-label-x"), "local")
    box.run(box.sandbox.start())
    try:
        state_dir = box.sandbox.state_dir
        assert state_dir is not None and state_dir.name.startswith("run-label-x.")
        label, owner = Owner.from_dir_name(state_dir.name)
        assert label == "run-label-x" and owner.pid == os.getpid() and owner.is_alive()
    finally:
        box.run(box.sandbox.stop())
    assert not state_dir.exists()


def test_symlinks_planted_by_the_agent_cannot_reach_host_files(local_box: Box):
    passwd = Path("/etc/passwd").read_bytes()
    local_box.ok("ln -s /etc/passwd ~/to-passwd; ln -s / ~/to-root; ln -s /etc/shadow ~/to-shadow")
    local_box.run(local_box.sandbox.upload(b"owned\n", "/home/user/to-passwd"))
    local_box.run(local_box.sandbox.upload(b"owned\n", "/home/user/to-root/etc/x-planted-test"))
    assert Path("/etc/passwd").read_bytes() == passwd and not Path("/etc/x-planted-test").exists()
    assert local_box.ok("cat ~/to-passwd") == "owned\n"  # the link itself was replaced
    with pytest.raises(FileNotFoundError):
        local_box.run(local_box.sandbox.download("/home/user/to-shadow"))


def test_read_only_areas_refuse_uploads(local_box: Box):
    with pytest.raises(ValueError, match="read-only"):
        local_box.run(local_box.sandbox.upload(b"x", "/usr/bin/evil"))
    assert local_box.run(local_box.sandbox.download("/etc/hostname")) == Path("/etc/hostname").read_bytes()


def test_network_when_allowed(loop):
    box = Box(loop, LocalSandbox(small_config(), allow_network=True, label=LABEL), "local")
    box.run(box.sandbox.start())
    try:
        assert int(box.ok("grep -c : /proc/net/dev")) > 1, "the host's interfaces are visible"
    finally:
        box.run(box.sandbox.stop())


def test_missing_launcher_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxError, match="bubblewrap"):
        find_launcher()
    with pytest.raises(SandboxError, match="bubblewrap"):
        asyncio.run(LocalSandbox(label=LABEL).start())


def test_exec_before_start_and_after_stop_are_errors(loop):
    sandbox = LocalSandbox(small_config(), label=LABEL)
    with pytest.raises(SandboxError):
        loop.run_until_complete(sandbox.exec("true"))
    loop.run_until_complete(sandbox.start())
    loop.run_until_complete(sandbox.stop())
    loop.run_until_complete(sandbox.stop())  # idempotent
    with pytest.raises(SandboxError):
        loop.run_until_complete(sandbox.exec("true"))
