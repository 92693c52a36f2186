"""Episodes without a policy — reference replay, oracle (solve.sh), no-op — the solvability filter, and
backend parity: the exported Dockerfile reproduces the local initial state."""

from __future__ import annotations

import asyncio

import pytest

from echo_rl.errors import UserError
from echo_rl.sandbox.base import SandboxError
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.families import generate
from echo_rl.tasks.quality import solvability_filter
from echo_rl.tasks import replay as replay_module
from echo_rl.tasks.replay import record_reference, run_noop, run_oracle
from echo_rl.tasks.verifier import VerifierResult, verify

PARITY_FAMILIES = ("git_log_find", "archive_extract", "python_fix", "permissions")


async def replay(task, cfg) -> list[tuple[str, str, int]]:
    sandbox = await open_task_sandbox(task, cfg, label="test-tasks")
    try:
        return [(s.command, s.result.output, s.result.exit_code) for s in await record_reference(task, sandbox)]
    finally:
        await sandbox.stop()


def test_record_reference_returns_real_observations(local_cfg):
    task = generate("pointer_chase", 4)
    steps = asyncio.run(replay(task, local_cfg))
    assert [command for command, _, _ in steps] == task.reference_commands
    first, second, third = steps
    target = first[1].split()[-1]
    assert first[1].startswith("The code is in notes/") and second[0] == f"cat {target}"
    code = second[1].split()[-1]
    assert third == (f"echo {code} > answer.txt", "", 0), "the value read in one turn is used in the next"


def test_oracle_runs_solve_sh_and_noop_fails(local_cfg):
    async def main():
        tasks = [generate(name, 7) for name in ("git_branch", "config_edit", "disk_usage")]
        return await asyncio.gather(*(run(t, local_cfg) for t in tasks for run in (run_oracle, run_noop)))

    results = asyncio.run(main())
    assert [r.outcome for r in results] == ["solved", "failed"] * 3, results


def flaky_sandboxes(monkeypatch, failures: int) -> list[int]:
    """Make the first ``failures`` sandboxes the replay module opens fail as a broken engine does; returns
    the running count of opens."""
    opens = [0]

    async def open_or_fail(task, cfg, *, label):
        opens[0] += 1
        if opens[0] <= failures:
            raise SandboxError(f"engine fell over ({opens[0]})")
        return await open_task_sandbox(task, cfg, label=label)

    monkeypatch.setattr(replay_module, "open_task_sandbox", open_or_fail)
    return opens


def test_oracle_and_noop_retry_a_sandbox_failure(monkeypatch, local_cfg):
    """Like policy episodes, oracle and no-op episodes (``echo-rl tasks check``) retry an infrastructure
    failure ``infra_retries`` times; after the last, the reason names every attempt's failure."""
    task = generate("git_branch", 3)
    cfg = local_cfg.model_copy(update={"infra_retries": 2, "retry_backoff_s": 0.0})
    opens = flaky_sandboxes(monkeypatch, failures=2)
    assert asyncio.run(run_oracle(task, cfg)).outcome == "solved" and opens[0] == 3
    opens = flaky_sandboxes(monkeypatch, failures=2)
    failed = asyncio.run(run_noop(task, cfg.model_copy(update={"infra_retries": 1})))
    assert (failed.outcome, failed.reason) == (
        "infra_error", "infrastructure error (2 attempts): engine fell over (1) | engine fell over (2)")


def test_an_infra_error_verdict_is_retried_too(monkeypatch, local_cfg):
    """A verifier whose own machinery failed (an ``infra_error`` verdict, not an exception) is retried like a
    sandbox that would not start."""
    calls = []

    async def verify_once_broken(task, sandbox, timeout):
        calls.append(timeout)
        if len(calls) == 1:
            return VerifierResult(0.0, "infra_error", "verifier container died", 0.0)
        return await verify(task, sandbox, timeout)

    monkeypatch.setattr(replay_module, "verify", verify_once_broken)
    cfg = local_cfg.model_copy(update={"infra_retries": 1, "retry_backoff_s": 0.0})
    assert asyncio.run(run_oracle(generate("git_branch", 3), cfg)).outcome == "solved" and len(calls) == 2


