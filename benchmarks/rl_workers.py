"""The demo's RL stage one run at a time (2 torch threads) against two runs side by side (1 thread each).

    python benchmarks/rl_workers.py --demo runs/demo [--steps 10] [--rounds 2]

Two RL runs of the demo's run configuration (ECHO as shipped, seeds 0 and 1, per-step evaluation off) from
the SFT checkpoint of ``echo-rl demo --out DIR --until sft``, each an ``echo-rl train`` process:
**sequential**, one after the other with ``policy.threads=2`` (``rl_workers: 1``), and **side by side**,
both at once with ``policy.threads=1`` (``rl_workers: 2``). Rounds alternate the order of the two modes so
both see the same machine. Per mode: the wall time of both runs, the median step of each, and the share of
the two cores the machine was busy (``/proc/stat``: the trainers, their sandboxes and verifiers, anything
else) and the share the hypervisor stole from it; then sequential / side-by-side wall-time ratios. Also
printed: the same two runs side by side with 2 threads each, the oversubscribed case the demo avoids
(``--oversubscribed``).
Not a test: run it by hand; the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_step import demo_inputs  # noqa: E402

from echo_rl.configfile import dump_config, with_changes  # noqa: E402
from echo_rl.demo.config import load_demo_config  # noqa: E402
from echo_rl.demo.console import MachineTicks  # noqa: E402
from echo_rl.demo.prepare import Prepared  # noqa: E402
from echo_rl.demo.runs import run_config  # noqa: E402

MODES = {"sequential": (2, False), "side by side": (1, True), "side by side, 2 threads each": (2, True)}


def write_configs(demo_dir: Path, steps: int, threads: int, into: Path) -> list[Path]:
    checkpoint, root = demo_inputs(demo_dir)
    cfg = load_demo_config(())
    method = next(m for m in cfg.methods if m.name == "echo")
    paths = []
    for seed in (0, 1):
        run = with_changes(run_config(cfg, method, seed, Prepared(root, {}), checkpoint), {
            "train": {"steps": steps, "eval_every": 0}, "policy": {"threads": threads}, "logging": {"progress": False}})
        paths.append(into / f"seed{seed}.yaml")
        paths[-1].write_text(dump_config(run))
    return paths


def run_mode(demo_dir: Path, steps: int, threads: int, together: bool, scratch: Path) -> dict[str, float]:
    configs = write_configs(demo_dir, steps, threads, scratch)
    outs = [scratch / f"run-{path.stem}" for path in configs]
    command = lambda cfg, out: [sys.executable, "-m", "echo_rl", "train", str(cfg), "--out", str(out)]  # noqa: E731
    logs = [scratch / f"{path.stem}.log" for path in configs]
    before = MachineTicks.now()
    start = time.monotonic()
    start_run = lambda i: subprocess.Popen(command(configs[i], outs[i]), stdout=logs[i].open("w"),  # noqa: E731
                                           stderr=subprocess.STDOUT)
    if together:
        procs = [start_run(i) for i in range(len(configs))]
        codes = [p.wait() for p in procs]
    else:
        codes = [start_run(i).wait() for i in range(len(configs))]
    wall = time.monotonic() - start
    shares = MachineTicks.now().shares_since(before)
    for code, log in zip(codes, logs):
        if code:
            raise SystemExit(f"a training run failed (exit {code}):\n{log.read_text()[-2000:]}")
    steps_s = [statistics.median(json.loads(line)["time/step_s"] for line in (out / "metrics.jsonl").read_text().splitlines()
                                 if json.loads(line).get("kind") == "train") for out in outs]
    return {"wall_s": wall, "step_s": statistics.mean(steps_s), **shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="a demo directory that has run its SFT stage")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--oversubscribed", action="store_true", help="also two runs at once with 2 threads each")
    args = parser.parse_args()
    modes = [m for m in MODES if args.oversubscribed or "2 threads each" not in m]
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.steps} steps a run, 2 runs a mode")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for round_ in range(args.rounds):
        for mode in modes if round_ % 2 == 0 else reversed(modes):
            threads, together = MODES[mode]
            with tempfile.TemporaryDirectory() as scratch:
                result = run_mode(args.demo, args.steps, threads, together, Path(scratch))
            results[mode].append(result)
            print(f"round {round_ + 1}, {mode}: both runs {result['wall_s']:.1f} s, a step {result['step_s']:.2f} s, "
                  f"cores busy {100 * result['busy']:.0f}%, stolen {100 * result['stolen']:.0f}%", flush=True)
    base = statistics.median(r["wall_s"] for r in results["sequential"])
    for mode in modes:
        wall = statistics.median(r["wall_s"] for r in results[mode])
        busy = statistics.median(r["busy"] for r in results[mode])
        print(f"{mode:>30}: {wall:7.1f} s for both runs (median of {args.rounds}), cores busy {100 * busy:.0f}%, "
              f"sequential / this = {base / wall:.2f}x")


if __name__ == "__main__":
    main()
