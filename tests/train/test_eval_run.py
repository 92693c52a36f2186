"""``echo-rl eval``: scores per split, mode and family with intervals, held-out env CE on a transcript file
recorded once and reused by the next policy (and on a second, seen-family set when configured), and a report
comparing the two."""

from __future__ import annotations

import json

from train_configs import make_config

from echo_rl.cli import main
from echo_rl.configfile import dump_config
from echo_rl.rollout.trajectory import load_trajectories


def test_eval_two_policies_on_the_same_heldout_transcripts_then_report(sft_run, tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(dump_config(make_config()))
    shared = tmp_path / "heldout.jsonl"
    common = [str(config), f"eval.heldout_transcripts={shared}"]

    assert main(["eval", *common, f"policy.model={sft_run}", "--out", str(tmp_path / "sft")]) == 0
    result = json.loads((tmp_path / "sft" / "eval" / "step-000030.json").read_text())
    for split in ("validation", "heldout"):
        sampled, greedy = result["scores"][split]["sampled"], result["scores"][split]["greedy"]
        assert sampled["episodes"] == 4 and greedy["episodes"] == 2
        score = sampled["pass"]["1"]
        assert 0 <= score["low"] <= score["value"] <= score["high"] <= 1
        assert set(sampled["families"]) == {"csv_lookup" if split == "validation" else "cron_edit"}
        assert {"timeout_rate", "turns_mean", "tokens_mean", "stop_reasons"} <= set(sampled["efficiency"])
    transcripts = load_trajectories(shared)
    assert [t.family for t in transcripts] == ["cron_edit", "cron_edit"] and all(t.meta["expert"] for t in transcripts)
    assert result["env_ce"]["transcripts"] == 2 and result["env_ce"]["tokens"] > 0
    recorded = shared.read_bytes()

    assert "env_ce_validation" not in result
    seen = tmp_path / "seen.jsonl"  # a second set, of unseen tasks of the training families
    assert main(["eval", *common, "policy.model=tiny", f"eval.validation_transcripts={seen}",
                 "--out", str(tmp_path / "base")]) == 0
    base = json.loads((tmp_path / "base" / "eval" / "step-000000.json").read_text())
    assert shared.read_bytes() == recorded, "the transcript file is reused, never rewritten"
    assert base["env_ce"]["tokens"] == result["env_ce"]["tokens"]
    assert base["env_ce"]["value"] != result["env_ce"]["value"]
    assert [t.family for t in load_trajectories(seen)] == ["csv_lookup", "csv_lookup"]
    assert base["env_ce_validation"]["file"] == str(seen) and base["env_ce_validation"]["tokens"] > 0
    logged = [json.loads(line) for line in (tmp_path / "base" / "metrics.jsonl").read_text().splitlines()]
    assert [r["validation_env_ce"] for r in logged if r.get("kind") == "eval"] == [base["env_ce_validation"]["value"]]

    capsys.readouterr()
    assert main(["report", str(tmp_path / "base"), str(tmp_path / "sft"), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| metric | t/base | t/sft |" in md
    assert "held-out env CE (nats/token, T=1)" in md
