"""Training: the RL loop (GRPO / ECHO / env-only), expert SFT, checkpoints, logging, alarms, data parallelism.

    from echo_rl.train.trainer import train       # RL:  train(cfg, out, resume=False) -> run dir
    from echo_rl.train.sft import sft             # SFT: sft(cfg, out, resume=False) -> run dir

    session.py      checks before any work, the run directory, the sandbox label
    loop.py         what RL and SFT share: optimizer, sampler, evaluation, checkpoints, progress
    trainer.py      the RL loop;  update.py  one optimizer update;  stepstats.py  rollout statistics
    sft.py          expert-demonstration SFT
    checkpoint.py   atomic checkpoints;  sampler.py  resumable task sampler;  seeding.py  derived seeds
    alarms.py       collapse alarms;  sinks.py  metrics.jsonl / TensorBoard / W&B;  progress.py  display
    metrics.py      metric names prefixed by their source (update/, rollout/, time/, …), merged without overwrites
    distributed.py  torchrun process group and collectives;  policy_sync.py  the one sampler factory, weight sync
    parallel.py     DDP / FSDP2 / activation checkpointing, one gradient sync per step;  memory.py  peak memory
    data.py         the run's tasks per split;  optim.py  AdamW with warm-up
"""
