"""Typed, validated run configuration.

One YAML file describes a run; every section is a pydantic model with defaults that reproduce the
paper's recipe (ECHO, arXiv 2605.24517, §3–4) where the paper fixes a value. Unknown keys are errors.

Reading a file with ``key.sub=value`` overrides, and the one-line errors naming file and field, are
:mod:`echo_rl.configfile`'s (``load_config("configs/tiny.yaml", ["train.steps=3"])``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """A config section: unknown keys are rejected, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# What root in a task container may still do: own, read and write any file, kill, switch users, bind low
# ports. Dropped from the engines' defaults: SETPCAP, SETFCAP, SYS_CHROOT, MKNOD, AUDIT_WRITE, NET_RAW.
DEFAULT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETUID", "SETGID", "NET_BIND_SERVICE")


class SandboxConfig(Section):
    """Where and how shell commands run (issue: sandboxed terminals)."""

    backend: Literal["local", "container"] = "local"
    workdir: str = "/home/user"
    command_timeout_s: float = Field(30.0, gt=0, description="per-command timeout (paper: 30 s)")
    max_output_bytes: int = Field(1_000_000, gt=0, description="bytes kept in memory per command")
    memory_mb: int = Field(
        2048, gt=0, description="memory of the whole sandbox (cgroup) and address space per process; a task's "
        "[environment] memory_mb wins"
    )
    cpus: float | None = Field(
        1.0, gt=0, description="CPU quota of the sandbox (cgroup; None: no quota); a task's [environment] cpus wins"
    )
    storage_mb: int = Field(
        10240, gt=0, description="writable storage of the sandbox (local: size of its tmpfs; container: "
        "storage-opt size where the engine's driver supports it); a task's [environment] storage_mb wins"
    )
    max_processes: int = Field(256, gt=0, description="processes of the sandbox (cgroup pids) and per user")
    max_file_size_mb: int = Field(512, gt=0)
    cpu_time_s: int = Field(900, gt=0)
    allow_network: bool = False
    pool_size: int = Field(
        32, ge=1, description="episodes (sandboxes) at once; at least one step's tasks_per_step x rollouts_per_task "
        "keeps a step to one batched generation per turn"
    )
    engine_url: str | None = Field(None, description="Docker API URL; default: DOCKER_HOST or podman's socket")
    tls_verify: bool = Field(False, description="remote engine: verify its certificate (against tls_ca_cert)")
    tls_ca_cert: str | None = Field(None, description="remote engine: CA certificate file (PEM)")
    tls_client_cert: str | None = Field(None, description="remote engine: client certificate file (PEM)")
    tls_client_key: str | None = Field(None, description="remote engine: client key file (PEM)")
    cap_add: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CAPABILITIES),
        description="container: the capabilities kept (all others are dropped)",
    )
    no_new_privileges: bool = Field(True, description="container: no-new-privileges (set-uid binaries gain nothing)")
    pull_images: bool = Field(False, description="container: pull a task's docker_image the engine does not have")
    base_image: str = "debian:bookworm-slim"
    infra_retries: int = Field(2, ge=0, description="retries of an episode that hit an infrastructure error")
    retry_backoff_s: float = Field(1.0, ge=0)


class HarnessConfig(Section):
    """How model text becomes commands and how terminal output becomes observations (method §4)."""

    action_format: Literal["qwen_xml", "plain", "hermes_json"] = "qwen_xml"
    require_think: bool = Field(True, description="warn when a turn has no <think> block")
    max_output_chars: int = Field(50_000, gt=0, description="command output shown per turn, then a notice")
    observation_role: Literal["auto", "tool", "user"] = Field(
        "auto", description="chat role of observations; auto: tool when the chat template knows it"
    )
    system_prompt: str | None = Field(None, description="None: the harness's prompt for action_format")


class EpisodeConfig(Section):
    """Limits of one episode (method §4)."""

    max_turns: int = Field(16, ge=1)
    max_context_tokens: int = Field(16_384, ge=16)
    max_turn_tokens: int = Field(2_048, ge=1)
    agent_timeout_s: float = Field(
        600.0, gt=0, description="wall time of the agent loop (or the task's own, if smaller)"
    )
    verifier_timeout_s: float = Field(120.0, gt=0, description="verifier time limit (a task's own wins)")
    batch_wait_s: float = Field(
        0.05,
        ge=0,
        description="lockstep backends (openai, vllm): how long a ready episode waits for the others before "
        "generating without them; the transformers backend batches continuously",
    )


