"""One RL step of the demo's run configuration: the current settings against a baseline, side by side.

    python benchmarks/rl_step.py --demo runs/demo [--method echo] [--steps 4] [--warmup 1] [--new k=v …] [--baseline k=v …] [-- key.sub=value …]
    python benchmarks/rl_step.py --checkpoint CKPT --corpus DIR [...]
    python benchmarks/rl_step.py --demo runs/demo --new --baseline --baseline-src ../main/src   # new code vs old

Two trainers start from the same SFT checkpoint with the demo's ``run`` config (``demo.runs.run_config``,
per-step evaluation off): ``new`` with the overrides of ``--new`` (default ``policy.threads=1``: one
torch thread for sampling and update), ``baseline`` with those of ``--baseline`` (default none: the
demo as shipped, 2 threads); positional ``key.sub=value`` overrides apply to both. They run the
same steps interleaved — step s of one, then step s of the other, the order alternating — so both see
the same machine load, draw the same tasks and, where the sampler gives the same tokens, stay in step.
Per step: wall time, rollout time (episodes, sandboxes, verifier), update time (collate, forward/backward,
optimizer) and the process's CPU time; then medians and baseline/new ratios, and whether the two
trainers sampled the same token ids and computed the same loss at every step, and the largest difference
of the log-probs they recorded for the same tokens. ``--baseline-src DIR`` compares code rather than
settings: the baseline imports echo_rl from DIR (e.g. a checkout of main), the new trainer this script's
echo_rl, each in a child process driven step by step (same interleaving; CPU time per process).
``--demo OUT`` takes the checkpoint chosen by ``echo-rl demo --out OUT --until sft``
(``OUT/sft/selection.json``; the SFT run's latest checkpoint when the selection is missing) and the task
corpus of ``OUT/cache``.
Not a test: run it by hand; the figures depend on the machine and its load (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import echo_rl
from echo_rl.config import RunConfig

try:
    from echo_rl.configfile import apply_override
except ImportError:  # a --baseline-src checkout from before configfile.py
    from echo_rl.config import apply_override
from echo_rl.demo.config import load_demo_config
from echo_rl.demo.prepare import Prepared
from echo_rl.demo.runs import run_config
from echo_rl.train.session import open_session
from echo_rl.train.trainer import Trainer

# the default comparison: the demo as shipped (2 torch threads) against one thread for sampling and update
NEW = ["policy.threads=1"]
BASELINE: list[str] = []
THREADS = torch.get_num_threads()  # the process's own, for configs without policy.threads
RESULT = "rl_step result: "


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def demo_inputs(out: Path) -> tuple[Path, Path]:
    """(checkpoint, prepared root) of a demo directory that has run its SFT stage."""
    selection = out / "sft" / "selection.json"
    if selection.is_file():
        checkpoint = Path(json.loads(selection.read_text())["checkpoint"])
    else:
        checkpoints = sorted((out / "sft" / "checkpoints").glob("step-*"))
        if not checkpoints:
            raise SystemExit(f"{out}: no SFT checkpoint (run `echo-rl demo --out {out} --until sft` first)")
        checkpoint = checkpoints[-1]
    roots = [p.parent for p in (out / "cache").glob("*/DONE") if (p.parent / "corpus").is_dir()]
    if not roots:
        raise SystemExit(f"{out}/cache: no prepared corpus")
    return checkpoint, max(roots, key=lambda p: p.stat().st_mtime)


def configs(args: argparse.Namespace) -> dict[str, RunConfig]:
    demo = load_demo_config(())
    method = next((m for m in demo.methods if m.name == args.method), None)
    if method is None:
        raise SystemExit(f"--method: one of {', '.join(m.name for m in demo.methods)}")
    if args.demo:
        checkpoint, root = demo_inputs(Path(args.demo))
    else:
        checkpoint, root = Path(args.checkpoint), Path(args.corpus).parent
    base = run_config(demo, method, 0, Prepared(root, {}), checkpoint).model_dump(mode="json")
    if args.corpus:
        base["tasks"]["corpus"] = args.corpus
    out = {}
    for name, overrides in (("new", [*args.overrides, *args.new]), ("baseline", [*args.overrides, *args.baseline])):
        data = json.loads(json.dumps(base))
        for item in ["train.eval_every=0", "logging.progress=false", "train.save_transcripts=0", *overrides]:
            apply_override(data, item)
        out[name] = RunConfig.model_validate(data)
    return out


def timed_step(trainer: Trainer, step: int) -> dict[str, Any]:
    captured: dict[str, Any] = {}
    rollouts = trainer.rollouts

    def keep(s: int) -> Any:
        local, refill = rollouts(s)
        captured["tokens"] = [t.token_ids for t in local]
        captured["logprobs"] = [t.logprobs for t in local]
        return local, refill

    trainer.rollouts = keep  # type: ignore[method-assign]
    cpu, start = cpu_seconds(), time.monotonic()
    try:
        record, _ = trainer.train_step(step)
    finally:
        del trainer.rollouts
    wall = time.monotonic() - start
    rollout = record["time/rollout_s"]
    return {"wall": wall, "rollout": rollout, "update": wall - rollout, "cpu": cpu_seconds() - cpu,
            "tokens": captured["tokens"], "logprobs": captured["logprobs"], "loss": record.get("update/loss")}


class InProcess:
    """A trainer of ``cfg`` in this process (the code this script imports)."""

    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.threads = cfg.policy.threads
        self.session = open_session(cfg, run_dir, resume=False, splits=("train",), training=True)
        self.trainer = Trainer(self.session)

    def step(self, step: int) -> dict[str, Any]:
        torch.set_num_threads(self.threads or THREADS)
        return timed_step(self.trainer, step)

    def close(self) -> None:
        self.session.close()


class Worker:
    """A trainer of ``cfg`` in a child process that imports echo_rl from ``src`` (another checkout's code:
    old against new), driven one step at a time over its stdin/stdout."""

    def __init__(self, cfg: RunConfig, run_dir: Path, src: Path) -> None:
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(cfg.model_dump_json())
        env = os.environ | {"PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(run_dir)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def step(self, step: int) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{step}\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT):])
        raise SystemExit(f"worker exited with {self.proc.wait()}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def worker(run_dir: Path) -> None:
    """The child of :class:`Worker`: steps named on stdin, one result line each on stdout."""
    trainer = InProcess(RunConfig.model_validate_json((run_dir / "config.json").read_text()), run_dir / "run")
    for line in sys.stdin:
        print(RESULT + json.dumps(trainer.step(int(line))), flush=True)
    trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", help="a demo output directory after --until sft")
    parser.add_argument("--checkpoint", help="an SFT checkpoint (with --corpus)")
    parser.add_argument("--corpus", help="the task corpus directory (default: the demo's)")
    parser.add_argument("--method", default="echo", help="a demo method (default: echo)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--new", nargs="*", default=NEW, help=f"overrides of the measured trainer (default: {NEW})")
    parser.add_argument("--baseline", nargs="*", default=BASELINE, help="overrides of the baseline (default: none)")
    parser.add_argument("--baseline-src", help="run the baseline with the echo_rl of this src directory (another "
                        "checkout, e.g. main's), each trainer in a process of its own")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides of the run config (both trainers)")
    args = parser.parse_args()
    if args.worker:
        return worker(Path(args.worker))
    if not args.demo and not (args.checkpoint and args.corpus):
        parser.error("--demo, or --checkpoint with --corpus")
    cfgs = configs(args)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in cfgs}
    own_src = Path(echo_rl.__file__).resolve().parents[1]
    srcs = {"new": own_src, "baseline": Path(args.baseline_src).resolve()} if args.baseline_src else {}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: Worker(cfg, Path(tmp) / name, srcs[name]) if srcs else InProcess(cfg, Path(tmp) / name)
                    for name, cfg in cfgs.items()}
        print(f"{args.method}, {args.steps} steps, {THREADS} torch threads, load {os.getloadavg()[0]:.1f} at start; "
              + (f"baseline code {srcs['baseline']}, new {own_src}" if srcs else "both trainers in this process"),
              flush=True)
        for step in range(1, args.warmup + args.steps + 1):
            order = list(trainers) if step % 2 else list(reversed(trainers))
            for name in order:
                result = trainers[name].step(step)
                if step <= args.warmup:
                    print(f"step {step} {name:8s} (warm-up) wall {result['wall']:6.2f} s", flush=True)
                    continue
                results[name].append(result)
                print(f"step {step} {name:8s} wall {result['wall']:6.2f} s  rollout {result['rollout']:6.2f}  "
                      f"update {result['update']:6.2f}  cpu {result['cpu']:6.2f}  load {os.getloadavg()[0]:.1f}",
                      flush=True)
        for trainer in trainers.values():
            trainer.close()
    report(results, args.steps)


def report(results: dict[str, list[dict[str, Any]]], steps: int) -> None:
    print(f"\n{'median over ' + str(steps) + ' steps':24s} {'baseline':>9s} {'new':>9s} {'baseline/new':>13s}")
    for key in ("wall", "rollout", "update", "cpu"):
        old, new = (statistics.median(r[key] for r in results[name]) for name in ("baseline", "new"))
        print(f"{key + ' s':24s} {old:9.2f} {new:9.2f} {old / max(new, 1e-9):12.2f}x")
    same_tokens = [a["tokens"] == b["tokens"] for a, b in zip(results["baseline"], results["new"])]
    loss_diff = max(abs((a["loss"] or 0.0) - (b["loss"] or 0.0)) for a, b in zip(results["baseline"], results["new"]))
    logprob_diff = max((abs(x - y) for a, b, same in zip(results["baseline"], results["new"], same_tokens) if same
                        for u, v in zip(a["logprobs"], b["logprobs"]) for x, y in zip(u, v)), default=float("nan"))
    print(f"same sampled token ids in {sum(same_tokens)} of {steps} timed steps; max |loss difference| "
          f"{loss_diff:.2e}; max |log-prob difference| of the same tokens {logprob_diff:.2e}")
    print(f"load at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
