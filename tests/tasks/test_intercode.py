"""InterCode-Bash import (icalfa's data) and its verifier, on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import Counter

import pytest

from echo_rl.tasks.harbor import load_task_dir
from echo_rl.tasks.intercode import import_intercode, intercode_tasks
from echo_rl.tasks.intercode_check import diff, outputs_match, tfidf_similarity
from echo_rl.tasks.replay import run_noop, run_oracle

# One task per file-system set-up: a file copy, an output, a grep, a command with an output, a redirect.
SAMPLE = ("intercode-bash-fs1-003", "intercode-bash-fs2-000", "intercode-bash-fs3-001", "intercode-bash-fs4-002",
          "intercode-bash-fs5-002")


@pytest.fixture(scope="module")
def sample():
    by_name = {task.name: task for task in intercode_tasks("debian:bookworm-slim")}
    return [by_name[name] for name in SAMPLE]


def test_import_writes_the_300_tasks_of_the_five_setups(tmp_path):
    summary = import_intercode(tmp_path / "ic", "debian:bookworm-slim")
    report = load_task_dir(tmp_path / "ic")
    assert len(summary.imported) == 300 and not report.errors
    assert Counter(t.family for t in report.tasks) == {"intercode_fs1": 153, "intercode_fs2": 49, "intercode_fs3": 57,
                                                      "intercode_fs4": 23, "intercode_fs5": 18}
    task = next(t for t in report.tasks if t.name == "intercode-bash-fs1-003")
    assert task.instruction.startswith("create a copy of /testbed/hello.php named /testbed/hello-COPY.php")
    assert task.metadata["gold"] == "cp /testbed/hello.php /testbed/hello-COPY.php"
    assert task.reference_commands is None  # the reference has no turn markers
    assert task.workdir == "/"


def test_output_similarity_is_intercodes_tfidf():
    assert tfidf_similarity("a b\nc d", "a b\nc d") == 1.0
    assert tfidf_similarity("alpha beta", "gamma delta") == 0.0
    assert tfidf_similarity("", "") == 1.0 and tfidf_similarity("x", "y") == 0.0  # no token: equality
    assert outputs_match("beta.txt\nalpha.txt\n", "alpha.txt\nbeta.txt\n")  # same words, other order
    assert not outputs_match("alpha.txt\n", "alpha.txt\nbeta.txt\n")
    # smooth idf: aa ln(3/3)+1 = 1, bb and cc ln(3/2)+1 = i; vectors (1, 2i, 0) and (1, 0, i)
    i = math.log(1.5) + 1
    assert tfidf_similarity("aa bb bb", "AA cc") == pytest.approx(1 / (math.sqrt(1 + 4 * i * i) * math.sqrt(1 + i * i)))


def test_diff_statuses():
    initial = {"/t": ("d",), "/t/a": ("f", "1", False), "/t/b": ("f", "2", False)}
    final = {"/t": ("d",), "/t/a": ("f", "1", True), "/t/c": ("d",)}
    assert diff(initial, final) == {("/t/a", "M"), ("/t/b", "D"), ("/t/c", "A")}


def _check(tasks, cfg):
    async def both():
        oracle = await asyncio.gather(*(run_oracle(t, cfg) for t in tasks))
        noop = await asyncio.gather(*(run_noop(t, cfg) for t in tasks))
        return oracle, noop

    oracle, noop = asyncio.run(both())
    assert [r.outcome for r in oracle] == ["solved"] * len(tasks), [r.output for r in oracle]
    assert [r.outcome for r in noop] == ["failed"] * len(tasks), [r.output for r in noop]


def test_gold_passes_and_untouched_state_fails_locally(sample, local_cfg):
    _check(sample, local_cfg)


def test_a_wrong_answer_or_an_extra_file_fails(sample, local_cfg):
    def with_solution(task, script: bytes):
        return dataclasses.replace(task, files={**task.files, "solution/solve.sh": script})

    wrong_output = with_solution(sample[1], b"cd / && ls /system > /tmp/answer.txt 2>&1\n")
    extra_file = with_solution(sample[0], sample[0].files["solution/solve.sh"] + b"touch /testbed/extra.txt\n")

    async def both():
        return await asyncio.gather(run_oracle(wrong_output, local_cfg), run_oracle(extra_file, local_cfg))

    results = asyncio.run(both())
    assert [r.outcome for r in results] == ["failed", "failed"]
    assert "output differs" in results[0].output and "diff extra: A /testbed/extra.txt" in results[1].output


@pytest.mark.slow
def test_gold_passes_and_untouched_state_fails_in_containers(container_cfg):
    by_name = {task.name: task for task in intercode_tasks("debian:bookworm-slim")}
    _check([by_name[name] for name in SAMPLE], container_cfg)
