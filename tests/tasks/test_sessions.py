"""Shell sessions (the pre-training corpus): deterministic, run for real in the sandbox, the whole grammar,
nothing of the task families."""

from __future__ import annotations

import ast
import asyncio
import re
import shlex
from pathlib import Path

from echo_rl.tasks.families import FAMILIES, generate
from echo_rl.tasks.families.base import NAMES, WORDS
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.replay import record_reference
from echo_rl.tasks.sessions import PROGRAMS, VOCAB, session_task, session_tasks

_SEPARATORS = re.compile(r"\|\||&&|[|;()<>]")


def _programs(command: str) -> set[str]:
    """The program of each simple command of a command line (``a | b; c`` → {a, b, c})."""
    found = set()
    for part in _SEPARATORS.split(command.replace("$(", " ")):
        words = [w for w in part.split() if "=" not in w or w.startswith("-")]
        if words:
            found.add(words[0])
    return found


def _initial_files(task) -> dict[str, str]:
    """The files setup.sh writes: ``printf '%s' CONTENT > PATH`` lines."""
    words = shlex.split(task.setup_script, comments=True)
    return {words[i + 4]: words[i + 2] for i in range(len(words) - 4)
            if words[i : i + 2] == ["printf", "%s"] and words[i + 3] == ">"}


def test_the_same_seed_gives_the_same_sessions_and_another_seed_others():
    assert session_tasks(30, seed=3) == session_tasks(30, seed=3)
    assert session_task(7, seed=3) == session_tasks(8, seed=3)[7]  # a session does not depend on the count
    a, b = session_tasks(30, seed=3), session_tasks(30, seed=4)
    assert sum(x.reference_commands == y.reference_commands for x, y in zip(a, b)) <= 1
    assert len({tuple(t.reference_commands) for t in a}) == 30


def test_the_grammar_is_covered_with_pipes_redirections_and_mistakes():
    tasks = session_tasks(400, seed=0)
    commands = [c for t in tasks for c in t.reference_commands]
    used = set().union(*(_programs(c) for c in commands))
    assert set(PROGRAMS) <= used, set(PROGRAMS) - used
    assert sum("|" in c for c in commands) > 100 and sum(" > " in c for c in commands) > 100
    assert 4 <= min(len(t.reference_commands) for t in tasks) and max(len(t.reference_commands) for t in tasks) == 10
    assert not any(t.has_tests for t in tasks)  # nothing to solve: a corpus, not tasks


def test_sessions_run_in_the_sandbox_and_record_the_real_outputs(local_cfg):
    async def replay(task):
        sandbox = await open_task_sandbox(task, local_cfg, label="test-sessions")
        try:
            return await record_reference(task, sandbox, 5.0)
        finally:
            await sandbox.stop()

    tasks = session_tasks(40, seed=1)
    checked = {"cat": 0, "python3": 0, "failed": 0}
    for task in tasks:
        files = _initial_files(task)
        steps = asyncio.run(replay(task))
        assert [s.command for s in steps] == task.reference_commands
        touched: set[str] = set()
        for step in steps:
            words = step.command.split()
            if words[0] == "cat" and len(words) == 2 and words[1] in files and words[1] not in touched:
                assert step.result.output == files[words[1]] and step.result.exit_code == 0
                checked["cat"] += 1
            if match := re.fullmatch(r"python3 -c 'print\((\d+) ([+*]|//) (\d+)\)'", step.command):
                a, op, b = int(match[1]), match[2], int(match[3])
                assert step.result.output == f"{a + b if op == '+' else a * b if op == '*' else a // b}\n"
                checked["python3"] += 1
            checked["failed"] += step.result.exit_code != 0
            touched |= set(words[1:])
    assert all(count > 0 for count in checked.values()), checked


def test_sessions_are_independent_of_the_task_families():
    source = Path(__import__("echo_rl.tasks.sessions", fromlist=["x"]).__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    # only the Spec type and the setup-script writer: no family, no registry
    assert {m for m in imported if m and "families" in m} <= {"echo_rl.tasks.families.base",
                                                              "echo_rl.tasks.families.build"}
    assert not set(VOCAB) & (set(WORDS) | set(NAMES))
    family_files = {path for name in FAMILIES for path in _initial_files(generate(name, 0))}
    family_instructions = {generate(name, seed).instruction for name in FAMILIES for seed in range(3)}
    for task in session_tasks(200, seed=0):
        assert not set(_initial_files(task)) & family_files
        assert task.instruction not in family_instructions and task.family not in FAMILIES