def test_a_sandbox_that_cannot_be_removed_keeps_its_verdict(monkeypatch, local_cfg, caplog):
    """Removing the sandbox fails after the verifier spoke (an engine error on ``remove``): the verdict
    stands, the episode is not re-run as an infrastructure failure, and the leak is logged."""
    opens = []

    async def open_unremovable(task, cfg, *, label):
        sandbox = await open_task_sandbox(task, cfg, label=label)
        stop = sandbox.stop

        async def stop_then_fail():
            await stop()
            raise SandboxError("engine fell over removing it")

        sandbox.stop = stop_then_fail
        opens.append(sandbox)
        return sandbox

    monkeypatch.setattr(replay_module, "open_task_sandbox", open_unremovable)
    cfg = local_cfg.model_copy(update={"infra_retries": 2, "retry_backoff_s": 0.0})
    assert asyncio.run(run_oracle(generate("git_branch", 3), cfg)).outcome == "solved"
    assert len(opens) == 1
    assert "could not remove a finished sandbox" in caplog.text and "engine fell over removing it" in caplog.text


def test_task_without_setup_cannot_run_locally(make_task, local_cfg):
    task = make_task("true\n")
    del task.files["environment/setup.sh"]
    with pytest.raises(UserError, match="has no environment/setup.sh"):
        asyncio.run(open_task_sandbox(task, local_cfg))
    with pytest.raises(UserError, match="has no solution/solve.sh to replay"):
        asyncio.run(record_reference(task, None))


def test_solvability_filter_keeps_what_a_policy_solves(local_cfg):
    """Two real 'policies': the oracle solves everything, the no-op agent nothing; k attempts each."""
    tasks = [generate("csv_lookup", seed) for seed in range(3)]

    async def oracle_policy(task):
        return [(await run_oracle(task, local_cfg)).outcome == "solved" for _ in range(2)]

    def lazy_policy(task):
        return [False, False]

    kept = asyncio.run(solvability_filter(tasks, oracle_policy, concurrency=2))
    assert kept.kept == tasks and kept.attempts["csv_lookup-0"] == [True, True]
    dropped = asyncio.run(solvability_filter(tasks, lazy_policy))
    assert dropped.kept == [] and dropped.dropped == tasks
    strict = asyncio.run(solvability_filter(tasks, lambda t: [t.name.endswith("1"), True], min_solved=2))
    assert [t.name for t in strict.kept] == ["csv_lookup-1"]


@pytest.mark.container
def test_container_image_reproduces_the_local_state(local_cfg, container_cfg):
    """Replaying the reference in the exported image gives the same observations as in the local
    sandbox, and the verifier passes there too (oracle) and fails on the untouched state (no-op)."""

    async def main():
        tasks = [generate(name, 2) for name in PARITY_FAMILIES]
        local = await asyncio.gather(*(replay(t, local_cfg) for t in tasks))
        container = await asyncio.gather(*(replay(t, container_cfg) for t in tasks))
        episodes = [(t, run) for t in tasks for run in (run_oracle, run_noop)]
        verdicts = await asyncio.gather(*(run(t, container_cfg) for t, run in episodes))
        return local, container, verdicts

    local, container, verdicts = asyncio.run(main())
    for name, a, b in zip(PARITY_FAMILIES, local, container):
        assert a == b, name
    outcomes = [f"{v.outcome}: {v.reason}" for v in verdicts]
    assert [v.outcome for v in verdicts] == ["solved", "failed"] * len(PARITY_FAMILIES), outcomes


@pytest.mark.container
def test_a_plain_harbor_task_runs_on_the_container_backend(container_cfg, make_task):
    """A Harbor task with only a Dockerfile (no setup.sh): built, solved by solve.sh, verified in /app."""
    task = make_task(
        "#!/bin/bash\n[ \"$(cat /app/out.txt)\" = \"$(cat /app/in.txt)!\" ] && r=1 || r=0\n"
        "echo $r > /logs/verifier/reward.txt\n",
        files={
            "environment/Dockerfile": b"FROM debian:bookworm-slim\nWORKDIR /app\nRUN echo hello > /app/in.txt\n",
            "solution/solve.sh": b"#!/bin/bash\necho \"$(cat in.txt)!\" > out.txt\n",
        },
    )
    del task.files["environment/setup.sh"]
    task.config["environment"] = {}
    assert task.workdir == "/app"

    async def main():
        return await asyncio.gather(run_oracle(task, container_cfg), run_noop(task, container_cfg))

    oracle, noop = asyncio.run(main())
    assert (oracle.outcome, noop.outcome) == ("solved", "failed"), (oracle, noop)