class SamplingConfig(Section):
    """Sampling used for training rollouts and for evaluation (method §3: 0.8 train, 0.6 eval)."""

    temperature: float = Field(0.8, ge=0)
    eval_temperature: float = Field(0.6, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)


class LoraConfig(Section):
    """LoRA adapters through ``peft`` (extra ``lora``): only the adapters train; the rollout policy samples
    from the merged weights; checkpoints are adapter folders plus what resume needs."""

    enabled: bool = False
    rank: int = Field(16, ge=1, description="adapter rank r")
    alpha: float = Field(32.0, gt=0, description="scaling alpha (the update is alpha/r · B·A)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="module names that get adapters",
    )


class VLLMConfig(Section):
    """``policy.backend=vllm`` (EXPERIMENTAL: not yet run on a GPU; extra ``vllm``, CUDA only). One engine
    per trainer process, colocated on the trainer's GPU: it may take ``gpu_memory_utilization`` of it,
    sleeps while the trainer updates and receives the new weights through a worker extension
    (:mod:`echo_rl.rollout.policy.vllm_worker`) after every update, then forgets its prefix cache."""

    gpu_memory_utilization: float = Field(
        0.35, gt=0, le=1, description="share of the GPU's memory the engine takes (weights, activations, KV "
        "cache); the colocated trainer needs the rest"
    )
    enable_sleep_mode: bool = Field(
        True, description="free the engine's GPU memory during the trainer's update (sleep) and take it back "
        "after (wake_up: weights first, then the KV cache)"
    )
    sleep_level: Literal[1, 2] = Field(
        1, description="1: weights copied to CPU memory, KV cache dropped; 2: both dropped (less CPU memory; "
        "the sync after the update rewrites every weight)"
    )
    external_launcher: Literal["auto", "on", "off"] = Field(
        "auto", description="vLLM's external_launcher executor: the engine joins the torchrun process group "
        "(one engine per rank); auto: on under torchrun"
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs per engine; with external_launcher every rank of a tensor-parallel group must "
        "sample the same prompts, so echo-rl (ranks sample different tasks) needs 1 there"
    )
    max_model_len: int | None = Field(None, ge=16, description="longest sequence (None: episode.max_context_tokens)")
    max_num_seqs: int | None = Field(None, ge=1, description="sequences decoded at once (None: vLLM's default)")
    enforce_eager: bool = Field(False, description="no CUDA graphs (less memory, slower decoding)")
    enable_prefix_caching: bool = Field(True, description="reuse KV blocks of shared prefixes (reset at every sync)")
    sync_chunk_mb: int = Field(
        1024, ge=1, description="weights pushed into the engine per call, in MiB of the engine's dtype"
    )


class PolicyConfig(Section):
    """The model being trained and the backend that samples from it."""

    model: str = Field("tiny", description="checkpoint dir | 'smollm2-135m' | 'tiny' (built locally)")
    backend: Literal["transformers", "openai", "vllm"] = "transformers"
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32",
        description="COMPUTE precision of every forward pass (torch.autocast; echo_rl.train.precision). The "
        "trainer keeps float32 weights, gradients and AdamW state whatever this says; the transformers rollout "
        "backend samples from the same weights in this precision; a frozen reference model is held in it. "
        "float16 cannot train (it needs loss scaling): evaluation only",
    )
    device: str = "auto"
    endpoint: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    served_model_name: str | None = None
    http_api: Literal["chat", "completions"] = Field("chat", description="openai backend: which endpoint")
    request_timeout_s: float = Field(600.0, gt=0, description="openai backend: per-request time limit")
    prefix_cache_mb: int = Field(
        1024, ge=0, description="transformers backend: memory for KV caches reused across turns and episodes"
    )
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: torch default)")
    sampling_threads: int | None = Field(
        None,
        ge=1,
        description="transformers backend on the CPU: torch intra-op threads while it samples (rollouts, "
        "evaluation), policy.threads again for everything else (None: policy.threads throughout). 1 suits small "
        "models: a decode step's operations are too small to split, and the sandboxes need the other cores",
    )
    lora: LoraConfig = LoraConfig()
    vllm: VLLMConfig = VLLMConfig()


