"""The evaluation result: its JSON shape, where it is written, and its flat metrics record.

    {"step": N,
     "scores": {split: {mode: summary}},     split ∈ validation | heldout, mode ∈ sampled | greedy,
                                             summary as :func:`echo_rl.eval.summary.summarize_episodes`
     "env_ce": {"value": nats/token, "tokens": n, "transcripts": m, "file": path} | null}

Written to ``RUN/eval/step-N.json``; :func:`flatten` gives the ``kind: eval`` line of ``metrics.jsonl``;
:func:`unverified_notes` says where pass@k is not available (tasks without tests).
"""

from __future__ import annotations

import json
from typing import Any

from echo_rl.rundir import RunDir, atomic_write_text


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """``{"kind": "eval", "step": N, "<split>/<mode>/pass@k": …, "…_low", "…_high", "…/infra_excluded",
    "…/unverified" (episodes without a verifier, when any), "…/timeout_rate", "…/turns_mean",
    "…/tokens_mean", "heldout_env_ce": …}``; no pass@k where no episode was verified."""
    record: dict[str, Any] = {"kind": "eval", "step": result["step"]}
    for split, modes in result["scores"].items():
        for mode, summary in modes.items():
            prefix = f"{split}/{mode}"
            for k, score in summary["pass"].items():
                record[f"{prefix}/pass@{k}"] = score["value"]
                record[f"{prefix}/pass@{k}_low"] = score["low"]
                record[f"{prefix}/pass@{k}_high"] = score["high"]
            record[f"{prefix}/infra_excluded"] = summary["infra"]["excluded"]
            if "unverified" in summary:
                record[f"{prefix}/unverified"] = summary["unverified"]["episodes"]
            for key in ("timeout_rate", "turns_mean", "tokens_mean"):
                record[f"{prefix}/{key}"] = summary["efficiency"][key]
    if result.get("env_ce"):
        record["heldout_env_ce"] = result["env_ce"]["value"]
    return record


def unverified_notes(result: dict[str, Any]) -> list[str]:
    """One line per split and mode with episodes of tasks without tests: pass@k is not available for them."""
    notes = []
    for split, modes in result["scores"].items():
        for mode, summary in modes.items():
            if "unverified" in summary:
                gap = summary["unverified"]
                scored = "scored over the other tasks" if summary["pass"] else "no task of it was scored"
                notes.append(f"{split}/{mode}: {gap['tasks']} tasks ({gap['episodes']} episodes) have no "
                             f"tests/test.sh: pass@k is not available for them ({scored})")
    return notes


def write_result(run: RunDir, result: dict[str, Any]) -> None:
    atomic_write_text(run.eval_result(result["step"]), json.dumps(result, indent=1))
