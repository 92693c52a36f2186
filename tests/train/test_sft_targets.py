"""``train.sft_targets``: which tokens the SFT NLL covers — the actions (as before), or every token
(pre-training on shell sessions, which then lowers the held-out env CE of an untrained model)."""

from __future__ import annotations

import asyncio

import pytest
from train_configs import make_config

from echo_rl.distributed import DistContext
from echo_rl.eval.heldout import heldout_env_ce
from echo_rl.models.load import load_policy_model
from echo_rl.train.session import resolve_model_spec
from echo_rl.objective.batch import collate
from echo_rl.rollout.expert import record_expert_transcripts
from echo_rl.rollout.trajectory import save_trajectories
from echo_rl.harness.chat import ChatFormat, tokenizer_fingerprint
from echo_rl.roles import Role
from echo_rl.rundir import RunDir
from echo_rl.tasks.families import generate
from echo_rl.tasks.sessions import session_tasks
from echo_rl.train.checkpoint import latest_checkpoint
from echo_rl.train.sft import sft, sft_target_mask


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(chat, 40 shell sessions, 2 held-out cron_edit reference transcripts, the sessions' file) with the
    tiny model's tokenizer."""
    cfg = make_config()
    _, tokenizer = load_policy_model(resolve_model_spec("tiny"))
    chat = ChatFormat.from_config(tokenizer, cfg.harness)
    sessions = asyncio.run(record_expert_transcripts(session_tasks(40, seed=5), chat, cfg)).transcripts
    heldout = asyncio.run(record_expert_transcripts([generate("cron_edit", s) for s in (0, 1)], chat, cfg)).transcripts
    for t in sessions:
        t.meta["tokenizer"] = tokenizer_fingerprint(chat)
    path = tmp_path_factory.mktemp("sessions") / "sessions.jsonl"
    save_trajectories(path, sessions)
    return chat, sessions, heldout, path


def test_targets_actions_are_the_action_tokens_and_all_every_token_but_the_first(recorded):
    chat, sessions, _, _ = recorded
    batch = collate(sessions[:4], [0.0] * 4, make_config().objective, chat.tokenizer.pad_token_id, temperature=1.0)
    actions, both, everything = (sft_target_mask(batch, t) for t in ("actions", "actions+env", "all"))
    assert actions.equal(batch.action_mask)
    assert both.equal(batch.action_mask | batch.warning_mask | batch.env_mask)
    assert everything.sum(1).tolist() == [len(t.token_ids) - 1 for t in sessions[:4]]
    for row, t in enumerate(sessions[:4]):
        roles = {Role(r) for r, chosen in zip(t.roles, everything[row].tolist()) if chosen}
        assert roles == {Role.PROMPT, Role.TEMPLATE, Role.ACTION, Role.ENV}


def test_pretraining_on_all_tokens_lowers_heldout_env_ce_of_the_untrained_model(recorded, tmp_path):
    chat, sessions, heldout, path = recorded
    cfg = make_config("train.sft_targets=all", f"train.sft_transcripts={path}", "train.sft_batch_size=4",
                      "train.sft_epochs=1.6", "optim.lr=5e-3", "optim.warmup_steps=2", "name=pretrain")
    assert all(t.outcome == "unverified" for t in sessions)  # kept: a corpus, not demonstrations
    run = sft(cfg, tmp_path / "run")
    records = [r for r in RunDir(run).read_metrics() if r["kind"] == "sft"]
    assert len(records) == 16
    assert all(r["update/target_tokens"] > r["update/action_tokens"] + r["update/env_tokens"] for r in records)

    def env_ce(spec: str) -> float:
        model, tokenizer = load_policy_model(resolve_model_spec(spec))
        return heldout_env_ce(model, heldout, cfg, tokenizer.pad_token_id, DistContext(), path).value

    before, after = env_ce("tiny"), env_ce(str(latest_checkpoint(run / "checkpoints")))
    assert after < before - 0.6, (before, after)  # 16 small steps: 6.6 -> 5.6 nats/token measured


def test_action_targets_skip_unverified_sessions(recorded, tmp_path):
    _, _, _, path = recorded
    cfg = make_config(f"train.sft_transcripts={path}", "name=imitate")
    with pytest.raises(Exception, match="no solved transcript"):
        sft(cfg, tmp_path / "run")
