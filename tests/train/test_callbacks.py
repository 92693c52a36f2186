"""Callbacks of the training loop (:class:`echo_rl.train.loop.Callback`): a callback that stops the run
leaves a consistent, resumable run directory; ``should_save`` checkpoints where ``train.save_every`` would
not; pruning keeps what the callback keeps (also after a resume); the evaluation hook gets every result,
and ``should_evaluate`` moves evaluations off and onto the schedule.

Runs are 6-step SFT runs of the tiny model on two demonstrations (a few seconds each)."""

from __future__ import annotations

import json

import pytest
from train_configs import make_config

from echo_rl.rundir import RunDir
from echo_rl.train.checkpoint import list_checkpoints
from echo_rl.train.loop import Callback
from echo_rl.train.sft import sft

TIMING = {"time/step_s", "time/tokens_per_s"}
SIX_STEPS = ("name=cb", "train.sft_epochs=6", "train.save_every=0", "train.keep_checkpoints=1")


class Scripted(Callback):
    """Saves (and keeps) the checkpoint of step ``save_at``, stops after step ``stop_at``; records the hooks."""

    def __init__(self, save_at: int, stop_at: int) -> None:
        self.save_at, self.stop_at = save_at, stop_at
        self.calls: list[tuple[str, int]] = []

    def on_train_begin(self, loop, control):
        self.calls.append(("begin", loop.step))

    def on_step_end(self, loop, record, control):
        self.calls.append(("step", record["step"]))
        if loop.step == self.save_at:
            control.should_save = True
            control.keep.add(loop.step)
        control.should_stop = loop.step == self.stop_at

    def on_train_end(self, loop, control):
        self.calls.append(("end", loop.step))


def _train_records(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(run).read_metrics() if r["kind"] == "sft"]


def _checkpoint_steps(run):
    return [step for step, _ in list_checkpoints(run / "checkpoints")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return sft(make_config(*SIX_STEPS), tmp_path_factory.mktemp("whole") / "run")


def test_a_stopped_run_is_checkpointed_at_its_step_and_resumes_as_if_never_stopped(uninterrupted, tmp_path):
    assert _checkpoint_steps(uninterrupted) == [6]  # save_every 0, keep 1: only the end
    cfg, out = make_config(*SIX_STEPS), tmp_path / "run"
    script = Scripted(save_at=2, stop_at=4)
    sft(cfg, out, callbacks=[script])
    assert script.calls == [("begin", 0), ("step", 1), ("step", 2), ("step", 3), ("step", 4), ("end", 4)]
    # step 2: should_save, off the schedule, and kept past keep_checkpoints=1; step 4: where the run stopped
    assert _checkpoint_steps(out) == [2, 4]
    assert [r["step"] for r in _train_records(out)] == [1, 2, 3, 4]

    sft(cfg, out, resume=True)
    assert _train_records(out) == _train_records(uninterrupted)
    assert _checkpoint_steps(out) == [2, 6], "the kept step survives the resumed run's pruning"


class Evaluations(Callback):
    """Records every evaluation result; no step-0 evaluation, an extra one at step 1."""

    def __init__(self) -> None:
        self.results: list[dict] = []

    def on_train_begin(self, loop, control):
        assert control.should_evaluate  # a fresh run's step-0 evaluation, which this callback turns off
        control.should_evaluate = False

    def on_step_end(self, loop, record, control):
        control.should_evaluate = control.should_evaluate or loop.step == 1

    def on_evaluate(self, loop, result, control):
        self.results.append(result)


def test_the_evaluate_hook_receives_each_result_and_should_evaluate_changes_the_schedule(tmp_path):
    cfg = make_config(*SIX_STEPS, "train.eval_every=4", "eval.splits=[validation]", "eval.sampled=false")
    watch = Evaluations()
    out = sft(cfg, tmp_path / "run", callbacks=[watch])
    assert [r.step for r in watch.results] == [1, 4, 6]  # step 1 added, 0 removed, 4 and the end scheduled
    for result in watch.results:
        written = json.loads((out / "eval" / f"step-{result.step:06d}.json").read_text())
        assert written == json.loads(json.dumps(result.to_json()))
        assert result.summary("validation", "greedy").episodes == 2
    assert not (out / "eval" / "step-000000.json").exists()
    assert [r["step"] for r in RunDir(out).read_metrics() if r["kind"] == "eval"] == [1, 4, 6]
