"""TRL's GRPOTrainer vs ``echo-rl train`` vs EchoGRPOTrainer on the same model, tasks and batch.

    python benchmarks/trl_vs_echo.py [--steps 4] [--repeats 2] [--tasks 8] [--completions 4] [--tokens 64]
                                     [--cases single,multi] [--threads 1] [--loss-only]

Every trainer starts from the same randomly initialised tiny Qwen3 (``load_policy_model("tiny")``), trains
GRPO (λ = 0.05 for the ECHO trainers) at lr 5e-5 on the same ``--tasks`` generated tasks (the train split of
``configs/tiny.yaml`` with ``tasks.num_train = --tasks``), ``--completions`` rollouts each, ``--tokens`` new
tokens a turn, fp32, no activation checkpointing. Each is rewarded by the tasks' own verifiers in echo-rl
sandboxes: TRL through ``EchoEnvironment`` (``environment_factory``), echo-rl through its episode loop.

- single: one turn. TRL runs without tool calls (``max_tool_calling_iterations=0``); echo-rl
  ``episode.max_turns=1``.
- multi: two turns. The random model never writes a tool call, so the TRL trainers' first turn is scripted
  (one ``run_command`` call), the second is sampled after the sandbox's output; echo-rl ``episode.max_turns=2``
  samples both of its turns (its first action is usually not a valid command, so its turn 2 follows a format
  warning) — the same shape of work, not the same tokens.

Each (case, trainer) runs in a fresh process, the runs interleaved over ``--repeats`` rounds, so machine load
hits every trainer alike; the first step (warm-up) is dropped. Reported per trainer: seconds per step
(median and range over every step of every round), sampled tokens per second of step, peak RSS of the
trainer's process, and ratios to TRL's GRPOTrainer of the same case. On a shared machine (other jobs on the
cores) compare the ratios, never the absolute figures.

Last, ``--loss-only`` alone: the one piece of a step EchoGRPOTrainer changes — TRL's loss + backward against
EchoGRPOTrainer's on the same batch, interleaved, in process CPU time (steadier than whole steps on a busy
machine; generation, tools and rewards are TRL's own code in both).
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

TRAINERS = ("trl", "echo-rl", "echo-trl")
LABELS = {"trl": "TRL GRPOTrainer", "echo-rl": "echo-rl train", "echo-trl": "EchoGRPOTrainer"}
ROOT = Path(__file__).resolve().parents[1]


def _base_config(a: argparse.Namespace, turns: int, steps: int) -> list[str]:
    return [
        str(ROOT / "configs" / "tiny.yaml"),
        f"policy.threads={a.threads}",
        f"tasks.num_train={a.tasks}",
        f"train.steps={steps}",
        f"train.tasks_per_step={a.tasks}",
        f"train.rollouts_per_task={a.completions}",
        f"train.micro_batch_size={a.tasks * a.completions}",
        "train.save_every=0",
        f"episode.max_turns={turns}",
        f"episode.max_turn_tokens={a.tokens}",
        "optim.lr=5e-5",
    ]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_echo_rl(a: argparse.Namespace, turns: int, out: Path) -> dict:
    from echo_rl.configfile import load_config_args
    from echo_rl.train.trainer import train

    cfg = load_config_args(_base_config(a, turns, a.steps) + ["objective.algorithm=echo"])
    train(cfg, out / "run")
    records = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("kind") == "train"]
    return {
        "step_s": [r["time/step_s"] for r in steps],
        "rollout_s": [r["time/rollout_s"] for r in steps],
        "tokens": [r["rollout/action_tokens"] for r in steps],
    }


def worker_trl(a: argparse.Namespace, turns: int, out: Path, echo: bool) -> dict:
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen3_chat_template

    from echo_rl.configfile import load_config_args
    from echo_rl.integrations.trl import EchoGRPOTrainer, environment_class
    from echo_rl.models.load import load_policy_model
    from echo_rl.tasks.corpus import export_tasks
    from echo_rl.train.data import load_task_splits

    torch.set_num_threads(a.threads)
    cfg = load_config_args(_base_config(a, turns, a.steps))
    tasks = load_task_splits(cfg, ("train",))["train"]  # the tasks `echo-rl train` draws
    folder = export_tasks(tasks, out / "tasks")
    rows = [{"prompt": [{"role": "user", "content": "Solve the task in the terminal."}], "task": str(folder / t.name)}
            for t in tasks]
    model, tokenizer = load_policy_model("tiny")
    tokenizer.chat_template = qwen3_chat_template
    args = GRPOConfig(
        output_dir=str(out / "trl"), per_device_train_batch_size=a.tasks * a.completions,
        num_generations=a.completions, max_completion_length=a.tokens * turns + 64 * (turns - 1), max_steps=a.steps,
        learning_rate=5e-5, max_grad_norm=1.0, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
        seed=0, bf16=False, gradient_checkpointing=False, max_tool_calling_iterations=turns - 1,
        temperature=cfg.sampling.temperature,
    )
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_a, **_k):
            self.start = time.perf_counter()

        def on_step_end(self, *_a, **_k):
            times.append(time.perf_counter() - self.start)

    base = EchoGRPOTrainer if echo else GRPOTrainer

    class Trainer(base):  # type: ignore[misc, valid-type]
        def _generate_single_turn(self, prompt_ids, images, mm, num_generations, has_tool_images=False):
            if turns == 1 or num_generations == 1:
                return super()._generate_single_turn(prompt_ids, images, mm, num_generations, has_tool_images)
            call = '<tool_call>\n{"name": "run_command", "arguments": {"command": "ls -la"}}\n</tool_call><|im_end|>'
            ids = self.processing_class.encode(call, add_special_tokens=False)
            return [list(ids) for _ in prompt_ids], None

    kwargs = {"env_lambda": 0.05} if echo else {}
    trainer = Trainer(model=model, processing_class=tokenizer, args=args, train_dataset=Dataset.from_list(rows),
                      environment_factory=environment_class(cfg.sandbox), callbacks=[StepTimer()], **kwargs)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "completions/mean_length" in entry]
    return {
        "step_s": times,
        "rollout_s": None,
        "tokens": [entry["completions/mean_length"] * a.tasks * a.completions for entry in logs],
    }


def loss_overhead(a: argparse.Namespace, repeats: int = 12) -> None:
    """The only code EchoGRPOTrainer changes: TRL's loss + backward vs EchoGRPOTrainer's (λ = 0.05, env CE
    from the same pass at the sampling temperature, and at τ' = 1), on one batch of ``--tasks × --completions``
    rows (220 prompt tokens, 2 × ``--tokens`` completion tokens of which a third tool output), interleaved;
    process CPU time, which other jobs on the machine disturb less than wall time."""
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    import copy

    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from echo_rl.integrations.trl import EchoGRPOTrainer
    from echo_rl.models.load import load_policy_model

    torch.set_num_threads(a.threads)
    model, tokenizer = load_policy_model("tiny")
    rows, prompt, completion = a.tasks * a.completions, 220, 2 * a.tokens
    args = GRPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=rows,
                      num_generations=a.completions, report_to=[], use_cpu=True, bf16=False,
                      gradient_checkpointing=False, temperature=0.8)
    data = Dataset.from_list([{"prompt": "x"}] * rows)
    reward = [lambda completions, **_: [0.0] * len(completions)]
    trainers = {
        "TRL GRPOTrainer": GRPOTrainer(model=copy.deepcopy(model), args=args, processing_class=tokenizer,
                                       reward_funcs=reward, train_dataset=data),
        "EchoGRPOTrainer": EchoGRPOTrainer(model=copy.deepcopy(model), args=args, processing_class=tokenizer,
                                           reward_funcs=reward, train_dataset=data, env_lambda=0.05),
        "EchoGRPOTrainer τ'=1": EchoGRPOTrainer(model=copy.deepcopy(model), args=args, processing_class=tokenizer,
                                                reward_funcs=reward, train_dataset=data, env_lambda=0.05,
                                                env_temperature=1.0),
    }
    g = torch.Generator().manual_seed(0)
    tool_mask = torch.ones(rows, completion, dtype=torch.long)
    tool_mask[:, completion // 3 : 2 * completion // 3] = 0
    inputs = {"prompt_ids": torch.randint(0, len(tokenizer), (rows, prompt), generator=g),
              "prompt_mask": torch.ones(rows, prompt, dtype=torch.long),
              "completion_ids": torch.randint(0, len(tokenizer), (rows, completion), generator=g),
              "completion_mask": torch.ones(rows, completion, dtype=torch.long), "tool_mask": tool_mask,
              "advantages": torch.randn(rows, generator=g), "num_items_in_batch": torch.tensor(rows * completion)}
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(repeats):
        for name, trainer in trainers.items():
            trainer.current_gradient_accumulation_steps = 1
            trainer.model.train()
            trainer.model.zero_grad(set_to_none=True)
            start = time.process_time()
            trainer.compute_loss(trainer.model, inputs).backward()
            times[name].append(time.process_time() - start)
    base = statistics.median(times["TRL GRPOTrainer"][1:])
    print(f"\nloss + backward, {rows} rows x {prompt + completion} tokens, CPU s over {repeats - 1} interleaved repeats")
    print("| trainer | CPU s median (range) | vs TRL |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {_spread(values[1:])} | {statistics.median(values[1:]) / base:.3f} |")


def run_worker(a: argparse.Namespace) -> None:
    trainer, turns = a.worker, 1 if a.case == "single" else 2
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as tmp:
        out = Path(tmp)
        if trainer == "echo-rl":
            result = worker_echo_rl(a, turns, out)
        else:
            result = worker_trl(a, turns, out, echo=trainer == "echo-trl")
    result["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="steps per run (the first is dropped)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds of every trainer")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--completions", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens a turn")
    parser.add_argument("--cases", default="single,multi")
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loss-only", action="store_true", help="only the loss + backward comparison")
    parser.add_argument("--worker", choices=TRAINERS, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.worker:
        run_worker(a)
        return
    if a.loss_only:
        loss_overhead(a)
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "PYTHONPATH": str(ROOT / "src")}
    results: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(a.repeats):
        for case in a.cases.split(","):
            for trainer in a.trainers.split(","):
                cmd = [sys.executable, __file__, "--worker", trainer, "--case", case] + [
                    f"--{k}={getattr(a, k)}" for k in ("steps", "tasks", "completions", "tokens", "threads")
                ]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    sys.exit(f"{trainer}/{case} failed:\n{proc.stderr[-3000:]}")
                result = json.loads(line[7:])
                results.setdefault((case, trainer), []).append(result)
                print(f"round {round_ + 1} {case:6s} {LABELS[trainer]:16s} steps {result['step_s']}", flush=True)
    print(f"\n{a.tasks} tasks x {a.completions} completions, {a.tokens} new tokens a turn, {a.steps} steps "
          f"(first dropped) x {a.repeats} rounds, {a.threads} thread(s)\n")
    print("| case | trainer | s/step median (range) | sampled tok/s | peak RSS MB | s/step vs TRL | memory vs TRL |")
    print("|---|---|---|---|---|---|---|")
    for case in a.cases.split(","):
        base = None
        for trainer in a.trainers.split(","):
            runs = results[(case, trainer)]
            steps = [s for r in runs for s in r["step_s"][1:]]
            tokens = [t for r in runs for t in r["tokens"][1:]]
            rate = statistics.median(t / s for t, s in zip(tokens, steps))
            rss = max(r["peak_rss_mb"] for r in runs)
            extra = ""
            if runs[0]["rollout_s"]:
                rollout = [s for r in runs for s in r["rollout_s"][1:]]
                extra = f" (rollout {statistics.median(rollout):.2f})"
            if base is None:
                base = (statistics.median(steps), rss)
            print(f"| {case} | {LABELS[trainer]} | {_spread(steps)}{extra} | {rate:.0f} | {rss:.0f} | "
                  f"{statistics.median(steps) / base[0]:.2f} | {rss / base[1]:.2f} |")
    loss_overhead(a)


if __name__ == "__main__":
    main()
