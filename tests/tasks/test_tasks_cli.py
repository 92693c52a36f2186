"""`echo-rl tasks …` as a user runs it (real subprocesses, real sandboxes)."""

from __future__ import annotations

import json


def test_list_show_and_export(cli, tmp_path):
    families = cli("tasks", "list")
    assert families.code == 0 and len(families.stdout.splitlines()) >= 12
    assert "git_log_find     dev" in families.stdout

    shown = cli("tasks", "show", "log_count:3", "--files")
    assert shown.code == 0, shown.stderr
    assert shown.stdout.startswith("# log_count-3\n\nCount the ")
    assert "turn 1: ls logs" in shown.stdout and "--- tests/test.sh" in shown.stdout

    exported = cli("tasks", "export", "key_copy:0-2", "--base-image", "tools:1", "--out", str(tmp_path / "x"))
    assert exported.code == 0, exported.stderr
    rows = [json.loads(line) for line in (tmp_path / "x" / "index.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == ["key_copy-0", "key_copy-1", "key_copy-2"]
    assert (tmp_path / "x" / "key_copy-1" / "environment" / "Dockerfile").read_text().startswith("FROM tools:1\n")
    listed = cli("tasks", "list", str(tmp_path / "x"))
    assert listed.code == 0 and listed.stdout.count("key_copy") == 6


def test_build_then_oracle_and_noop_on_a_split(cli, tmp_path):
    out = tmp_path / "corpus"
    built = cli("tasks", "build", "--out", str(out), "tasks.num_train=6", "tasks.num_validation=3",
                "tasks.num_heldout=2", "tasks.families=[csv_lookup,find_move,git_branch]")
    assert built.code == 0, built.stderr
    assert "train           6 tasks" in built.stdout and "heldout         2 tasks" in built.stdout

    oracle = cli("tasks", "oracle", str(out), "--split", "validation", "--out", str(tmp_path / "o"))
    assert oracle.code == 0, oracle.stderr
    assert oracle.stdout.splitlines()[-1] == "oracle: 3/3 solved, 0 failed, 0 infra errors"
    rows = [json.loads(line) for line in (tmp_path / "o" / "oracle.jsonl").read_text().splitlines()]
    assert {r["outcome"] for r in rows} == {"solved"} and all(r["family"] for r in rows)

    noop = cli("tasks", "noop", str(out), "--split", "heldout")
    assert noop.code == 0 and noop.stdout.splitlines()[-1] == "noop: 0/2 solved, 2 failed, 0 infra errors"


def test_check_prints_the_gates(cli):
    result = cli("tasks", "check", "--seeds", "2", "--families", "sort_dedup,permissions")
    assert result.code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["family", "domain", "oracle", "no-op", "infra", "determ", "gen", "ms/task", "verify", "s"]
    assert lines[1].split()[:6] == ["sort_dedup", "data", "2/2", "0/2", "0", "ok"]
    assert lines[-1] == "all gates passed (2 families)"


def test_bad_arguments_are_one_line_errors(cli, tmp_path):
    for args, message in [
        (("tasks", "check", "--families", "nope"), "--families: unknown family 'nope'"),
        (("tasks", "build", "--out", str(tmp_path / "c"), "tasks.heldout_families=[nope]"), "unknown task family 'nope'"),
    ]:
        result = cli(*args)
        assert result.code == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "c").exists()
