"""Harbor fields mean what they mean in Harbor: docker_image used as is, per-task limits, verifier env and
user, solution env, build timeouts; compose tasks and missing images refused in one line. Real podman
and bubblewrap; images are never pulled (a prebuilt image is one built and tagged here)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.sandbox.engine import build_image, connect
from echo_rl.tasks.environment import check_runnable, open_task_sandbox
from echo_rl.tasks.harbor import load_task
from echo_rl.tasks.replay import run_noop, run_oracle

BASE = SandboxConfig().base_image
REWARD_IF = 'if {}; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi\n'


def harbor_folder(root: Path, environment: dict[str, Any] | None = None, *, verifier: dict[str, Any] | None = None,
                  solution: dict[str, Any] | None = None, test: str = "true",
                  files: dict[str, str] | None = None) -> Path:
    """A Harbor task folder whose test.sh rewards 1 when the shell condition ``test`` holds."""
    config: dict[str, Any] = {"schema_version": "1.1", "environment": {"workdir": "/home/user", **(environment or {})},
                              "verifier": {"timeout_sec": 30, **(verifier or {})}}
    if solution is not None:
        config["solution"] = solution
    content = {
        "task.toml": tomli_w.dumps(config),
        "instruction.md": "Do the thing.\n",
        "tests/test.sh": "#!/bin/bash\n" + REWARD_IF.format(test),
        "environment/setup.sh": "true\n",
        "environment/Dockerfile": f"FROM {BASE}\nRUN mkdir -p /home/user\nWORKDIR /home/user\n",
        **(files or {}),
    }
    for rel, text in content.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run(coro):
    return asyncio.run(coro)


def prebuilt(tmp_path: Path, marker: str) -> str:
    """A locally built image holding ``/marker``, tagged under a name of its own (what a user's prebuilt
    image is to echo-rl)."""
    context = tmp_path / "prebuilt"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo {marker} > /marker\n")
    image = connect().images.get(build_image(context, label="echo-rl-test"))
    image.tag("localhost/echo-rl-test-prebuilt", marker)
    return f"localhost/echo-rl-test-prebuilt:{marker}"


# ---- compose and missing images: one line, exit 2 ------------------------------------------------------


@pytest.mark.parametrize("compose", ["docker-compose.yaml", "compose.yaml"])
def test_a_compose_task_is_refused_naming_the_file(tmp_path, cli, compose):
    folder = harbor_folder(tmp_path / "svc", files={f"environment/{compose}": "services: {main: {build: .}}\n"})
    with pytest.raises(UserError, match="docker-compose environment"):
        load_task(folder)
    result = cli("tasks", "show", str(folder))
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"{folder}/environment/{compose}: a docker-compose" in result.stderr


def test_a_missing_docker_image_is_a_one_line_error(tmp_path, cli, container_engine):
    folder = harbor_folder(tmp_path / "gone", {"docker_image": "localhost/echo-rl-no-such-image:0"})
    result = cli("tasks", "noop", str(folder), "sandbox.backend=container")
    assert result.code == 2
    assert result.stderr.strip() == (f"echo-rl: error: {folder}/task.toml: environment.docker_image: "
                                     "localhost/echo-rl-no-such-image:0 is not on the container engine (echo-rl "
                                     "does not pull images unless sandbox.pull_images=true: build or tag it there)")


# ---- docker_image, limits, build timeouts --------------------------------------------------------------


def test_docker_image_is_used_as_is_not_built(tmp_path, container_cfg):
    marker = uuid.uuid4().hex[:12]
    image = prebuilt(tmp_path, marker)
    folder = harbor_folder(tmp_path / "pre", {"docker_image": image}, test=f'[ "$(cat /marker)" = {marker} ]',
                           files={"environment/Dockerfile": f"FROM {BASE}\nRUN exit 1\n"})  # would not build
    try:
        result = run(run_noop(load_task(folder), container_cfg))
    finally:
        connect().images.remove(image)  # the tag only: the content stays cached under its build tag
    assert (result.outcome, result.reward) == ("solved", 1.0), result


@pytest.mark.parametrize("backend", ["local", "container"])
def test_the_task_limits_win_over_the_config(tmp_path, backend, request):
    cfg = request.getfixturevalue(f"{backend}_cfg")
    task = load_task(harbor_folder(tmp_path / "lim", {"cpus": 0.5, "memory_mb": 300, "storage_mb": 100}))

    async def limits() -> tuple[str, str]:
        sandbox = await open_task_sandbox(task, cfg, label="echo-rl-test")
        try:
            if backend == "container":
                read = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
                return (await sandbox.exec(read)).output, ""
            group = sandbox.cgroup  # type: ignore[attr-defined]
            if group is None:
                pytest.skip("no cgroups for local sandboxes here")
            files = [d / name for d in group.dirs for name in ("memory.limit_in_bytes", "cpu.cfs_quota_us")]
            size = (await sandbox.exec("df -m / | tail -1 | awk '{print $2}'")).output
            return "".join(f.read_text() for f in files if f.exists()), size
        finally:
            await sandbox.stop()

    cgroup_values, size = run(limits())
    assert cgroup_values.split() == [str(300 << 20), "50000"]
    if backend == "local" and size:
        assert size.strip() == "100"


def test_build_timeout_sec_stops_a_long_build(tmp_path, container_cfg):
    slow = f"FROM {BASE}\nRUN echo {uuid.uuid4().hex}\nRUN sleep 20\n"  # unique: never a cached image
    task = load_task(harbor_folder(tmp_path / "slow", {"build_timeout_sec": 2}, files={"environment/Dockerfile": slow}))
    result = run(run_noop(task, container_cfg.model_copy(update={"infra_retries": 0})))  # one build, not three
    assert result.outcome == "infra_error" and "timed out after 2 s (build_timeout_sec)" in result.reason


# ---- verifier and solution settings --------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "container"])
def test_verifier_env_and_user(tmp_path, backend, request, monkeypatch):
    monkeypatch.setenv("ECHO_RL_TEST_GREETING", "from-host")
    cfg = request.getfixturevalue(f"{backend}_cfg")
    user = "nobody" if backend == "container" else "user"  # the local sandbox has one user: not applied
    env = {"GREETING": "${ECHO_RL_TEST_GREETING}", "FALLBACK": "${ECHO_RL_TEST_UNSET:-dflt}", "PLAIN": "a b"}
    test = f'[ "$GREETING/$FALLBACK/$PLAIN" = "from-host/dflt/a b" ] && [ "$(id -un)" = {user} ]'
    task = load_task(harbor_folder(tmp_path / "ver", verifier={"env": env, "user": "nobody"}, test=test))
    result = run(run_noop(task, cfg))
    assert (result.outcome, result.reward) == ("solved", 1.0), result


def test_an_unset_verifier_variable_is_refused_at_start(tmp_path, local_cfg):
    folder = harbor_folder(tmp_path / "unset", verifier={"env": {"KEY": "${ECHO_RL_TEST_NEVER_SET}"}})
    with pytest.raises(UserError, match=r"task.toml: verifier.env.KEY: \$\{ECHO_RL_TEST_NEVER_SET\} is not set"):
        check_runnable(load_task(folder), local_cfg)


def test_solution_env_reaches_solve_sh(tmp_path, local_cfg):
    files = {"solution/solve.sh": 'echo "$ANSWER" > /home/user/answer\n'}
    folder = harbor_folder(tmp_path / "sol", solution={"env": {"ANSWER": "42"}}, files=files,
                           test='[ "$(cat /home/user/answer)" = 42 ]')
    assert run(run_oracle(load_task(folder), local_cfg)).outcome == "solved"


# ---- tasks show ----------------------------------------------------------------------------------------


def test_tasks_show_prints_the_resolved_settings(tmp_path, cli):
    folder = harbor_folder(tmp_path / "show", {"docker_image": "org/image:1", "cpus": 2, "memory_mb": 300,
                                               "build_timeout_sec": 90},
                           verifier={"env": {"GREETING": "${ECHO_RL_TEST_GREETING}"}, "user": "nobody"},
                           solution={"env": {"ANSWER": "42"}})
    container = cli("tasks", "show", str(folder), "sandbox.backend=container", "sandbox.storage_mb=500")
    assert container.code == 0, container.stderr
    for line in ["backend: container", "image: org/image:1 (docker_image, used as is)",
                 "limits: cpus 2, memory 300 MB, storage 500 MB, processes 256",
                 "timeouts: build 90 s, agent (run default), verifier 30 s",
                 "verifier: user nobody, env GREETING=${ECHO_RL_TEST_GREETING}", "solution: env ANSWER=42"]:
        assert line in container.stdout.splitlines(), container.stdout
    local = cli("tasks", "show", str(folder))
    assert "limits: cpus 2, memory 300 MB, storage 10240 MB, processes 256" in local.stdout
    assert "not applied: docker_image org/image:1: the local backend runs environment/setup.sh" in local.stdout
    assert "not applied: verifier.user nobody: the local sandbox has one user" in local.stdout
