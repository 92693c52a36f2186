"""``echo-rl sandbox exec|shell|gc`` as a user types them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_exec_prints_the_result_as_json(cli):
    result = cli("sandbox", "exec", "--timeout", "5", "--", "echo", "hi; echo err >&2; exit 3")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["output"] == "hi\nerr\n" and payload["exit_code"] == 3
    assert set(payload) == {"output", "exit_code", "timed_out", "truncated", "duration_s", "shell_restarted"}


@pytest.mark.container
def test_exec_in_a_container(cli, container_engine):
    result = cli("sandbox", "exec", "--backend", "container", "--workdir", "/srv/w", "--", "pwd; id -u")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["output"] == "/srv/w\n0\n"


@pytest.mark.parametrize("backend", ["local", "container"])
def test_shell_runs_what_the_person_types(backend, request):
    if backend == "container":
        request.getfixturevalue("container_engine")
    proc = subprocess.run(
        [sys.executable, "-m", "echo_rl", "sandbox", "shell", "--backend", backend],
        input="cd /tmp && echo typed-$((6*7)) && pwd\nexit 5\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 5, proc.stderr
    assert "typed-42\n/tmp\n" in proc.stdout


def test_engine_failure_is_one_line_exit_2(cli, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = cli("sandbox", "exec", "--backend", "container", "--", "true")
    assert result.code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("echo-rl: error: sandbox: no container engine answers at unix:///nonexistent")


def test_gc_reports_what_it_removed(cli):
    result = cli("sandbox", "gc", "--label", "no-such-run-label", "--no-containers")
    assert result.code == 0
    assert result.stdout == "removed 0 sandbox directories, 0 processes, 0 containers\n"
