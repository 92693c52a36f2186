"""Rollout throughput: batched generation across live episodes vs one episode at a time.

    python benchmarks/rollout.py [--threads 1] [--tokens 64] [--episodes 32] [--model tiny|PATH] [key.sub=value …]

1. Generation: the same model continues N prompts of a realistic, ragged length, once as ONE batched
   call (what the episode loop does each step) and once prompt by prompt; new tokens per second. The
   prompts share their start (as a step's prompts share the system prompt); both ways use the prefix
   cache — the batched call computes the shared start once, the one-at-a-time calls reuse the previous
   call's.
2. Episodes: the full loop (policy ↔ harness ↔ local bubblewrap sandbox ↔ verifier) on generated
   ``key_copy`` tasks, ``--episodes`` of them with 1, 8 and 32 at once; episodes/s against the
   one-at-a-time run (target: ≥ 4× at 32), and where an episode's time went. With the default model
   (``tiny``: random weights, 3.4M parameters) no action is valid, so an episode is one turn that runs to
   ``--tokens`` plus sandbox set-up and verification. For multi-turn episodes pass an SFT checkpoint and
   the harness it was trained with, e.g. the demo's: ``--model runs/demo/sft/checkpoints/step-000175
   harness.action_format=plain harness.require_think=false 'harness.system_prompt=Solve the task in a Linux
   terminal: one bash command per turn, then call done.' episode.max_turns=6``.
"""

from __future__ import annotations

import argparse
import time

import torch

from echo_rl.config import RunConfig
from echo_rl.configfile import apply_override
from echo_rl.harness.chat import ChatFormat
from echo_rl.models.load import load_policy_model
from echo_rl.rollout.episode import EpisodeRequest, EpisodeRunner, run_episodes
from echo_rl.rollout.policy.base import SamplingParams
from echo_rl.rollout.policy.hf import TransformersPolicy
from echo_rl.tasks.families import generate


def generation(policy: TransformersPolicy, prompt: list[int], n: int, tokens: int) -> tuple[float, float]:
    prompts = [prompt[: len(prompt) - i] for i in range(n)]  # ragged, as live episodes are
    start = time.perf_counter()
    policy.generate(prompts, tokens, SamplingParams(temperature=0.8))
    batched = n * tokens / (time.perf_counter() - start)
    start = time.perf_counter()
    for p in prompts:
        policy.generate([p], tokens, SamplingParams(temperature=0.8))
    return batched, n * tokens / (time.perf_counter() - start)


def episodes(
    policy: TransformersPolicy, chat: ChatFormat, cfg: RunConfig, concurrency: int, total: int
) -> tuple[float, str]:
    """Episodes per second at ``concurrency``, and a table row: turns and tokens per episode, forward
    passes of the policy and their mean number of rows, and the mean time split of an episode."""
    tasks = [generate("key_copy", seed) for seed in range(total)]
    runner = EpisodeRunner(policy, chat, cfg, label="bench-rollout")
    start = time.perf_counter()
    trajectories = run_episodes(runner, [EpisodeRequest(t) for t in tasks], concurrency=concurrency)
    elapsed = time.perf_counter() - start
    infra = [t.verifier_reason for t in trajectories if t.outcome == "infra_error"]
    assert not infra, infra
    mean = {
        key: sum(t.timings.get(key, 0.0) for t in trajectories) / total
        for key in ("setup_s", "generate_s", "exec_s", "verify_s", "total_s")
    }
    turns = sum(len(t.turns) for t in trajectories) / total
    tokens = sum(len(t.token_ids) for t in trajectories) / total
    passes, rows = len(runner.batch_sizes), sum(runner.batch_sizes) / max(len(runner.batch_sizes), 1)
    row = f"{total / elapsed:>8.2f}  |{turns:>6.1f} {tokens:>7.0f} |{passes:>7d} {rows:>5.1f} |"
    return total / elapsed, row + "".join(f"{mean[key]:>8.2f}" for key in mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per turn (generation and episodes)")
    parser.add_argument("--episodes", type=int, default=32, help="episodes per concurrency level")
    parser.add_argument("--model", default="tiny", help="'tiny', 'smollm2-135m' or a checkpoint directory")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="changes to the run config")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_policy_model(args.model)
    data: dict = {"episode": {"max_turn_tokens": args.tokens}}
    for override in args.overrides:
        apply_override(data, override)
    cfg = RunConfig.model_validate(data)
    chat = ChatFormat.from_config(tokenizer, cfg.harness)
    policy = TransformersPolicy(model, pad_token_id=tokenizer.pad_token_id, seed=0)
    prompt = chat.prompt(generate("key_copy", 0).instruction).ids
    print(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; prompt "
        f"{len(prompt)} tokens, {args.tokens} new tokens per turn, torch threads {args.threads}"
    )
    print("\ngeneration, new tokens/s   batched   one at a time   ratio")
    for n in (8, 32):
        batched, single = generation(policy, prompt, n, args.tokens)
        print(f"  {n:>2} prompts             {batched:>8.0f}   {single:>13.0f}   {batched / single:>5.1f}x")
    print(f"\nepisodes ({args.episodes} per row)         | per episode   | forwards     | mean seconds per episode")
    print("  at once  ratio  episodes/s | turns  tokens | passes  rows |   setup     gen    exec  verify   total")
    base = None
    for concurrency in (1, 8, 32):
        rate, row = episodes(policy, chat, cfg, concurrency, args.episodes)
        base = base or rate
        print(f"  {concurrency:>7}  {rate / base:>4.1f}x  {row}")


if __name__ == "__main__":
    main()