class TasksConfig(Section):
    """Which tasks a run trains and evaluates on: corpus directories or procedural families.

    From families (what `echo-rl tasks build` writes): train, validation and test (in-distribution, disjoint
    seeds) come from ``families`` (None: every registered family not held out); ``heldout_families`` are
    kept out of all three, whole, for out-of-distribution evaluation. Validation is the selection split
    (checkpoints, arms); test (``num_test``, none by default) is for reporting only. Near-duplicates (shingle Jaccard ≥
    ``dedup_threshold``) are removed across all splits."""

    corpus: str | None = Field(None, description="a corpus built by `echo-rl tasks build` (has index.jsonl)")
    train: str | None = Field(None, description="a directory of Harbor tasks (overrides corpus's train split)")
    validation: str | None = None
    test: str | None = None
    heldout: str | None = None
    families: list[str] | None = Field(None, description="training families (None: all not held out)")
    heldout_families: list[str] = Field(
        default_factory=lambda: ["pointer_chase", "cron_edit", "make_target"],
        description="families kept out of train and validation (out-of-distribution split)",
    )
    num_train: int = Field(2000, ge=1)
    num_validation: int = Field(100, ge=1)
    num_test: int = Field(0, ge=0, description="test tasks of the training families, seeds disjoint from "
                          "train's and validation's; report on these, select on validation")
    num_heldout: int = Field(100, ge=0)
    seed: int = Field(0, ge=0)
    dedup_threshold: float = Field(0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _known_families(self) -> TasksConfig:
        from echo_rl.tasks.families import FAMILIES

        for name in [*(self.families or []), *self.heldout_families]:
            if name not in FAMILIES:
                raise ValueError(f"unknown task family {name!r} (known: {', '.join(sorted(FAMILIES))})")
        both = sorted(set(self.families or []) & set(self.heldout_families))
        if both:
            raise ValueError(f"families both trained on and held out: {', '.join(both)}")
        return self


class LambdaSchedule(Section):
    """λ(step): constant, linear decay from λ to `final` over `decay_steps`, or step decay by `factor`
    every `every` steps; multiplied by a linear warm-up from 0 over `warmup_steps`."""

    kind: Literal["constant", "linear_decay", "step_decay"] = "constant"
    final: float = Field(0.0, ge=0)
    decay_steps: int = Field(500, ge=1)
    every: int = Field(100, ge=1)
    factor: float = Field(0.5, gt=0, le=1)
    warmup_steps: int = Field(0, ge=0)


class EnvFilters(Section):
    """Env-target filters (stable-ECHO issue). All off by default: the paper's targets."""

    parse_failed: bool = False
    rejected: bool = False
    error_only: bool = False
    repeated: bool = False


class BalanceConfig(Section):
    """Balancing the env term against the policy term (stable-ECHO issue). Off by default (paper).

    adaptive: λ_eff = clamp(min(λ(step), max_ratio·‖∇L_GRPO‖/‖∇L_env‖), floor, cap), re-measured every
    ``objective.grad_probe_every`` steps; plain λ(step) while the policy gradient is zero.
    separate_clip: clip ‖∇L_GRPO‖ and ‖∇(λ·L_env)‖ each to this norm before summing (measures both every step)."""

    mode: Literal["none", "adaptive"] = "none"
    max_ratio: float = Field(0.5, gt=0, description="bound on ‖∇(λ·L_env)‖ / ‖∇L_GRPO‖")
    floor: float = Field(0.0, ge=0, description="smallest effective λ in adaptive mode")
    cap: float = Field(1.0, gt=0, description="largest effective λ in adaptive mode")
    separate_clip: float | None = Field(None, gt=0, description="per-term gradient-norm clip; None: off")


class EnvLossConfig(Section):
    """The world-model term λ·L_env (method §2)."""

    lam: float = Field(0.05, ge=0, description="λ; 0 reproduces plain GRPO exactly")
    schedule: LambdaSchedule = LambdaSchedule()
    targets: Literal["env_only", "warning_only", "warning_plus_env", "full_observation"] = "env_only"
    normalization: Literal["full_observation_tokens", "selected_tokens", "constant"] = "full_observation_tokens"
    norm_constant: float = Field(2048.0, gt=0)
    temperature_scaled: bool = Field(
        True, description="CE from temperature-scaled log-probs (as the reference system) or raw logits"
    )
    filters: EnvFilters = EnvFilters()
    balance: BalanceConfig = BalanceConfig()
    min_clean_turn_share: float | None = Field(
        None, ge=0, le=1, description="rollout filter: the env term learns from a rollout only when at least this "
        "share of its turns drew no format warnings; None: 1 under env_only (the paper's clean tool calls), 0 (off) "
        "under grpo and echo"
    )
    min_valid_call_share: float | None = Field(
        None, ge=0, le=1, description="rollout filter: min share of a rollout's turns whose call ran (a command "
        "executed, or a done call); None: 1 under env_only, 0 (off) under grpo and echo"
    )


class DynamicSamplingConfig(Section):
    """Dynamic sampling (DAPO): groups without a learning signal leave the policy term.

    A group is informative when it has ≥ 2 valid rollouts whose rewards are not all equal; the others
    leave the policy term and its denominators but keep their env term. With ``max_refill_draws`` > 0 the
    trainer draws up to that many extra sets of ``train.tasks_per_step`` tasks while the step has fewer
    than ``tasks_per_step`` informative groups, and adds the informative groups of the refills (the first
    ones, in draw order, up to the number missing); refill groups without signal are discarded whole."""

    enabled: bool = False
    max_refill_draws: int = Field(0, ge=0, description="extra task draws per step to refill informative groups")


class ObjectiveConfig(Section):
    """GRPO on action tokens + λ·env CE, from one forward pass (method §2–3)."""

    algorithm: Literal["grpo", "echo", "env_only"] = Field(
        "echo", description="grpo (reward), echo (reward + λ·env CE) or env_only (env CE alone, verifier-free: "
        "training rollouts are not verified and training tasks need no tests/test.sh)"
    )
    clip_eps_low: float = Field(0.2, ge=0)
    clip_eps_high: float = Field(0.2, ge=0)
    advantage_std_norm: bool = True
    aggregation: Literal["seq_mean", "token_mean", "seq_sum_constant"] = "seq_mean"
    aggregation_constant: float = Field(2048.0, gt=0)
    kl_coef: float = Field(
        0.0, ge=0, description="β of the k3 KL to a frozen copy of the starting policy; 0 loads no reference model"
    )
    ratio_level: Literal["token", "sequence"] = Field(
        "token",
        description="importance ratio per action token (GRPO/PPO) or per sequence (GSPO: exp of the mean "
        "log-ratio over the sequence's action tokens, clipped per sequence; GSPO uses eps ~3e-4/4e-4)",
    )
    dynamic_sampling: DynamicSamplingConfig = DynamicSamplingConfig()
    overlong_filter: Literal["off", "truncated", "truncated_or_max_turns"] = Field(
        "off",
        description="truncated episodes (stop_reason max_context_tokens or max_turn_tokens; optionally "
        "max_turns too) leave the policy term (and its denominators) but keep their env term",
    )
    tis_cap: float | None = Field(None, gt=0, description="truncated importance sampling cap C; None: off")
    logprob_chunk_size: int = Field(1024, ge=1)
    grad_probe_every: int = Field(
        0, ge=0, description="measure per-term gradient norms every k steps (0: off); a probe step costs one more "
        "backward pass per micro-batch (1.7-2.2x a step's time on CPU)"
    )
    env: EnvLossConfig = EnvLossConfig()

    @property
    def uses_reward(self) -> bool:
        """False for env_only (verifier-free adaptation): no verifier runs on training rollouts."""
        return self.algorithm != "env_only"

    @model_validator(mode="after")
    def _adaptive_needs_probe(self) -> ObjectiveConfig:
        if self.env.balance.mode == "adaptive" and self.grad_probe_every == 0:
            raise ValueError("env.balance.mode=adaptive needs grad_probe_every >= 1")
        return self

    @model_validator(mode="after")
    def _selection_needs_rewards(self) -> ObjectiveConfig:
        if self.dynamic_sampling.enabled and not self.uses_reward:
            raise ValueError("dynamic_sampling selects groups by reward: env_only has none")
        return self

    @model_validator(mode="after")
    def _refill_needs_dynamic_sampling(self) -> ObjectiveConfig:
        if self.dynamic_sampling.max_refill_draws and not self.dynamic_sampling.enabled:
            raise ValueError("dynamic_sampling.max_refill_draws needs dynamic_sampling.enabled=true")
        return self


class OptimConfig(Section):
    """AdamW with linear warm-up from 0 to ``lr`` over ``warmup_steps`` optimizer steps, then constant
    (method §3) or, with ``decay_steps``, falling linearly to 0 at update ``decay_steps``; and a global
    grad-norm clip. Both count optimizer updates: an RL step makes ``train.mini_batches ×
    train.update_epochs`` of them."""

    lr: float = Field(1e-6, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(20, ge=0)
    decay_steps: int = Field(0, ge=0, description="the update at which a linear decay after the warm-up "
                             "reaches lr 0; 0: constant after the warm-up")
    grad_clip: float = Field(0.2, gt=0)

    @model_validator(mode="after")
    def _decay_after_warmup(self) -> OptimConfig:
        if self.decay_steps and self.decay_steps <= self.warmup_steps:
            raise ValueError(f"decay_steps ({self.decay_steps}) must exceed warmup_steps ({self.warmup_steps})")
        return self


class TrainConfig(Section):
    """The RL (or SFT) loop. One RL step = ``tasks_per_step`` tasks × ``rollouts_per_task`` rollouts, then
    ``update_epochs`` × ``mini_batches`` optimizer updates, each over micro-batches of ``micro_batch_size``
    sequences (gradient accumulation)."""

    steps: int = Field(500, ge=1)
    tasks_per_step: int = Field(16, ge=1)
    rollouts_per_task: int = Field(16, ge=1)
    micro_batch_size: int = Field(4, ge=1)
    mini_batches: int = Field(
        1, ge=1, description="optimizer steps per pass over an RL step's rollouts: the step's groups split into "
        "this many mini-batches of whole groups (PPO-style; π_old stays the sampler's log-probs)"
    )
    update_epochs: int = Field(1, ge=1, description="passes over an RL step's rollouts (each makes mini_batches steps)")
    eval_every: int = Field(0, ge=0, description="evaluate every k steps, at step 0 and at the end (0: off)")
    save_every: int = Field(50, ge=0, description="checkpoint every k steps and at the end (0: only at the end)")
    keep_checkpoints: int = Field(3, ge=1, description="newest checkpoints kept (the best one is kept too)")
    save_transcripts: int = Field(4, ge=0, description="sampled transcripts saved per step")
    sft_epochs: float = Field(1.0, gt=0)
    sft_batch_size: int = Field(16, ge=1, description="expert transcripts per SFT optimizer step")
    sft_env_loss_weight: float = Field(0.0, ge=0, description="weight of the env-token CE during SFT")
    sft_targets: Literal["actions", "actions+env", "all"] = Field(
        "actions", description="the SFT NLL's tokens: the actions (imitation), actions and observations, or all "
        "tokens (pre-training: prompt and chat template too, and every transcript whatever its outcome)"
    )
    sft_transcripts: str | None = Field(
        None, description="SFT demonstrations from this file (rollout-run trajectories or text JSONL, see README); "
        "None: the train tasks' reference solutions"
    )
    sft_rehearsal: str | None = Field(
        None, description="a corpus rehearsed during SFT (e.g. the pre-training one): sft_rehearsal_batch_size of "
        "its transcripts a step beside the demonstrations, every token under an LM loss weighted by "
        "sft_rehearsal_weight (what pre-training learnt is kept); None: off"
    )
    sft_rehearsal_weight: float = Field(1.0, gt=0, description="weight of the rehearsal corpus' LM loss")
    sft_rehearsal_batch_size: int | None = Field(
        None, ge=1, description="rehearsal transcripts a step (None: sft_batch_size)")

    @model_validator(mode="after")
    def _mini_batches_of_whole_groups(self) -> TrainConfig:
        if self.mini_batches > self.tasks_per_step:
            raise ValueError(f"mini_batches ({self.mini_batches}) > tasks_per_step ({self.tasks_per_step}): "
                             "a mini-batch holds whole groups")
        return self


class EvalConfig(Section):
    """Evaluation: pass@k per family and split, held-out env CE, efficiency. ``sampled`` runs
    ``samples_per_task`` episodes per task at ``sampling.eval_temperature``; ``greedy`` one at T = 0."""

    splits: list[Literal["validation", "test", "heldout"]] = ["validation", "heldout"]
    samples_per_task: int = Field(4, ge=1)
    ks: list[int] = [1]
    sampled: bool = True
    greedy: bool = True
    heldout_transcripts: str | None = Field(
        None, description="file of fixed off-policy transcripts for held-out env CE: rollout-run trajectories or "
        "text JSONL of any agent (see README); built once from the reference solutions if missing"
    )
    heldout_transcript_tasks: int = Field(32, ge=1, description="reference-solver transcripts in that file")
    validation_transcripts: str | None = Field(
        None, description="a second such file, of unseen tasks of the training families (recorded like the first, "
        "from the validation or test split, if missing); its env CE is reported as env_ce_validation"
    )
    max_tasks: int | None = Field(None, ge=1, description="cap on tasks per split")
    confidence: float = Field(0.95, gt=0, lt=1)
    bootstrap_samples: int = Field(1000, ge=100, description="resamples for pass@k (k > 1) intervals")


class AlarmConfig(Section):
    """Collapse alarms: a tracked signal alarms when it falls below ``drop`` × its baseline, the median of
    its previous ``window`` values (at least ``min_history`` of them). A threshold of None disables it."""

    window: int = Field(5, ge=1)
    min_history: int = Field(3, ge=1)
    entropy_drop: float | None = Field(0.5, gt=0, le=1)
    distinct_commands_drop: float | None = Field(0.5, gt=0, le=1)
    env_ce_drop: float | None = Field(0.5, gt=0, le=1)
    episode_length_drop: float | None = Field(0.5, gt=0, le=1)


class LoggingConfig(Section):
    """Where metrics go besides ``metrics.jsonl``: TensorBoard when installed, W&B when a project is set."""

    tensorboard: bool = True
    wandb_project: str | None = None
    wandb_entity: str | None = None
    progress: bool = True


class ParallelConfig(Section):
    """How the trainer spreads over processes (``torchrun``) and saves memory.

    mode: ``auto`` = ``none`` in one process, ``ddp`` under torchrun; ``ddp`` = every rank holds the whole
    model (torch DistributedDataParallel); ``fsdp2`` = parameters, gradients and optimizer state sharded
    per decoder layer and at the root (``torch.distributed.fsdp.fully_shard``)."""

    mode: Literal["auto", "none", "ddp", "fsdp2"] = "auto"
    activation_checkpointing: bool = Field(
        False, description="recompute each decoder layer's activations in the backward pass (less memory)"
    )


class RunConfig(Section):
    """A whole run. Sections map one-to-one onto the pipeline's layers."""

    name: str = "run"
    seed: int = 0
    sandbox: SandboxConfig = SandboxConfig()
    harness: HarnessConfig = HarnessConfig()
    episode: EpisodeConfig = EpisodeConfig()
    sampling: SamplingConfig = SamplingConfig()
    policy: PolicyConfig = PolicyConfig()
    tasks: TasksConfig = TasksConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    alarms: AlarmConfig = AlarmConfig()
    logging: LoggingConfig = LoggingConfig()
    parallel: ParallelConfig = ParallelConfig()

    @model_validator(mode="after")
    def _fsdp2_takes_no_gradient_probes(self) -> RunConfig:
        probes = self.objective.grad_probe_every > 0 or self.objective.env.balance.separate_clip is not None
        if self.parallel.mode == "fsdp2" and probes:
            raise ValueError("parallel.mode=fsdp2 cannot measure per-term gradients (objective.grad_probe_every, "
                             "objective.env.balance.separate_clip); use parallel.mode=ddp")
        return self
