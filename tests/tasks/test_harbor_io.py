"""Harbor folders: lossless round trip, unknown keys kept, one-line errors naming file and field."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from echo_rl.errors import UserError
from echo_rl.tasks.families import generate
from echo_rl.tasks.harbor import load_task, load_task_dir, write_task

HARBOR_TOML = """\
version = "1.0"
custom_top = [1, 2.5, "x"]

[task]
name = "org/hello"
authors = [{ name = "A", email = "a@example.com" }]

[metadata]
difficulty = "easy"
tags = ["t1", "t2"]
created = 2024-01-02T03:04:05Z

[metadata.nested]
deep = true

[verifier]
timeout_sec = 90.0
env = { TOKEN = "x" }
unknown_verifier_key = 3

[agent]
timeout_sec = 300

[environment]
build_timeout_sec = 600.0
cpus = 2
memory_mb = 4096
allow_internet = false
workdir = "/app"

[solution]
env = {}
"""


def make_folder(root: Path, toml: str = HARBOR_TOML) -> Path:
    (root / "environment").mkdir(parents=True)
    (root / "tests" / "data").mkdir(parents=True)
    (root / "solution").mkdir()
    (root / "task.toml").write_text(toml)
    (root / "instruction.md").write_text("Say hello.\n")
    (root / "environment" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (root / "tests" / "test.sh").write_text("#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n")
    (root / "tests" / "test.sh").chmod(0o755)
    (root / "tests" / "data" / "blob.bin").write_bytes(bytes(range(256)))
    (root / "solution" / "solve.sh").write_text("echo hello\n")
    (root / "README.md").write_text("extra top-level file\n")
    return root


def test_harbor_round_trip_is_lossless(tmp_path):
    task = load_task(make_folder(tmp_path / "hello"))
    assert task.name == "hello" and task.instruction == "Say hello.\n"
    assert task.config["custom_top"] == [1, 2.5, "x"], "unknown keys are kept"
    assert task.config["verifier"]["unknown_verifier_key"] == 3
    assert task.config["metadata"]["nested"] == {"deep": True}
    assert task.verifier_timeout_s == 90.0 and task.agent_timeout_s == 300 and task.workdir == "/app"
    assert set(task.files) == {"environment/Dockerfile", "tests/test.sh", "tests/data/blob.bin",
                               "solution/solve.sh", "README.md"}
    assert task.executables == {"tests/test.sh"}

    copy = load_task(write_task(task, tmp_path / "out" / "hello"))
    assert copy == task
    assert tomllib.loads((tmp_path / "out" / "hello" / "task.toml").read_text()) == task.config
    assert os.access(tmp_path / "out" / "hello" / "tests" / "test.sh", os.X_OK)
    assert not os.access(tmp_path / "out" / "hello" / "README.md", os.X_OK)


def test_generated_task_round_trips(tmp_path):
    task = generate("git_log_find", 5)
    copy = load_task(write_task(task, tmp_path / task.name))
    assert copy == task
    assert copy.reference_commands == task.reference_commands and len(copy.reference_commands) >= 2
    assert copy.config["schema_version"] == "1.1" and copy.family == "git_log_find"


def test_schema_version_and_version_both_accepted(tmp_path):
    a = load_task(make_folder(tmp_path / "a", HARBOR_TOML))
    b = load_task(make_folder(tmp_path / "b", HARBOR_TOML.replace('version = "1.0"', 'schema_version = "1.1"')))
    assert a.config["version"] == "1.0" and b.config["schema_version"] == "1.1"


def test_workdir_falls_back_to_the_dockerfiles(tmp_path):
    root = make_folder(tmp_path / "w", HARBOR_TOML.replace('workdir = "/app"\n', ""))
    (root / "environment" / "Dockerfile").write_text("FROM x\nWORKDIR /srv\nRUN true\nWORKDIR /srv/app\n")
    assert load_task(root).workdir == "/srv/app"
    (root / "environment" / "Dockerfile").write_text("FROM x\n")
    assert load_task(root).workdir is None


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda r: (r / "instruction.md").unlink(), "instruction.md: missing"),
        (lambda r: (r / "task.toml").write_text("[verifier\ntimeout_sec = 1"), "task.toml: invalid TOML"),
        (lambda r: (r / "task.toml").write_text(HARBOR_TOML.replace("timeout_sec = 90.0", 'timeout_sec = "slow"')),
         "task.toml: verifier.timeout_sec: expected a positive number, got 'slow'"),
        (lambda r: (r / "task.toml").write_text(HARBOR_TOML.replace("allow_internet = false", "allow_internet = 1")),
         "task.toml: environment.allow_internet: expected a boolean, got 1"),
        (lambda r: (r / "task.toml").write_text('version = "1.0"\nmetadata = 3\n'),
         "task.toml: metadata: expected a table, got int"),
        (lambda r: (r / "tests" / "secret").symlink_to("/etc/hostname"), "tests/secret: path escapes the task folder"),
        (lambda r: (r / "instruction.md").write_text("  \n"), "instruction.md: empty instruction"),
    ],
)
def test_malformed_folder_is_one_line_error_naming_file_and_field(tmp_path, breakage, expected):
    root = make_folder(tmp_path / "bad")
    breakage(root)
    with pytest.raises(UserError) as err:
        load_task(root)
    message = str(err.value)
    assert "\n" not in message
    assert expected in message, message
    assert str(root) in message


def test_a_folder_without_tests_loads_as_a_task_without_a_verifier(tmp_path):
    root = make_folder(tmp_path / "untested")
    (root / "tests" / "test.sh").unlink()
    task = load_task(root)
    assert not task.has_tests and "tests/test.sh" not in task.files
    assert load_task(write_task(task, tmp_path / "copy" / task.name)) == task
    assert load_task(make_folder(tmp_path / "tested")).has_tests


def test_link_inside_the_folder_is_followed(tmp_path):
    root = make_folder(tmp_path / "ok")
    (root / "tests" / "alias.bin").symlink_to("data/blob.bin")
    assert load_task(root).files["tests/alias.bin"] == bytes(range(256))


def test_load_dir_reports_every_bad_task_and_loads_the_good(tmp_path):
    make_folder(tmp_path / "good1")
    make_folder(tmp_path / "nested" / "good2")
    (make_folder(tmp_path / "bad1") / "instruction.md").unlink()
    (make_folder(tmp_path / "bad2") / "task.toml").write_text("= nope")
    write_task(generate("key_copy", 1), tmp_path / "gen")
    report = load_task_dir(tmp_path)
    assert sorted(t.name for t in report.tasks) == ["gen", "good1", "good2"]
    assert len(report.errors) == 2
    assert any("bad1" in e and "instruction.md: missing" in e for e in report.errors)
    assert any("bad2" in e and "invalid TOML" in e for e in report.errors)


def test_load_dir_follows_linked_task_folders_once(tmp_path):
    """A directory of links to tasks kept elsewhere (a link loop and a second link to one task included)."""
    make_folder(tmp_path / "elsewhere" / "one")
    write_task(generate("key_copy", 1), tmp_path / "elsewhere" / "two")
    picked = tmp_path / "picked"
    picked.mkdir()
    (picked / "a").symlink_to(tmp_path / "elsewhere" / "one")
    (picked / "b").symlink_to(tmp_path / "elsewhere" / "two")
    (picked / "b-again").symlink_to(tmp_path / "elsewhere" / "two")
    (picked / "loop").symlink_to(picked)
    report = load_task_dir(picked)
    assert sorted(t.name for t in report.tasks) == ["a", "b"] and report.errors == []


def test_cli_show_of_bad_folder_is_one_line_exit_2(cli, tmp_path):
    root = make_folder(tmp_path / "bad")
    (root / "task.toml").write_text(HARBOR_TOML.replace("cpus = 2", "cpus = -1"))
    result = cli("tasks", "show", str(root))
    assert result.code == 2
    assert result.stderr == f"echo-rl: error: {root / 'task.toml'}: environment.cpus: expected a positive number, got -1\n"
