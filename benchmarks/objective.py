"""Benchmark: what the env term costs on top of GRPO, and what chunked log-probs save.

Printed side by side in one run, for a tiny config and a Qwen-vocabulary config (V = 151,936; layers and
width kept small so it runs on a laptop CPU):

    (a) grpo         GRPO alone: one forward, chunked log-probs, the policy term, backward
    (b) echo         ECHO: policy term + λ·env CE from the same log-probs of the same pass
    (c) echo-2pass   naive ECHO: the env CE from a second forward pass
    (e) echo+probe   ECHO with the per-term gradient probe (one forward, two backward passes)
    (d) log-prob peak memory (forward + backward) of full [T × V] logits vs chunked, at T = 16,384

On a shared machine step times vary by a few percent from round to round, more than (b) adds to (a); so
each config also times the objective alone from fixed log-probs (both terms, their metrics and their
backward down to the log-probs), GRPO against ECHO over many iterations: the difference is exactly what
ECHO adds to a step, and 1 + difference / (a) is the step-time ratio it implies.

Step time: one process per config runs the variants in interleaved rounds, so load from other processes
hits them alike; it reports the CPU time of the process per step (with one torch thread: the work done,
which other processes can only inflate — best and median round) and the best wall time. Peak memory: one subprocess per
variant, peak RSS (VmHWM, reset after set-up) minus RSS after set-up, with glibc returning every
allocation over 64 KiB to the system on free (MALLOC_MMAP_THRESHOLD_) so that RSS tracks live tensors. (d) measures the full-logits version at the
largest T whose estimated peak fits in half the free memory, and extrapolates it linearly to T = 16,384
(every [T × V] buffer grows linearly in T), with a printed note; the chunked version runs at T = 16,384.

    python benchmarks/objective.py [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

import psutil
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from echo_rl.objective.batch import collate
from echo_rl.config import ObjectiveConfig
from echo_rl.objective import (
    LambdaBalancer,
    TokenLogprobs,
    batch_logprobs,
    echo_loss,
    env_term,
    full_logits_logprobs,
    per_term_gradients,
    policy_term,
    token_logprobs,
)
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.roles import Role

CONFIGS = {  # name: model sizes, rows × tokens per step, timing rounds
    "tiny": {"vocab": 512, "hidden": 64, "layers": 2, "rows": 8, "tokens": 512, "rounds": 30},
    "qwen-vocab": {"vocab": 151_936, "hidden": 64, "layers": 2, "rows": 2, "tokens": 512, "rounds": 5},
}
VARIANTS = ("grpo", "echo", "echo-2pass", "echo+probe")
LOGPROB_T = 16_384
FULL_LOGITS_COPIES = 5  # [T × V] float32 buffers alive at the full-logits peak (logits, /τ, log-softmax, grads)
CFG = ObjectiveConfig()


def _model(spec: dict, max_tokens: int) -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=spec["vocab"],
        hidden_size=spec["hidden"],
        intermediate_size=2 * spec["hidden"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=spec["hidden"] // 4,
        max_position_embeddings=max_tokens + 8,
    )
    return Qwen3ForCausalLM(config)


def _trajectory(vocab: int, tokens: int, seed: int) -> Trajectory:
    """A prompt, then turns of 24 action / 3 template / (6 warning) / 48 env / 2 template tokens."""
    rng = random.Random(seed)
    roles = [Role.PROMPT] * 64
    turn = 0
    while len(roles) < tokens:
        warning = [Role.WARNING] * 6 if turn % 2 else []
        roles += [Role.ACTION] * 24 + [Role.TEMPLATE] * 3 + warning + [Role.ENV] * 48 + [Role.TEMPLATE] * 2
        turn += 1
    roles = [int(r) for r in roles[:tokens]]
    return Trajectory(
        task_id=f"t{seed // 2}",
        token_ids=[rng.randrange(1, vocab) for _ in roles],
        roles=roles,
        logprobs=[-rng.uniform(0.1, 3) if r == Role.ACTION else 0.0 for r in roles],
        reward=float(seed % 2),
    )


def _batch(spec: dict):
    trajs = [_trajectory(spec["vocab"], spec["tokens"], i) for i in range(spec["rows"])]
    advantages = [1.0 if t.reward else -1.0 for t in trajs]
    return collate(trajs, advantages, CFG, pad_id=0, temperature=0.8)


def _step(variant: str, model, batch) -> None:
    """One objective step: loss, backward (gradients left in p.grad), then cleared."""
    if variant in ("grpo", "echo"):
        cfg = CFG.model_copy(update={"algorithm": variant})
        echo_loss(model, batch, cfg, LambdaBalancer(cfg).weights(0))[0].backward()
    elif variant == "echo-2pass":
        policy, _ = policy_term(batch_logprobs(model, batch, CFG).logprobs, batch, CFG)
        env, _ = env_term(batch_logprobs(model, batch, CFG).logprobs, batch, CFG.env)
        (policy + CFG.env.lam * env).backward()
    else:
        cfg = CFG.model_copy(update={"grad_probe_every": 1})
        LambdaBalancer(cfg).apply(per_term_gradients(model, [batch], cfg), step=0)
    model.zero_grad(set_to_none=True)


def _objective_only_ms(model, batch, repeats: int = 5, iterations: int = 100) -> dict[str, float]:
    """CPU ms per call of GRPO's and ECHO's loss + backward from fixed log-probs (best of ``repeats``)."""
    with torch.no_grad():
        entropy = batch_logprobs(model, batch, CFG).entropy
    logprobs = torch.randn(batch.input_ids.shape).sub_(3).requires_grad_()
    best = {"grpo": float("inf"), "echo": float("inf")}
    for _ in range(repeats):
        for variant in ("grpo", "echo"):
            cfg = CFG.model_copy(update={"algorithm": variant})
            start = time.process_time()
            for _ in range(iterations):
                echo_loss(TokenLogprobs(logprobs, entropy), batch, cfg, LambdaBalancer(cfg).weights(0))[0].backward()
            best[variant] = min(best[variant], (time.process_time() - start) / iterations * 1e3)
    return best


def _rss_mb(key: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(key))
    return int(line.split()[1]) / 1024


def _measure_peak(fn) -> dict:
    """Run ``fn`` once; its peak RSS over the RSS before it (MB), and its wall time."""
    base = _rss_mb()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    fn()
    return {"peak_mb": _rss_mb("VmHWM") - base, "total_mb": _rss_mb("VmHWM"), "seconds": time.perf_counter() - start}


def worker(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    if job["kind"] == "logprobs":
        spec = CONFIGS["qwen-vocab"]
        model = _model(spec, job["tokens"])
        ids = torch.randint(1, spec["vocab"], (1, job["tokens"]), generator=torch.Generator().manual_seed(0))
        fn = token_logprobs if job["impl"] == "chunked" else full_logits_logprobs
        return _measure_peak(lambda: fn(model, ids, torch.ones_like(ids)).logprobs.sum().backward())
    spec = CONFIGS[job["config"]]
    model, batch = _model(spec, spec["tokens"]), _batch(spec)
    if job["kind"] == "memory":
        return _measure_peak(lambda: _step(job["variant"], model, batch))
    for variant in VARIANTS:  # warm-up
        _step(variant, model, batch)
    times: dict[str, dict[str, list[float]]] = {v: {"cpu": [], "wall": []} for v in VARIANTS}
    for _ in range(job["rounds"]):
        for variant in VARIANTS:
            cpu, wall = time.process_time(), time.perf_counter()
            _step(variant, model, batch)
            times[variant]["cpu"].append(time.process_time() - cpu)
            times[variant]["wall"].append(time.perf_counter() - wall)
    return {"steps": times, "objective_ms": _objective_only_ms(model, batch)}


def run(job: dict) -> dict:
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _verdict(value: float, target: float) -> str:
    return f"{value:.3f} (target <= {target:g}: {'met' if value <= target else 'NOT met'})"


def bench_steps(threads: int, quick: bool) -> None:
    print("\n## (a)-(c), (e): one objective step (forward + loss + backward), chunk 1024, λ = 0.05")
    print(
        f"{'config':<11} {'variant':<11} {'cpu s':>7} {'(median)':>8} {'wall s':>7} {'peak MB':>8} "
        f"{'cpu/grpo':>9} {'wall/grpo':>10} {'mem/grpo':>9}"
    )
    ratios = {}
    for name, spec in CONFIGS.items():
        rounds = 2 if quick else spec["rounds"]
        timing = run({"kind": "time", "config": name, "threads": threads, "rounds": rounds})
        times, objective_ms = timing["steps"], timing["objective_ms"]
        memory = {v: run({"kind": "memory", "config": name, "variant": v, "threads": threads}) for v in VARIANTS}
        cpu = {v: min(t["cpu"]) for v, t in times.items()}
        wall = {v: min(t["wall"]) for v, t in times.items()}
        for v in VARIANTS:
            ratios[(name, v)] = (cpu[v] / cpu["grpo"], memory[v]["peak_mb"] / memory["grpo"]["peak_mb"])
            print(
                f"{name:<11} {v:<11} {cpu[v]:>7.3f} {statistics.median(times[v]['cpu']):>8.3f} {wall[v]:>7.3f} "
                f"{memory[v]['peak_mb']:>8.1f} "
                f"{ratios[(name, v)][0]:>9.3f} {wall[v] / wall['grpo']:>10.3f} {ratios[(name, v)][1]:>9.3f}"
            )
        print(
            f"{'':<11} (V={spec['vocab']:,}, hidden {spec['hidden']}, {spec['layers']} layers, "
            f"{spec['rows']} rows × {spec['tokens']} tokens; best of {rounds} rounds)"
        )
        added = objective_ms["echo"] - objective_ms["grpo"]
        ratios[(name, "implied")] = 1 + added / (cpu["grpo"] * 1e3)
        print(
            f"{'':<11} objective alone from fixed log-probs: grpo {objective_ms['grpo']:.3f} ms, "
            f"echo {objective_ms['echo']:.3f} ms: ECHO adds {added:.3f} ms to a {cpu['grpo'] * 1e3:.0f} ms step"
        )
    for name in CONFIGS:
        time_ratio, mem_ratio = ratios[(name, "echo")]
        print(
            f"{name}: ECHO/GRPO step time (cpu) {_verdict(time_ratio, 1.03)}; implied by the objective alone "
            f"{_verdict(ratios[(name, 'implied')], 1.03)}; peak memory {_verdict(mem_ratio, 1.02)}"
        )


def bench_logprobs(threads: int, quick: bool) -> None:
    vocab = CONFIGS["qwen-vocab"]["vocab"]
    available = psutil.virtual_memory().available
    target_t = 2048 if quick else LOGPROB_T
    full_t = target_t
    while full_t > 256 and FULL_LOGITS_COPIES * full_t * vocab * 4 > available / 2:
        full_t //= 2
    print(f"\n## (d) log-probs of one sequence, forward + backward, V = {vocab:,} (Qwen-vocab model)")
    print(
        f"free memory {available / 2**30:.1f} GiB; full logits at T = {target_t:,} would need ~"
        f"{FULL_LOGITS_COPIES * target_t * vocab * 4 / 2**30:.0f} GiB ({FULL_LOGITS_COPIES} × T × V × 4 B)"
    )
    if full_t < target_t:
        print(
            f"note: the full-logits version runs at T = {full_t:,} (estimated peak under half the free memory) "
            f"and is extrapolated linearly to T = {target_t:,}"
        )
    rows = {}
    for impl, tokens in (("full", full_t), ("chunked", full_t), ("chunked", target_t)):
        if (impl, tokens) not in rows:
            rows[(impl, tokens)] = run({"kind": "logprobs", "impl": impl, "tokens": tokens, "threads": threads})
    print(f"{'impl':<9} {'T':>7} {'peak MB':>9} {'seconds':>8}")
    for (impl, tokens), r in rows.items():
        print(f"{impl:<9} {tokens:>7,} {r['peak_mb']:>9.1f} {r['seconds']:>8.2f}")
    full_peak = rows[("full", full_t)]["peak_mb"] * target_t / full_t
    chunked_peak = rows[("chunked", target_t)]["peak_mb"]
    label = "extrapolated" if full_t < target_t else "measured"
    print(f"full logits at T = {target_t:,}: {full_peak:,.0f} MB ({label})")
    print(f"chunked/full peak memory at T = {target_t:,}: {_verdict(chunked_peak / full_peak, 0.1)}")
    print(
        f"chunked/full peak memory at T = {full_t:,} (both measured): "
        f"{rows[('chunked', full_t)]['peak_mb'] / rows[('full', full_t)]['peak_mb']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--quick", action="store_true", help="2 timing rounds, T = 2,048 for (d): a smoke run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    print(
        f"# benchmarks/objective.py — {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s) per process, load average {os.getloadavg()[0]:.1f}"
    )
    bench_steps(args.threads, args.quick)
    bench_logprobs(args.threads, args.quick)


if __name__ == "__main__":
    main()
