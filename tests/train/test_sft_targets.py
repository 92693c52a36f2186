"""``train.sft_targets``: which tokens the SFT NLL covers — the actions (as before), or every token
(pre-training on shell sessions, which then lowers the held-out env CE of an untrained model); and
``train.sft_rehearsal``: that corpus rehearsed during imitation, which keeps what pre-training learnt."""

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
from echo_rl.train.loop import Callback
from echo_rl.train.sampler import TaskSampler
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


PRETRAIN = ("train.sft_targets=all", "train.sft_batch_size=4", "train.sft_epochs=1.6", "optim.lr=5e-3",
            "optim.warmup_steps=2")


@pytest.fixture(scope="module")
def pretrained(recorded, tmp_path_factory):
    """The run directory of 16 all-token steps on the 40 sessions."""
    _, _, _, path = recorded
    return sft(make_config(*PRETRAIN, f"train.sft_transcripts={path}", "name=pretrain"),
               tmp_path_factory.mktemp("pretrain") / "run")


def env_ce(spec: str, transcripts: list, path) -> float:
    """Env CE of the model ``spec`` on ``transcripts`` (recorded in the file ``path``)."""
    model, tokenizer = load_policy_model(resolve_model_spec(spec))
    return heldout_env_ce(model, transcripts, make_config(), tokenizer.pad_token_id, DistContext(), path).value


def test_pretraining_on_all_tokens_lowers_heldout_env_ce_of_the_untrained_model(recorded, pretrained):
    chat, sessions, heldout, path = recorded
    assert all(t.outcome == "unverified" for t in sessions)  # kept: a corpus, not demonstrations
    records = [r for r in RunDir(pretrained).read_metrics() if r["kind"] == "sft"]
    assert len(records) == 16
    assert all(r["update/target_tokens"] > r["update/action_tokens"] + r["update/env_tokens"] for r in records)
    before, after = env_ce("tiny", heldout, path), env_ce(str(latest_checkpoint(pretrained / "checkpoints")), heldout, path)
    assert after < before - 0.6, (before, after)  # 16 small steps: 6.6 -> 5.6 nats/token measured


def test_rehearsal_keeps_what_pretraining_learnt_through_imitation(recorded, pretrained, tmp_path):
    """Imitation alone overwrites the sessions' world model (the demo's measured problem); the same SFT with
    the sessions rehearsed keeps it, and logs the rehearsed loss beside the imitation loss."""
    chat, _, _, path = recorded
    unseen = asyncio.run(record_expert_transcripts(session_tasks(8, seed=99), chat, make_config())).transcripts
    start = str(latest_checkpoint(pretrained / "checkpoints"))
    imitate = ("optim.lr=5e-3", "train.sft_epochs=10", f"policy.model={start}")
    plain = sft(make_config(*imitate, "name=plain"), tmp_path / "plain")
    rehearsed = sft(make_config(*imitate, f"train.sft_rehearsal={path}", "train.sft_rehearsal_weight=1.0",
                                "name=rehearsed"), tmp_path / "rehearsed")
    records = [r for r in RunDir(rehearsed).read_metrics() if r["kind"] == "sft"]
    assert all(r["update/rehearsal_tokens"] > 0 for r in records)
    assert all(abs(r["update/loss"] - r["update/action_nll"] - r["update/rehearsal_nll"]) < 1e-4 for r in records)
    assert all("update/rehearsal_nll" not in r for r in RunDir(plain).read_metrics() if r["kind"] == "sft")
    ce = {name: env_ce(str(latest_checkpoint(run / "checkpoints")), unseen, path) for name, run in
          (("start", pretrained), ("plain", plain), ("rehearsed", rehearsed))}
    assert ce["rehearsed"] < ce["start"] + 1.0 and ce["rehearsed"] < ce["plain"] - 2.0, ce  # measured 4.5, 4.8, 9.5


def test_the_rehearsal_batch_has_a_size_of_its_own(recorded, tmp_path):
    """``train.sft_rehearsal_batch_size`` sessions a step, drawn by the rehearsal sampler, whatever the size
    of the demonstration batch: each step's rehearsed tokens are those of exactly the sessions it drew."""
    _, sessions, _, path = recorded
    cfg = make_config("train.sft_epochs=3", "train.sft_batch_size=1", f"train.sft_rehearsal={path}",
                      "train.sft_rehearsal_batch_size=3", "name=sized")
    records = [r for r in RunDir(sft(cfg, tmp_path / "run")).read_metrics() if r["kind"] == "sft"]
    drawn = TaskSampler(len(sessions), cfg.seed + 1)
    expected = [float(sum(len(sessions[i].token_ids) - 1 for i in drawn.next(3))) for _ in records]
    assert len(records) > 1 and [r["update/rehearsal_tokens"] for r in records] == expected


def test_a_rehearsing_run_resumes_drawing_the_sessions_it_would_have_drawn(recorded, pretrained, tmp_path):
    _, _, _, path = recorded
    args = ("train.sft_epochs=4", f"train.sft_rehearsal={path}", "train.sft_batch_size=2",
            f"policy.model={latest_checkpoint(pretrained / 'checkpoints')}", "train.save_every=2")
    whole = sft(make_config(*args, "name=whole"), tmp_path / "whole")

    class StopAtTwo(Callback):
        def on_step_end(self, loop, record, control):
            control.should_stop = loop.step == 2

    cut = tmp_path / "cut"
    sft(make_config(*args, "name=whole"), cut, callbacks=[StopAtTwo()])
    sft(make_config(*args, "name=whole"), cut, resume=True)
    nll = {run: [r["update/rehearsal_nll"] for r in RunDir(run).read_metrics() if r["kind"] == "sft"][-2:]
           for run in (whole, cut)}
    assert nll[whole] == pytest.approx(nll[cut], abs=1e-5)


def test_action_targets_skip_unverified_sessions(recorded, tmp_path):
    _, _, _, path = recorded
    cfg = make_config(f"train.sft_transcripts={path}", "name=imitate")
    with pytest.raises(Exception, match="no solved transcript"):
        sft(cfg, tmp_path / "run")
