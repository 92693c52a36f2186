"""Benchmark: one ECHO update of a Qwen3-architecture model under FSDP2 on 2 ranks vs 1 process, and
activation checkpointing on vs off — time and peak memory per rank, as ratios measured in the same run.

The model is random-initialised from a Qwen3 config (width and depth as large as a 2-core, 16 GB machine
does in a few minutes; a 32k vocabulary, so that the decoder layers carry most of the parameters as in
Qwen3-8B, where the embeddings are ~7% — ``--vocab 151936`` for Qwen's own). Each variant runs in its own processes (torchrun with 2
gloo ranks for FSDP2) through the trainer's own code: :func:`echo_rl.train.parallel.parallelize` (for
FSDP2 this includes the sampler's unsharded copy), then :func:`echo_rl.train.update.policy_update` on this
rank's groups of the same global batch (``--rows`` synthetic transcripts of ``--tokens`` tokens, groups of
2). Update 1 warms up (AdamW allocates its state), update 2 is timed, update 3 is measured for memory:

    peak per rank = resident tensors before the update (parameters or shards, AdamW state, the sampler copy)
                    + the allocator-level peak above them during the update (echo_rl.train.memory.peak_memory)

    python benchmarks/parallel.py [--quick] [--hidden 768 --layers 8 --vocab 32768 --rows 4 --tokens 256]

Everything is fp32 (``policy.dtype`` float32), so the sampler's unsharded copy under FSDP2 costs 4 bytes per
parameter per rank here (2 in bf16).

"plan MiB" is the memory plan's per-rank estimate for the same configuration
(:func:`echo_rl.train.memplan.memory_plan`, what ``echo-rl train --plan`` prints) and "plan/peak" its ratio
to the measured peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from echo_rl.configfile import config_from_dict
from echo_rl.objective import LambdaBalancer
from echo_rl.distributed import gather_lists, init_distributed, shard
from echo_rl.train.memory import peak_memory
from echo_rl.train.memplan import memory_plan, shape_from_config
from echo_rl.train.optim import build_optimizer
from echo_rl.train.parallel import TrainedModel, parallelize
from echo_rl.train.update import policy_update

sys.path.insert(0, str(Path(__file__).parent))
from objective import _trajectory  # noqa: E402  (the synthetic transcripts of the objective benchmark)

GROUP = 2
CHUNK = 256  # log-prob chunk: a [256 x V] float32 block
VARIANTS = [  # name, ranks, parallel.mode, activation checkpointing
    ("1 process", 1, "none", False),
    ("1 process + ckpt", 1, "none", True),
    ("FSDP2 x2", 2, "fsdp2", False),
    ("FSDP2 x2 + ckpt", 2, "fsdp2", True),
]


def _model(job: dict) -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    hidden, layers, tokens = job["hidden"], job["layers"], job["tokens"]
    return Qwen3ForCausalLM(Qwen3Config(
        vocab_size=job["vocab"], hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128, head_dim=64,
        max_position_embeddings=tokens + 8, tie_word_embeddings=True,
    ))


def _resident_bytes(trained: TrainedModel, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of this rank's parameters (local shards), AdamW state and the sampler's copy."""
    tensors = [*trained.module.parameters()]
    tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    if trained.full is not trained.module:
        tensors += [*trained.full.parameters()]
    local = [t.to_local() if hasattr(t, "to_local") else t for t in tensors]
    return sum(t.numel() * t.element_size() for t in local)


def _config(job: dict):
    return config_from_dict({
        "parallel": {"mode": job["mode"], "activation_checkpointing": job["ckpt"]},
        "train": {"rollouts_per_task": GROUP, "micro_batch_size": 1},
        "episode": {"max_context_tokens": job["tokens"]},
        "objective": {"logprob_chunk_size": CHUNK},
        "optim": {"lr": 1e-5, "warmup_steps": 0},
    })


