"""The persistent shell on both backends: state, output, exit codes, per-command cwd/env, files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_helpers import Box


def test_state_persists_across_commands(shared: Box):
    shared.ok("cd /tmp && export ECHO_T=42 && greet() { echo \"hi $1\"; } && declare -a arr=(x y z)")
    assert shared.ok('pwd; echo "$ECHO_T"; greet you; echo "${arr[2]}"') == "/tmp\n42\nhi you\nz\n"
    shared.ok(f"cd {shared.sandbox.config.workdir}")


def test_stdout_and_stderr_interleave_in_order(shared: Box):
    assert shared.ok("echo a; echo b >&2; echo c; ls /nonexistent-x 2>&1 | wc -l; echo d >&2") == "a\nb\nc\n1\nd\n"


def test_exit_code_and_failed_cd_keep_the_shell(shared: Box):
    assert shared.exec("false").exit_code == 1
    assert shared.exec("(exit 42)").exit_code == 42
    before = shared.ok("pwd")
    result = shared.exec("cd /no/such/dir")
    assert result.exit_code == 1 and "No such file or directory" in result.output
    assert not result.shell_restarted and shared.ok("pwd") == before


def test_syntax_errors_and_quotes_do_not_break_the_protocol(shared: Box):
    assert shared.exec("echo 'unterminated").exit_code == 2
    assert shared.exec('if then fi').exit_code == 2
    assert shared.ok("echo \"it's\" '\"q\"' $'tab\\there'") == "it's \"q\" tab\there\n"
    assert shared.ok("cat <<'EOF'\nline 1\n  line 2\nEOF") == "line 1\n  line 2\n"


def test_command_reading_stdin_gets_eof(shared: Box):
    assert shared.exec("cat").output == ""
    assert shared.ok('read -r line; echo "rc=$? [$line]"') == "rc=1 []\n"
    result = shared.exec("python3 -c 'input()'")
    assert result.exit_code == 1 and "EOFError" in result.output


def test_ansi_escapes_and_carriage_returns_are_cleaned(shared: Box):
    out = shared.ok(
        r"printf '\033[1;31mred\033[0m plain\n'; printf 'dl 10%%\rdl 100%%\n'; printf '\033]0;title\007t\n'"
    )
    assert out == "red plain\ndl 100%\nt\n"


def test_binary_output_is_replaced_not_fatal(shared: Box):
    result = shared.exec("head -c 20000 /dev/urandom; echo; echo after")
    assert result.exit_code == 0 and result.output.endswith("after\n")
    assert "\ufffd" in result.output
    assert not any(ch in result.output for ch in "\x00\x1b\x07\r")


def test_huge_single_line_is_truncated_in_memory(shared: Box):
    result = shared.exec("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo tail-marker")
    assert result.exit_code == 0 and result.truncated
    assert len(result.output) < shared.sandbox.config.max_output_bytes + 200
    assert result.output.startswith("xxxx") and result.output.endswith("tail-marker\n")
    assert "bytes of output omitted" in result.output


def test_per_command_cwd_and_env_do_not_persist(shared: Box):
    assert shared.exec('pwd; echo "$ONLY_HERE"', cwd="/tmp", env={"ONLY_HERE": "v a'l"}).output == "/tmp\nv a'l\n"
    assert shared.ok('pwd; echo "${ONLY_HERE:-unset}"') == f"{shared.sandbox.config.workdir}\nunset\n"
    assert shared.exec("true", cwd="/no/such").exit_code == 1
    with pytest.raises(ValueError):
        shared.exec("true", env={"BAD-NAME": "x"})


def test_writes_outside_the_sandbox_never_reach_the_host(shared: Box):
    for target in ("/usr/pwned-by-test", "/etc/pwned-by-test", "/root/pwned-by-test", "/var/tmp/../../usr/x-by-test"):
        result = shared.exec(f"echo x > {target}")
        if shared.backend == "local":  # a read-only host tree (a container may write its own layer)
            assert result.exit_code != 0
        assert not Path(target).exists()


def test_network_is_unreachable_by_default(shared: Box):
    probe = "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\""
    result = shared.exec(probe)
    assert result.exit_code == 1 and ("unreachable" in result.output or "timed out" in result.output)
    assert shared.ok("grep -c : /proc/net/dev").strip() == "1"  # the loopback interface only


def test_upload_download_round_trip(shared: Box, tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (tmp_path / "pkg" / "run.sh").chmod(0o755)
    (tmp_path / "pkg" / "sub" / "data.bin").write_bytes(bytes(range(256)))
    shared.run(shared.sandbox.upload(tmp_path / "pkg", "/tmp/up/pkg"))
    shared.run(shared.sandbox.upload(b"raw bytes\n", "/tmp/up/raw.txt"))
    assert shared.ok("/tmp/up/pkg/run.sh; cat /tmp/up/raw.txt") == "ran\nraw bytes\n"
    assert shared.run(shared.sandbox.download("/tmp/up/pkg/sub/data.bin")) == bytes(range(256))
    shared.ok("printf made-inside > /tmp/up/inside.txt; ln -sf inside.txt /tmp/up/link")
    assert shared.run(shared.sandbox.download("/tmp/up/link")) == b"made-inside"
    with pytest.raises(FileNotFoundError):
        shared.run(shared.sandbox.download("/tmp/up/missing"))
    with pytest.raises(IsADirectoryError):
        shared.run(shared.sandbox.download("/tmp/up/pkg"))


def test_verifier_dirs_can_be_emptied_recreated_and_read(shared: Box, tmp_path):
    """What the verifier does (issue 10.2): the agent planted a reward; the verifier wipes /tests and
    /logs/verifier, uploads its tests, runs them, and reads only what they wrote."""
    shared.ok("mkdir -p /logs/verifier /tests && echo 1 > /logs/verifier/reward.txt && echo 'echo 1' > /tests/test.sh")
    shared.run(shared.sandbox.reset_processes())
    shared.ok("rm -rf /tests /logs/verifier && mkdir -p /tests /logs/verifier")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test.sh").write_text("#!/bin/bash\necho 0 > /logs/verifier/reward.txt\n")
    shared.run(shared.sandbox.upload(tmp_path / "tests", "/tests"))
    shared.ok("bash /tests/test.sh")
    assert shared.run(shared.sandbox.download("/logs/verifier/reward.txt")) == b"0\n"
