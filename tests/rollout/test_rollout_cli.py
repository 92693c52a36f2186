"""``echo-rl rollout run`` / ``rollout show`` as a user types them."""

import json


def test_run_writes_trajectories_and_show_prints_them(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_RL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    result = cli(
        "rollout",
        "run",
        "--tasks",
        "key_copy:1",
        "--model",
        "tiny",
        "-n",
        "2",
        "--out",
        str(out),
        "episode.max_turns=2",
        "episode.max_turn_tokens=12",
        "policy.threads=1",
    )
    assert result.code == 0, result.stderr
    assert "2 episodes, 0 solved" in result.stdout
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["task_id"], r["group_index"], r["meta"]["model"]) for r in records] == [
        ("key_copy-1", 0, "tiny"),
        ("key_copy-1", 1, "tiny"),
    ]
    assert (out / "config.yaml").is_file()
    shown = cli("rollout", "show", str(out / "trajectories.jsonl"), "--index", "1")
    assert shown.code == 0, shown.stderr
    assert "roles:" in shown.stdout and "key_copy-1 #1" in shown.stdout and "#0" not in shown.stdout
    assert "<|im_start|>system" in shown.stdout


def test_errors_are_one_line(cli, tmp_path):
    missing = cli("rollout", "show", str(tmp_path / "none.jsonl"))
    assert (missing.code, missing.stderr) == (
        2,
        f"echo-rl: error: {tmp_path / 'none.jsonl'}: no such trajectory file\n",
    )
    bad_model = cli(
        "rollout", "run", "--tasks", "key_copy:1", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")
    )
    assert bad_model.code == 2 and bad_model.stderr.count("\n") == 1
    assert "no such model: expected 'tiny', 'smollm2-135m' or a checkpoint directory" in bad_model.stderr