def _planned_bytes(job: dict, ranks: int) -> int:
    shape = shape_from_config(_model(job).config.to_dict(), "benchmark model")
    return memory_plan(_config(job), world_size=ranks, shape=shape).total


def worker(job: dict) -> None:
    """One variant on this rank (under torchrun or alone); rank 0 writes the result to job["out"]."""
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module")  # the root's outputs are views; none is written
    ctx = init_distributed("cpu")
    cfg = _config(job)
    trained = parallelize(_model(job), cfg, ctx)
    optimizer, scheduler = build_optimizer(trained.module, cfg.optim)
    groups = [[_trajectory(job["vocab"], job["tokens"], g * GROUP + i) for i in range(GROUP)]
              for g in range(job["rows"] // GROUP)]
    mine = [t for group in shard(groups, ctx) for t in group]
    balancer = LambdaBalancer(cfg.objective)

    def update(step: int) -> None:
        policy_update(trained.module, optimizer, scheduler, balancer, mine, cfg, step, 0, ctx)
        trained.refresh()

    update(1)
    start = time.perf_counter()
    update(2)
    seconds = time.perf_counter() - start
    resident = _resident_bytes(trained, optimizer)
    with peak_memory(ctx.device) as peak:
        update(3)
    per_rank = gather_lists([{"seconds": seconds, "peak": resident + peak.bytes, "resident": resident}], ctx)
    if ctx.is_main:
        Path(job["out"]).write_text(json.dumps(per_rank))


def run(job: dict, ranks: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        job = {**job, "out": str(Path(tmp) / "result.json")}
        launcher = [sys.executable] if ranks == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([*launcher, __file__, "--worker", json.dumps(job)], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        return json.loads(Path(job["out"]).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32_768)
    parser.add_argument("--rows", type=int, default=4, help="transcripts in the global batch (groups of 2)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per transcript")
    parser.add_argument("--quick", action="store_true", help="a small model, for a smoke run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    if args.quick:
        args.hidden, args.layers, args.tokens = 256, 2, 128
    job = {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab, "rows": args.rows, "tokens": args.tokens}
    params = sum(p.numel() for p in _model(job).parameters())
    print(f"Qwen3 architecture, {params / 1e6:.0f}M parameters (hidden {args.hidden}, {args.layers} layers, "
          f"V = {args.vocab}), fp32; one ECHO update of {args.rows} transcripts x {args.tokens} tokens, micro-batches "
          f"of 1; torch {torch.__version__}, {os.cpu_count()} CPUs")
    results = {}
    for name, ranks, mode, ckpt in VARIANTS:
        results[name] = run({**job, "mode": mode, "ckpt": ckpt}, ranks)
    base = results["1 process"][0]
    print(f"\n{'variant':<18}{'update s':>10}{'x 1 proc':>10}{'peak MiB/rank':>15}{'x 1 proc':>10}"
          f"{'resident MiB':>14}{'plan MiB':>10}{'plan/peak':>11}")
    for name, ranks, mode, ckpt in VARIANTS:
        seconds = max(r["seconds"] for r in results[name])
        peak = max(r["peak"] for r in results[name])
        resident = max(r["resident"] for r in results[name])
        planned = _planned_bytes({**job, "mode": mode, "ckpt": ckpt}, ranks)
        print(f"{name:<18}{seconds:>10.2f}{seconds / base['seconds']:>10.2f}{peak / 2**20:>15.0f}"
              f"{peak / base['peak']:>10.2f}{resident / 2**20:>14.0f}{planned / 2**20:>10.0f}{planned / peak:>11.2f}")
    for pair in (("1 process + ckpt", "1 process"), ("FSDP2 x2 + ckpt", "FSDP2 x2")):
        on, off = (max(r["peak"] for r in results[n]) for n in pair)
        t_on, t_off = (max(r["seconds"] for r in results[n]) for n in pair)
        print(f"checkpointing ({pair[1]}): peak x{on / off:.2f}, time x{t_on / t_off:.2f}")


if __name__ == "__main__":
    main()
