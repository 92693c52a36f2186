"""Run a task's verifier on the agent's final state, and read the reward it wrote (method §5).

    result = await verify(task, sandbox, timeout_s=120)   # never raises
    result.reward, result.outcome, result.reason

Order (rewards the agent cannot forge or move):

1. ``sandbox.final_state()`` — every process the agent left running is killed (a fork bomb, background
   jobs), and the verifier gets tools the agent could not have replaced: on the container backend a fresh
   container from the pristine task image holding the agent's changed files (outside the system
   directories), on the local backend the same sandbox with the host's read-only ``/usr`` and its links
   restored;
2. ``/logs/verifier`` and ``/tests`` are emptied and recreated;
3. ``tests/`` is uploaded to ``/tests`` — only now, after the agent has finished;
4. ``test.sh`` runs under a clean environment (fixed PATH, no rc files, the task's ``[verifier] env``,
   as its ``[verifier] user`` where the sandbox shell is root) with the verifier timeout;
5. every process is killed again, then the reward is read from the files test.sh wrote in this run:
   ``/logs/verifier/reward.json`` (a flat object of numbers with a ``reward`` key) or, failing that,
   ``/logs/verifier/reward.txt`` (one number).

Outcomes (:func:`classify` is the one place that decides): ``solved`` when reward ≥ 1; ``failed`` when the
verifier ran on the agent's final state and did not say yes — reward below 1, a missing, empty or
unparsable reward file, test.sh exiting non-zero without a reward, test.sh timing out (a FIFO where it
reads, a tree it walks forever), no space left for the verifier (the agent filled the disk);
``infra_error`` (reward 0) only when the machinery failed: the sandbox or engine, the verifier's container,
test.sh that could not be started, our own code. Infra errors leave the training groups and every
denominator, so nothing the agent's state can cause may be one.
"""

from __future__ import annotations

import errno
import json
import math
import shlex
import time
from dataclasses import asdict, dataclass
from typing import Literal

from echo_rl.sandbox.base import Sandbox, SandboxError
from echo_rl.tasks.settings import resolve_env
from echo_rl.tasks.task import Task

VerifierOutcome = Literal["solved", "failed", "infra_error"]
LOGS = "/logs/verifier"
TESTS = "/tests"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A fresh shell for test.sh: no inherited variables (BASH_ENV, PATH…), no rc files the agent could edit, and
# no Python user site (a .pth file the agent left in ~/.local would run inside every python3 test.sh starts).
RUN_TESTS = (
    f"/usr/bin/env -i PATH={SAFE_PATH} HOME=/root LC_ALL=C.UTF-8 PYTHONNOUSERSITE=1 /bin/bash --noprofile --norc "
    f"{TESTS}/test.sh"
)


def _test_command(task: Task) -> str:
    """:data:`RUN_TESTS` with the task's ``[verifier] env`` (templates resolved) and, where the shell is
    root, as its ``[verifier] user`` (HOME that user's)."""
    env = "".join(f" {k}={shlex.quote(v)}" for k, v in resolve_env(task.verifier_env, "verifier.env", task).items())
    command = RUN_TESTS.replace(" /bin/bash ", f"{env} /bin/bash ", 1)
    if task.verifier_user is None:
        return command
    user = shlex.quote(str(task.verifier_user))
    as_user = command.replace("HOME=/root", 'HOME="$(getent passwd ' + user + ' | cut -d: -f6)"', 1)
    return (f'if [ "$(id -u)" = 0 ]; then setpriv --reuid={user} --regid="$(id -g {user})" --init-groups -- '
            f"{as_user}; else {command}; fi")


@dataclass(frozen=True)
class VerifierResult:
    reward: float
    outcome: VerifierOutcome
    reason: str
    duration_s: float
    output: str = ""  # test.sh's output, tail

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Failed(Exception):
    """The verifier ran and the task is not solved (reason in args[0])."""


class _Infra(Exception):
    """The verifier could not run (reason in args[0])."""


