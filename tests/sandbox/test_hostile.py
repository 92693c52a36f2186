"""Hostile input is normal input: each case ends within its timeout with a sensible result, the sandbox
stays usable (or says it restarted its shell), the host is untouched and nothing leaks (the ``fresh``
fixture fails the test if a process, directory or container of the sandbox survives ``stop``)."""

from __future__ import annotations

import asyncio
import time


def test_command_that_never_returns_is_killed_and_shell_kept(fresh):
    box = fresh()
    box.ok("export KEPT=yes; cd /tmp")
    result = box.exec("echo started; sleep 1000", timeout_s=1)
    assert result.timed_out and result.exit_code == -1 and not result.shell_restarted
    assert result.output.startswith("started\n")
    assert box.ok('echo "$KEPT"; pwd') == "yes\n/tmp\n"
    assert "sleep 1000" not in box.ok("ps -eo args")


def test_busy_builtin_loop_restarts_the_shell(fresh):
    box = fresh()
    box.ok("echo kept > /tmp/file")
    result = box.exec("while :; do :; done", timeout_s=1)
    assert result.timed_out and result.shell_restarted and result.exit_code == -1
    assert box.ok("cat /tmp/file") == "kept\n"  # the filesystem survives a restart


def test_endless_output_is_capped_and_stopped(fresh):
    box = fresh()
    result = box.exec("yes", timeout_s=1.5)
    assert result.timed_out and result.truncated
    assert len(result.output.encode()) < box.sandbox.config.max_output_bytes + 200
    assert result.output.startswith("y\ny\n")
    assert box.ok("echo still-here") == "still-here\n"


def test_fork_bomb_is_contained(fresh):
    box = fresh(max_processes=48)
    started = time.monotonic()
    result = box.exec(":(){ :|:& };:; sleep 2; echo survived", timeout_s=4)
    assert time.monotonic() - started < 15
    assert result.exit_code != 0 or result.timed_out or "survived" in result.output
    box.run(box.sandbox.reset_processes())
    assert box.ok("echo ok") == "ok\n"
    assert int(box.ok("ps -e --no-headers | wc -l")) <= 5


def test_memory_hog_fails_without_harming_the_sandbox(fresh):
    box = fresh(memory_mb=256)
    result = box.exec("python3 -c 'b = bytearray(1 << 30); print(len(b))'", timeout_s=20)
    assert result.exit_code != 0 and not result.timed_out
    assert "MemoryError" in result.output or result.exit_code == 137
    assert box.ok("echo ok") == "ok\n"


def test_file_size_and_cpu_time_limits(fresh):
    box = fresh(max_file_size_mb=1, cpu_time_s=1)
    big = box.exec("head -c 3000000 /dev/zero > /tmp/big")
    assert big.exit_code != 0 and int(box.ok("stat -c %s /tmp/big")) <= 1024 * 1024
    spin = box.exec("python3 -c 'while True: pass'", timeout_s=20)
    assert not spin.timed_out and spin.exit_code != 0  # SIGXCPU / SIGKILL after 1 s of CPU


def test_background_processes_die_on_reset_and_stop(fresh):
    box = fresh()
    box.ok("(while :; do echo tick > /tmp/ticker; sleep 0.05; done) & sleep 1000 & nohup sleep 999 >/dev/null 2>&1 &")
    # background jobs may not have exec'd yet on a loaded machine: wait until both sleeps run
    box.ok("for i in $(seq 200); do ps -eo args | grep -q '^sleep 1000' && ps -eo args | grep -q '^sleep 999' && break; sleep 0.05; done")
    assert "sleep 1000" in box.ok("ps -eo args")
    box.run(box.sandbox.reset_processes())
    assert "sleep 10" not in box.ok("ps -eo args") and "sleep 99" not in box.ok("ps -eo args")
    box.ok("rm /tmp/ticker; sleep 0.3")
    assert box.exec("test -e /tmp/ticker").exit_code == 1, "the background writer survived the reset"
    box.ok("setsid sleep 1001 >/dev/null 2>&1 < /dev/null & disown")
    # stop() (by the fixture) must kill the daemonised sleep as well: checked by the leak assertion


def test_background_output_goes_to_the_next_command(fresh):
    box = fresh()
    assert box.ok("(sleep 0.2; echo late) &") == ""
    time.sleep(0.5)
    assert box.ok("echo now") == "late\nnow\n"


def test_exit_and_self_kill_restart_the_shell(fresh):
    box = fresh()
    box.ok("echo persisted > /tmp/f; export GONE=1")
    result = box.exec("echo bye; exit 7")
    assert result.output == "bye\n" and result.exit_code == 7 and result.shell_restarted
    assert box.ok('cat /tmp/f; echo "${GONE:-gone}"') == "persisted\ngone\n"
    result = box.exec("kill -9 $$")
    assert result.shell_restarted and not result.timed_out
    assert box.ok("echo alive") == "alive\n"
    result = box.exec("exec >/dev/null", timeout_s=1)  # the shell stops answering: restarted
    assert result.shell_restarted
    assert box.ok("echo back") == "back\n"


def test_shell_killed_between_commands_is_replaced(fresh):
    box = fresh()
    box.ok("(sleep 0.2; kill -9 $$) >/dev/null 2>&1 &")
    time.sleep(0.6)
    result = box.exec("echo fine")
    assert result.output == "fine\n" and result.exit_code == 0 and result.shell_restarted


def test_forged_end_marker_cannot_end_a_command_early(fresh):
    box = fresh()
    result = box.exec(r"printf '\036deadbeefdeadbeefe0\037'; sleep 0.2; echo real-end; exit 3")
    assert result.exit_code == 3 and result.output.endswith("real-end\n")


def test_killing_what_commands_started_spares_the_shell(fresh):
    """The timeout kill takes everything started since a command began; a shell started in that same
    clock tick (1/100 s) must survive it. Killing 'since boot' is the extreme case."""
    box = fresh()
    box.ok("export STILL=here; sleep 1000 >/dev/null 2>&1 &")
    assert box.run(box.sandbox._kill_started_since(0)) >= 1
    result = box.exec('echo "$STILL"; ps -eo args | grep -c "^sleep 1000"')
    assert result.output.splitlines()[-2:] == ["here", "0"] and not result.shell_restarted


def test_exec_cancelled_mid_command_leaves_a_working_sandbox(fresh):
    """An agent timeout cancels exec() while a command runs: the next exec gets a fresh shell."""
    box = fresh()

    async def cancelled() -> None:
        try:
            await asyncio.wait_for(box.sandbox.exec("sleep 1000"), 0.5)
        except TimeoutError:
            return
        raise AssertionError("exec was not cancelled")

    box.run(cancelled())
    result = box.exec("echo ok; ps -eo args | grep -c '^sleep 1000'")
    assert result.output == "ok\n0\n" and result.shell_restarted
