"""The demo's embedded default config (``echo-rl demo`` with no CONFIG). ``configs/demo.yaml`` holds the
same text; a test keeps the two equal."""

DEFAULT_YAML = """\
# echo-rl demo: a tiny end-to-end reproduction of ECHO on a 2-core CPU (issue 8).
# corpus -> expert transcripts (reference solutions replayed in the sandbox) -> BPE tokenizer -> tiny Qwen3
# -> SFT, checkpoint chosen by per-family validation success -> GRPO / ECHO / env-only from that checkpoint,
# same seeds -> final evaluation -> report. Overrides: `echo-rl demo key.sub=value`, e.g. run.train.steps=40.
name: demo
seeds: [0, 1]            # every method runs on each seed (--seeds N for more)
threads: 2               # torch threads; methods run one after another (two torch processes on 2 cores: 6-8x slower)
budget_s: 1200           # the default demo's wall-time goal on an idle 2-core machine (20 min)

tokenizer:
  vocab_size: 1024       # byte-level BPE trained on the corpus' expert transcripts and the shell sessions
  pretokenizer: qwen     # Qwen3's pre-split: one token per digit, so a value copied from an output keeps its tokens
model:                   # Qwen3ForCausalLM from a Qwen3Config: ~0.7M parameters
  hidden_size: 128
  num_layers: 3          # >= 2 layers: copying a value from an observation needs an induction circuit
  num_heads: 4
  num_kv_heads: 2
  intermediate_size: 384
  seed: 0
  copy_warmup:           # synthetic copy pretraining (random output tokens shown twice): an induction circuit
    steps: 100           # first, which a pretrained LM would bring; without it copying emerges only after
    length: 24           # ~500+ SFT steps
    batch_size: 32
    lr: 2.0e-3

pretrain:                # LM loss over every token of random shell sessions recorded in the sandbox (echo_rl.tasks.sessions,
  sessions: 0            # independent of the task families): a world model of the terminal before SFT; 0: off
                         # (off by default until measured in the demo's budget: pretrain.sessions=1000 turns it on)
  seed: 0
  steps: 300
  batch_size: 16
  lr: 2.0e-3
  warmup_steps: 20

sft:                     # expert-demonstration SFT (action tokens only by default)
  max_steps: 400
  batch_size: 16
  lr: 2.0e-3
  warmup_steps: 20
  grad_clip: 1.0
  env_loss_weight: 0.0
  eval_every: 25         # greedy validation every 25 steps: the useful window is narrow
  eval_from: 150         # nothing to see before
  eval_tasks: null       # all validation tasks
  select:                # start RL where validation pass@1 is between floor and ceiling ...
    low: 0.15
    high: 0.6
    min_family: 0.1      # ... and EVERY training family solves some of its validation tasks
    patience: 1

methods:                 # all from the same SFT checkpoint, on the same seeds, one after another
  - name: grpo
    label: GRPO
    overrides: {objective.algorithm: grpo, objective.env.lam: 0.0}
  - name: echo
    label: ECHO (stable)
    overrides:           # the best arm of configs/echo-sweep.yaml (docs/echo-sweep/): λ = 0.005, warmed up over
      objective.algorithm: echo               # 3 steps, the env gradient held under 0.5x the policy gradient
      objective.env.lam: 0.005
      objective.env.schedule.warmup_steps: 3
      objective.env.balance.mode: adaptive
      objective.env.balance.max_ratio: 0.5
      objective.grad_probe_every: 2
  - name: echo-paper
    label: ECHO (paper, λ=0.05)
    overrides: {objective.algorithm: echo, objective.env.lam: 0.05}
    seeds: 1             # the paper's configuration, kept visible on the first seed (--seeds does not change it)
  - name: env-only
    label: env-only (verifier-free)
    overrides:           # the paper's verifier-free adaptation: env CE alone, no verifier on training rollouts, and
      objective.algorithm: env_only              # the env term learns only from rollouts whose every turn is a
      objective.env.min_clean_turn_share: 1.0    # clean tool call (parsed without warnings, and ran): the
      objective.env.min_valid_call_share: 1.0    # env_only default, spelled out

eval:                    # final evaluation of the base policy and of every run
  samples_per_task: 1    # sampled at run.sampling.eval_temperature, plus one greedy episode per task
  splits: [test, heldout]  # reported on test; validation chose the SFT checkpoint and the ECHO arm
  max_tasks: null
  seed: 0

smol:                    # echo-rl demo --model smollm2-135m
  eval_tasks: 8
  steps: 2
  tasks_per_step: 2
  rollouts_per_task: 2
  lr: 1.0e-6
  run:
    harness.action_format: qwen_xml
    harness.require_think: false
    harness.system_prompt: null
    episode.max_turns: 4
    episode.max_context_tokens: 2048
    episode.max_turn_tokens: 96

quick:                   # --quick: the same pipeline, small (under 3 minutes); its numbers mean little
  budget_s: 180
  seeds: [0]
  pretrain.steps: 30
  pretrain.batch_size: 8
  sft.max_steps: 40
  sft.batch_size: 8
  sft.eval_every: 40
  sft.eval_tasks: 12
  run.tasks.num_train: 80
  run.tasks.num_validation: 12
  run.tasks.num_test: 12
  run.tasks.num_heldout: 6
  run.eval.heldout_transcript_tasks: 6
  run.episode.max_turns: 4
  run.train.steps: 1
  run.train.tasks_per_step: 4
  run.train.rollouts_per_task: 4
  run.train.eval_every: 0
  eval.samples_per_task: 1

run:                     # the RunConfig every run shares
  name: demo
  seed: 0
  policy: {model: tiny, threads: 2}
  harness:
    action_format: plain           # <command>…</command>: the shortest actions for a tiny model
    require_think: false
    system_prompt: "Solve the task in a Linux terminal: one bash command per turn, then call done."
  episode:
    max_turns: 6
    max_context_tokens: 1024
    max_turn_tokens: 48
    agent_timeout_s: 60
    verifier_timeout_s: 30
  sandbox:
    command_timeout_s: 5
    pool_size: 100                 # every episode of a step (or an evaluation) at once: one batched generation per turn
  sampling: {temperature: 0.8, eval_temperature: 0.6}
  tasks:
    families: [key_copy, log_count, csv_aggregate, proc_top, sort_dedup]   # each needs a value read from an output
    heldout_families: [pointer_chase, make_target, cron_edit]
    num_train: 300
    num_validation: 100            # the selection split: SFT checkpoint, curves, the sweep's choice of arm
    num_test: 100                  # the report's split: same families, disjoint seeds, chosen on nothing
    num_heldout: 30
    seed: 0
  objective: {algorithm: echo}
  optim: {lr: 5.0e-5, warmup_steps: 0, grad_clip: 1.0}   # 2e-4 collapsed a ~1M model; the paper's 1e-6 is for 8B
  train:
    steps: 14
    tasks_per_step: 8
    rollouts_per_task: 4
    micro_batch_size: 16
    eval_every: 7                  # greedy validation (eval.max_tasks) + held-out env CE: curves, steps-to-best
    save_every: 0
    keep_checkpoints: 1
    save_transcripts: 2
  eval:
    splits: [validation]
    sampled: false
    greedy: true
    max_tasks: 40
    heldout_transcript_tasks: 30
  logging: {tensorboard: false, progress: true}
"""