def _parse_reward(name: str, data: bytes) -> float:
    """The reward in ``reward.json``/``reward.txt`` content; raises ``_Failed`` naming the problem."""
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        raise _Failed(f"{name} is empty")
    if name == "reward.json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise _Failed("reward.json is not JSON") from None
        if not isinstance(value, dict) or "reward" not in value:
            raise _Failed("reward.json has no 'reward' key")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
            raise _Failed("reward.json is not a flat object of numbers")
        reward = float(value["reward"])
    else:
        try:
            reward = float(text)
        except ValueError:
            raise _Failed(f"reward.txt holds {text[:30]!r}, not a number") from None
    if not math.isfinite(reward):
        raise _Failed(f"{name} holds a non-finite reward")
    return reward


async def _read_reward(sandbox: Sandbox) -> tuple[str, bytes] | None:
    for name in ("reward.json", "reward.txt"):
        try:
            return name, await sandbox.download(f"{LOGS}/{name}")
        except FileNotFoundError:
            continue
    return None


async def _run(task: Task, agent_sandbox: Sandbox, timeout_s: float, workdir: str | None) -> tuple[float, str]:
    async with agent_sandbox.final_state() as sandbox:
        return await _run_tests(task, sandbox, timeout_s, workdir)


async def _run_tests(task: Task, sandbox: Sandbox, timeout_s: float, workdir: str | None) -> tuple[float, str]:
    prepared = await sandbox.exec(
        f"rm -rf {LOGS} {TESTS} && mkdir -p {LOGS} {TESTS} && chmod 777 {LOGS}", timeout_s=min(timeout_s, 30.0)
    )
    if prepared.exit_code != 0:
        raise _Failed(f"could not reset {LOGS} and {TESTS}: {prepared.output.strip()[-200:]}")
    for rel, data in sorted(task.subtree("tests").items()):
        await sandbox.upload(data, f"{TESTS}/{rel}")
    executables = sorted(path.removeprefix("tests/") for path in task.executables if path.startswith("tests/"))
    if executables:
        await sandbox.exec(f"cd {TESTS} && chmod +x -- " + " ".join(shlex.quote(p) for p in executables))
    result = await sandbox.exec(_test_command(task), timeout_s=timeout_s, cwd=workdir)
    output = result.output[-2000:]
    if result.exit_code in (126, 127) and result.output.startswith("/usr/bin/env:"):
        raise _Infra(f"test.sh could not be started: {result.output.strip()[:200]}")  # the pristine tools lack bash
    if result.timed_out:
        raise _Failed(f"verifier timed out after {timeout_s:g}s on the agent's final state")
    await sandbox.reset_processes()
    found = await _read_reward(sandbox)
    if found is None:
        if result.exit_code != 0:
            raise _Failed(f"test.sh exited {result.exit_code} without writing a reward")
        raise _Failed("test.sh wrote no reward file")
    return _parse_reward(*found), output


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def classify(err: Exception) -> tuple[VerifierOutcome, str]:
    """The outcome and reason of a verification that raised ``err``: ``failed`` for what the agent's final
    state can cause, ``infra_error`` for the machinery (see the module docstring)."""
    if isinstance(err, _Failed):
        return "failed", str(err)
    no_space = isinstance(err, OSError) and err.errno in _NO_SPACE
    if no_space or (isinstance(err, SandboxError) and "no space left on device" in str(err).lower()):
        return "failed", f"no space left for the verifier on the agent's final state: {err}"
    if isinstance(err, _Infra):
        return "infra_error", str(err)
    if isinstance(err, SandboxError):
        return "infra_error", f"sandbox error: {err}"
    return "infra_error", f"verifier crashed: {type(err).__name__}: {err}"


async def verify(task: Task, sandbox: Sandbox, timeout_s: float, workdir: str | None = None) -> VerifierResult:
    """Verify the sandbox's final state. Never raises: failures become ``failed`` or ``infra_error``
    results with a reason. ``workdir`` (default: the task's, else the sandbox's) is test.sh's cwd."""
    start = time.monotonic()
    output = ""
    try:
        reward, output = await _run(task, sandbox, timeout_s, workdir or task.workdir)
        outcome: VerifierOutcome = "solved" if reward >= 1.0 else "failed"
        last = output.strip().splitlines()[-1:] if outcome == "failed" else []
        reason = f"reward {reward:g}" + "".join(f": {line[:200]}" for line in last)
    except Exception as err:  # noqa: BLE001 - a verifier must never kill a training run
        reward = 0.0
        outcome, reason = classify(err)
    return VerifierResult(reward, outcome, reason, time.monotonic() - start, output)
