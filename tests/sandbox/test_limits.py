"""Limits that hold for the whole sandbox, not per process: total memory, processes, CPU quota, storage,
capabilities and no-new-privileges, on each backend where the machine allows them (the limit that this
machine cannot apply is skipped with the reason the sandbox layer gives, never faked)."""

from __future__ import annotations

import pytest

from echo_rl.config import DEFAULT_CAPABILITIES
from echo_rl.sandbox import cgroups, statefs

# Bit numbers of the capabilities in /proc/PID/status masks (linux/capability.h).
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
            "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18, "SYS_ADMIN": 21}
COUNT_PROCS = "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n"  # builtins only: works during a bomb


def needs_local_cgroups(box) -> None:
    if box.backend == "local" and not cgroups.probe().available:
        pytest.skip(f"no cgroups for local sandboxes here: {cgroups.probe().reason}")


def status_field(box, name: str) -> str:
    return box.ok(f"grep '^{name}:' /proc/self/status").split()[1]


def test_memory_of_the_whole_sandbox_is_capped(fresh):
    """Six processes of 150 MB each stay under the per-process address-space limit (256 MB) but not under
    the sandbox's 256 MB total: the cap kills some, and the sandbox stays usable."""
    box = fresh(memory_mb=256)
    needs_local_cgroups(box)
    hog = "python3 -c 'x = bytearray(150 << 20); import time; time.sleep(2); print(\"held\" + \"-on\")'"
    result = box.exec(f"for i in 1 2 3 4 5 6; do {hog} & done; wait", timeout_s=40)
    assert not result.timed_out
    assert result.output.count("held-on") < 6 and "Killed" in result.output
    if box.backend == "local":
        assert box.sandbox.cgroup.oom_kills() >= 1
    assert box.ok("echo ok") == "ok\n"


def test_fork_bomb_is_capped_by_the_sandbox_pids_limit(fresh):
    box = fresh(max_processes=32)
    needs_local_cgroups(box)
    result = box.exec(f"bomb() {{ bomb | bomb & }}; bomb; sleep 1; {COUNT_PROCS}", timeout_s=6)
    counts = [int(word) for word in result.output.split() if word.isdigit()]
    assert counts and counts[-1] <= 32 + 2  # +2: the engine's init and the shell's own exec helper
    if box.backend == "local":
        limit_file = next(d for d in box.sandbox.cgroup.dirs if (d / "pids.max").exists()) / "pids.max"
        assert limit_file.read_text().strip() == "32"
    box.run(box.sandbox.reset_processes())
    assert box.ok("echo ok") == "ok\n"


def test_cpu_quota_by_default(fresh):
    box = fresh()  # the default config: 1 CPU
    needs_local_cgroups(box)
    if box.backend == "local":
        cpu = [d for d in box.sandbox.cgroup.dirs if (d / "cpu.cfs_quota_us").exists() or (d / "cpu.max").exists()]
        if not cpu:
            pytest.skip("no cpu controller for local sandboxes here")
        quota = (cpu[0] / "cpu.cfs_quota_us") if (cpu[0] / "cpu.cfs_quota_us").exists() else (cpu[0] / "cpu.max")
        assert quota.read_text().split()[0] == "100000"
    else:
        inside = box.ok("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max")
        assert inside.strip() == "100000"


def test_disk_filler_is_stopped_by_the_storage_limit(fresh):
    box = fresh(storage_mb=48, max_file_size_mb=8)  # many files under the per-file limit, more than 48 MB
    if box.backend == "local" and statefs.can_bound() is not None:
        pytest.skip(statefs.can_bound())
    if box.backend == "container" and not box.sandbox.storage_limited:
        pytest.skip("this engine's storage driver cannot size containers (podman overlay needs xfs with pquota)")
    result = box.exec("for i in $(seq 12); do head -c 8000000 /dev/zero > /tmp/fill$i || break; done; "
                      "du -sm /tmp | cut -f1", timeout_s=30)
    assert "No space left on device" in result.output
    assert int(result.output.split()[-1]) <= 48
    assert box.ok("rm -f /tmp/fill*; echo ok") == "ok\n"


def test_capabilities_are_dropped_and_no_new_privileges(fresh):
    box = fresh()
    assert status_field(box, "NoNewPrivs") == "1"
    effective, bounding = int(status_field(box, "CapEff"), 16), int(status_field(box, "CapBnd"), 16)
    if box.backend == "local":
        assert effective == 0  # the sandbox user holds no capability
        return
    wanted = sum(1 << CAP_BITS[name] for name in DEFAULT_CAPABILITIES)
    assert effective == wanted and bounding == wanted
    # what root in a task still needs works; what it does not keep fails
    assert box.ok("touch /tmp/f && chown nobody /tmp/f && stat -c %U /tmp/f") == "nobody\n"
    assert box.ok("setpriv --reuid=nobody --regid=nogroup --clear-groups id -un") == "nobody\n"
    assert box.exec("chroot / true").exit_code != 0  # SYS_CHROOT dropped


def test_container_capabilities_follow_the_config(fresh):
    box = fresh(cap_add=[], no_new_privileges=False)
    if box.backend == "local":
        pytest.skip("capabilities are a container setting")
    assert int(status_field(box, "CapEff"), 16) == 0
    assert status_field(box, "NoNewPrivs") == "0"


def test_an_unsupported_storage_limit_is_said_once(fresh, caplog):
    import echo_rl.sandbox.container as container
    import echo_rl.sandbox.notices as notices

    box = fresh()
    if box.backend == "local" or box.sandbox.storage_limited:
        pytest.skip("the storage limit applies here")
    container._NO_STORAGE_LIMIT.clear()
    notices._said.clear()
    with caplog.at_level("WARNING", logger="echo_rl.sandbox"):
        fresh()
        fresh()
    assert caplog.text.count("container sandbox: no storage limit (storage_mb)") == 1
