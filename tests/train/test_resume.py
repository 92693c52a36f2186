"""Kill a run with SIGKILL in the middle of a rollout, collect its garbage, resume it: nothing leaks
(issue 10.5) and the resumed run's metrics equal those of the uninterrupted run (issue 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from train_configs import rl_config

from echo_rl.cli import main
from echo_rl.configfile import dump_config
from echo_rl.rundir import RunDir
from echo_rl.sandbox.owner import state_root
from echo_rl.sandbox.procs import with_argument
from echo_rl.train.session import run_label
from echo_rl.train.trainer import train

TIMING = {"time/rollout_s", "time/step_s", "time/tokens_per_s"}


def _wait_for(predicate, timeout_s=600.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _train_records(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(run).read_metrics() if r["kind"] == "train"]


def test_sigkill_mid_rollout_leaves_nothing_after_gc_and_resume_matches(rl_run, sft_run, tmp_path, capsys):
    reference = _train_records(rl_run("echo"))
    cfg = rl_config(sft_run, "echo")
    config = tmp_path / "echo.yaml"
    config.write_text(dump_config(cfg))
    out = tmp_path / "killed"
    label = run_label(out)
    sandboxes = lambda: sorted(state_root().glob(f"{label}.*"))
    proc = subprocess.Popen([sys.executable, "-m", "echo_rl", "train", str(config), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (out / "checkpoints" / "step-000002" / "COMPLETE").exists() or proc.poll() is not None)
        _wait_for(lambda: sandboxes() or proc.poll() is not None)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    left = sandboxes()
    assert left, "the kill did not land during a rollout"
    print(f"after SIGKILL: {len(left)} sandbox dirs, {sum(len(with_argument(str(d))) for d in left)} processes")

    assert main(["sandbox", "gc", "--label", label, "--no-containers"]) == 0
    print(capsys.readouterr().out.strip())
    assert sandboxes() == []
    assert all(with_argument(str(d)) == [] for d in left)

    train(cfg, out, resume=True)
    assert _train_records(out) == reference
