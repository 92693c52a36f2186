"""Benchmark: the memory plan's estimate vs the measured peak of a real training step, and the paper's plan.

For random-init Qwen3-architecture models (no weights downloaded) from a few million parameters up to the
largest that runs here in reasonable time, on CPU, fp32 with activation checkpointing off and on, and bf16
autocast over fp32 weights (the trainer's ``policy.dtype=bfloat16``): one
steady-state step (2 micro-batches of forward + backward of the objective's chunked log-prob pass, then
AdamW; :func:`echo_rl.train.memory.measured_step_peak`) measured at the CPU allocator (profiler
memory events: deterministic, unlike RSS), next to :func:`echo_rl.train.memplan.memory_plan`'s peak, and
their ratio. Then the plan alone for the paper's configuration (Qwen3-8B, 8 ranks of 80 GB, 16k tokens,
FSDP2, bf16 compute with fp32 master weights and AdamW, checkpointing) — FSDP2 is planned from first
principles here, not measured.

    python benchmarks/memory_plan.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from echo_rl.config import RunConfig  # noqa: E402
from echo_rl.train.memory import measured_step_peak  # noqa: E402
from echo_rl.train.memplan import GIB, PRESETS, memory_plan, shape_from_config  # noqa: E402

MIB = 2**20
#: (name, hidden, layers, heads, kv heads, intermediate, vocab, tokens)
MODELS = [
    ("small", 256, 4, 4, 2, 768, 4096, 2048),
    ("qwen-vocab", 256, 2, 4, 2, 768, 151_936, 1024),
    ("medium", 512, 8, 8, 4, 1536, 16_384, 2048),
    ("large", 1024, 8, 16, 8, 3072, 32_768, 2048),
]


def run_config(tokens: int, checkpointing: bool, dtype: str = "float32", **extra: dict) -> RunConfig:
    return RunConfig.model_validate({
        "policy": {"dtype": dtype},
        "train": {"micro_batch_size": 1}, "episode": {"max_context_tokens": tokens},
        "objective": {"logprob_chunk_size": 1024}, "parallel": {"activation_checkpointing": checkpointing},
        **extra,
    })


def measure(name: str, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int,
            tokens: int, checkpointing: bool, dtype: str) -> tuple[int, int, int]:
    """(parameters, planned peak, measured peak) of one configuration."""
    config = Qwen3Config(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, head_dim=hidden // heads, intermediate_size=intermediate,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids = torch.randint(0, vocab, (1, tokens))
    measured = measured_step_peak(model, ids, torch.ones_like(ids), chunk_size=1024, dtype=dtype)
    plan = memory_plan(run_config(tokens, checkpointing, dtype), shape=shape_from_config(config.to_dict(), name))
    return plan.shape.params, plan.total, measured


def paper_plans() -> None:
    print("\nplan for the paper's configuration (Qwen3-8B, 8 x 80 GB, 16,384 tokens, FSDP2, bf16 compute):")
    for checkpointing in (True, False):
        for micro in (1, 4):
            cfg = run_config(16_384, checkpointing, "bfloat16")
            cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"model": "qwen3-8b"})})
            cfg = cfg.model_copy(update={
                "parallel": cfg.parallel.model_copy(update={"mode": "fsdp2"}),
                "train": cfg.train.model_copy(update={"micro_batch_size": micro}),
            })
            plan = memory_plan(cfg, world_size=8)
            parts = ", ".join(f"{label} {value / GIB:.1f}" for label, value in plan.rows())
            verdict = "fits" if plan.total <= 80e9 else "does not fit"
            print(f"  checkpointing {'on ' if checkpointing else 'off'} micro-batch {micro}: {parts} -> "
                  f"peak {plan.total / GIB:.1f} GiB ({plan.total / 1e9:.1f} GB, {verdict} in 80 GB)")
    print(f"  (Qwen3-8B: {PRESETS['qwen3-8b'].params / 1e9:.2f}B parameters; GiB = 2^30 bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the two smallest models")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'model':<11} {'params':>8} {'tokens':>6} {'dtype':>8} {'ckpt':>4} {'planned MiB':>12} "
          f"{'measured MiB':>13} {'ratio':>6}")
    ratios = []
    for spec in MODELS[:2] if args.quick else MODELS:
        for dtype, checkpointing in (("float32", False), ("float32", True), ("bfloat16", False)):
            params, planned, measured = measure(*spec, checkpointing=checkpointing, dtype=dtype)
            ratios.append(planned / measured)
            print(f"{spec[0]:<11} {params / 1e6:7.1f}M {spec[-1]:>6} {dtype:>8} {'on' if checkpointing else 'off':>4} "
                  f"{planned / MIB:12.1f} {measured / MIB:13.1f} {planned / measured:6.3f}", flush=True)
    print(f"planned/measured: {min(ratios):.3f}-{max(ratios):.3f} (target: within 0.75-1.25)")
    paper_plans()


if __name__ == "__main__":
    main()
