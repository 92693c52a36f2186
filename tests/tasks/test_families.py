"""Procedural families: coverage, determinism, observation-dependence, short transcripts; and the quality
gates (reference passes, no-op fails) in the real local sandbox for every family."""

from __future__ import annotations

import asyncio
import re

import pytest

from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.families import FAMILIES, generate
from echo_rl.tasks.quality import check_families, check_task
from echo_rl.tasks.replay import record_reference

SEEDS = range(6)
EXPLORE = ("ls", "cat", "head", "grep", "stat", "git", "python3 test_", "du", "tar -t", "cd")


def test_at_least_twelve_families_across_three_domains():
    assert len(FAMILIES) >= 12
    domains = {fam.domain for fam in FAMILIES.values()}
    assert domains == {"data", "sysops", "dev"}
    for domain in domains:
        assert sum(f.domain == domain for f in FAMILIES.values()) >= 4, domain


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_generation_is_deterministic_and_seeds_differ(name):
    tasks = [generate(name, seed) for seed in SEEDS]
    assert tasks == [generate(name, seed) for seed in SEEDS]
    assert len({t.fingerprint() for t in tasks}) == len(tasks), "different seeds give different tasks"
    for task in tasks:
        assert task.family == name and task.domain == FAMILIES[name].domain
        assert task.difficulty in ("easy", "medium", "hard")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_reference_explores_first_in_short_turns(name):
    for seed in SEEDS:
        task = generate(name, seed)
        commands = task.reference_commands
        assert 2 <= len(commands) <= 5 and all(len(c) < 120 for c in commands)
        assert commands[0].startswith(EXPLORE), commands[0]
        assert len(task.instruction) < 220


def test_dockerfile_uses_configurable_base_image_and_runs_the_setup_script():
    task = generate("csv_lookup", 0, base_image="registry.local/tools:1")
    dockerfile = task.files["environment/Dockerfile"].decode()
    assert dockerfile.startswith("FROM registry.local/tools:1\n")
    assert "COPY setup.sh" in dockerfile and "bash /tmp/echo-rl-setup.sh" in dockerfile
    assert "WORKDIR /home/user" in dockerfile
    assert generate("csv_lookup", 0).files["environment/Dockerfile"].startswith(b"FROM debian:bookworm-slim\n")


def test_solve_sh_holds_the_turns():
    task = generate("sort_dedup", 2)
    script = task.files["solution/solve.sh"].decode()
    assert script.startswith("#!/bin/bash\n") and "cd /home/user" in script
    assert all(command in script for command in task.reference_commands)


def test_every_family_reference_passes_and_noop_fails_in_the_local_sandbox(local_cfg):
    checks = asyncio.run(check_families(sorted(FAMILIES), [0], local_cfg, concurrency=4))
    report = {c.family: (c.oracle_passed, c.noop_passed, c.infra_errors, c.failures) for c in checks}
    assert all(c.ok for c in checks), report


def test_reference_acts_on_what_it_read_and_outputs_are_short(local_cfg):
    """Discover → read → act: a later command of every reference uses a value (a code, a file name, a line
    number) that first appeared in an earlier command's OUTPUT — not in the instruction or an earlier
    command. And observations stay a few lines long."""

    async def outputs(name: str, seed: int) -> tuple[object, list[str]]:
        task = generate(name, seed)
        sandbox = await open_task_sandbox(task, local_cfg, label="test-tasks")
        try:
            return task, [step.result.output for step in await record_reference(task, sandbox)]
        finally:
            await sandbox.stop()

    async def main():
        return await asyncio.gather(*(outputs(name, seed) for name in sorted(FAMILIES) for seed in (3, 4)))

    for task, texts in asyncio.run(main()):
        assert all(text.count("\n") <= 12 for text in texts), (task.name, texts)
        assert sum(len(text) for text in texts) < 800, (task.name, texts)
        commands, words = task.reference_commands, lambda text: set(re.findall(r"[A-Za-z]+|[0-9]+", text))
        copied = set()
        for k in range(1, len(commands)):
            known = words(task.instruction).union(*(words(c) for c in commands[:k]))
            copied |= (words(commands[k]) - known) & words(" ".join(texts[:k]))
        assert copied, (task.name, commands, texts)


def test_check_task_reports_failures_with_reasons(local_cfg):
    task = generate("key_copy", 0)
    broken = type(task)(task.name, task.instruction, task.config, dict(task.files), task.executables)
    broken.files["solution/solve.sh"] = task.files["solution/solve.sh"].replace(b"> answer.txt", b"> wrong.txt")
    noop, oracle = asyncio.run(check_task(broken, local_cfg, 30, "test-tasks"))
    assert noop == "failed: reward 0: FAIL: answer.txt does not exist"
    assert oracle == noop
