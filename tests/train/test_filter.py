"""`echo-rl tasks filter`: the paper's solvability filter driven by a real policy (the SFT checkpoint)."""

import json

import yaml
from train_configs import BASE


def test_filter_keeps_exactly_the_tasks_solved_at_least_once(cli, sft_run, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(BASE))
    out = tmp_path / "kept"
    result = cli("tasks", "filter", "csv_lookup:0-1", "--model", str(sft_run), "-k", "2", str(config), "--out", str(out))
    assert result.code == 0, result.stderr
    report = json.loads((out / "filter.json").read_text())
    assert len(report["attempts"]) == 2
    assert all(len(outcomes) == 2 for outcomes in report["attempts"].values())
    solved_once = sorted(name for name, outcomes in report["attempts"].items() if any(outcomes))
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert sorted(row["name"] for row in index) == solved_once
    assert report["kept"] == len(solved_once) and report["kept"] + report["dropped"] == 2
    assert f"kept {len(solved_once)} of 2 tasks" in result.stdout


def test_filter_with_an_untrained_policy_keeps_nothing(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(BASE | {"episode": {"max_turns": 1, "max_turn_tokens": 8}}))
    out = tmp_path / "kept"
    result = cli("tasks", "filter", "csv_lookup:0", "--model", "tiny", "-k", "2", str(config), "--out", str(out))
    assert result.code == 0, result.stderr
    report = json.loads((out / "filter.json").read_text())
    assert report["kept"] == 0 and report["dropped"] == 1
    assert (out / "index.jsonl").read_text() == ""
