"""The demo's configuration: what to build, how long to fine-tune, which methods to compare, on which seeds.

    cfg = load_demo_config(("seeds=[0,1,2]", "run.train.steps=40"), quick=False)

A demo config is a YAML mapping (the embedded default is :data:`DEFAULT_CONFIG`, the package's
``echo_rl/data/demo.yaml``, the same text as ``configs/demo.yaml``). ``run`` is a full :class:`~echo_rl.config.RunConfig` shared by every
run of the study (sandbox, harness, episode limits, sampling, corpus, the RL optimiser, evaluation); the
other sections say what the demo does with it. Command-line overrides are ``key.sub=value`` over this
whole mapping (``run.train.steps=40``, ``sft.max_steps=300``); ``--quick`` applies the mapping under
``quick`` first. Bad input is a one-line :class:`~echo_rl.errors.UserError` naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from echo_rl.config import RunConfig, Section
from echo_rl.configfile import (
    apply_overrides, format_validation_error, load_model, merge, read_extending_yaml, split_args, with_changes,
)
from echo_rl.errors import UserError

# ``echo-rl demo`` with no CONFIG (``configs/demo.yaml`` holds the same text; a test keeps the two equal)
DEFAULT_CONFIG = resources.files("echo_rl") / "data" / "demo.yaml"


class TokenizerSpec(Section):
    """The byte-level BPE trained on the corpus' expert transcripts."""

    vocab_size: int = Field(ge=300)
    pretokenizer: Literal["bytelevel", "qwen"] = Field(
        description="qwen: Qwen3's split (one token per digit), so copied values keep their tokens")


class CopyWarmup(Section):
    """Synthetic copy pretraining of the fresh model: sequences of random output tokens, each shown twice,
    with the loss on the second copy (:mod:`echo_rl.train.copy_warmup`). What it learns is the fixed offset
    (copy from ``length`` back), not an induction circuit: 1.00 at that offset, 0.004 with a gap. It still
    decides how much RL can do from the SFT start it leads to: without it GRPO gained 6 validation points
    instead of 22 (README). 0 steps: off."""

    steps: int = Field(ge=0)
    length: int = Field(ge=2)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)


class StageOptim(Section):
    """The optimiser of a stage run by the SFT loop (pre-training, SFT); the gradient clip is ``sft.grad_clip``."""

    batch_size: int = Field(ge=1)
    micro_batch_size: int = Field(ge=1, description="transcripts per forward/backward pass "
                                  "(train.micro_batch_size): the step's batch is cut into micro-batches of like "
                                  "length, so less padding is computed")
    lr: float = Field(gt=0)
    warmup_steps: int = Field(ge=0)
    lr_decay: bool = Field(description="after the warm-up the LR falls linearly to 0 at the stage's last step "
                           "(optim.decay_steps), instead of staying at lr")


class PretrainSpec(StageOptim):
    """Pre-training of the fresh tiny model before SFT: a plain LM loss over every token
    (``train.sft_targets=all``) of ``sessions`` random shell sessions recorded in the sandbox
    (:mod:`echo_rl.tasks.sessions`, independent of the task families), so the model starts SFT with a world
    model of the terminal, as a pretrained LM would. The tokenizer is trained on these sessions too. 0
    sessions or 0 steps: off."""

    sessions: int = Field(ge=0)
    seed: int
    steps: int = Field(ge=0)

    @property
    def enabled(self) -> bool:
        return self.sessions > 0 and self.steps > 0


class ModelSpec(Section):
    """Sizes of the tiny Qwen3 (``Qwen3ForCausalLM`` from a ``Qwen3Config``)."""

    hidden_size: int = Field(ge=16)
    num_layers: int = Field(ge=2)
    num_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    intermediate_size: int = Field(ge=16)
    seed: int
    copy_warmup: CopyWarmup


class Selection(Section):
    """Which SFT checkpoint RL starts from (stable-ECHO issue, item 5).

    A checkpoint is *eligible* when its greedy validation pass@1 lies in [``low``, ``high``] and every
    training family solves at least ``min_family`` of its validation tasks. Among eligible checkpoints
    the one with the best worst-family score wins (then the lower overall score: more room for RL);
    without any, the one closest to the band with the best worst family. SFT stops early once the overall
    score passes ``high`` or ``patience`` evaluations after the first eligible one."""

    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    min_family: float = Field(ge=0, le=1)
    patience: int = Field(ge=0)

    @model_validator(mode="after")
    def _band(self) -> Selection:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


class SFTSpec(StageOptim):
    """Expert-demonstration SFT from the tiny model of stage 1."""

    max_steps: int = Field(ge=1)
    grad_clip: float = Field(gt=0)
    env_loss_weight: float = Field(ge=0)
    rehearsal: float = Field(ge=0, description="weight of an LM loss over every token of the pre-training "
                             "sessions, a batch of them each step beside the demonstrations (train.sft_rehearsal): "
                             "keeps pre-training's world model through imitation; needs pretrain; 0: off")
    rehearsal_batch_size: int = Field(ge=1, description="pre-training sessions rehearsed a step")
    eval_every: int = Field(ge=1)
    eval_from: int = Field(ge=0, description="skip the evaluations before this step (nothing is learnt yet)")
    eval_tasks: int | None = Field(ge=1, description="validation tasks per SFT evaluation (None: all)")
    select: Selection

    @model_validator(mode="after")
    def _evaluated(self) -> SFTSpec:
        if self.eval_from > self.max_steps:
            raise ValueError("eval_from must not exceed max_steps (no evaluation would choose the checkpoint)")
        return self


class Method(Section):
    """One arm of the study: a name, a label for the report, and ``key.sub=value`` changes to ``run``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    label: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    seeds: int | None = Field(None, ge=1, description="run only the first N seeds (None: all)")
    extra: bool = Field(False, description="run only with --all-methods (all_methods: true)")


class EvalSpec(Section):
    """The final evaluation of the base policy and of every run, on the report's splits (``run.eval`` drives
    the cheap curve evaluations on the selection split during training)."""

    samples_per_task: int = Field(ge=1)
    splits: list[str]
    max_tasks: int | None = Field(ge=1)
    seed: int


class DemoConfig(Section):
    """A whole demo config. Every value is in the embedded default (:data:`DEFAULT_CONFIG`), the one place
    that sets them: a config file holds all of them, or ``extends: demo`` and holds what differs."""

    name: str
    seeds: list[int] = Field(min_length=1)
    threads: int = Field(ge=1, description="torch threads of the demo's process (preparation, SFT, evaluation)")
    rl_workers: int = Field(ge=1, description="RL runs trained at once, each in its own process (run_threads)")
    tokenizer: TokenizerSpec
    model: ModelSpec
    pretrain: PretrainSpec
    sft: SFTSpec
    methods: list[Method] = Field(min_length=1)
    all_methods: bool = Field(description="also run the methods marked extra (--all-methods)")
    eval: EvalSpec
    smol: dict[str, Any] = Field(description="changes to `run` for --model smollm2-135m, merged section by section")
    budget_s: float = Field(gt=0, description="wall-time budget the timing table is checked against")
    quick: dict[str, Any] = Field(default_factory=dict, description="overrides applied by --quick")
    run: RunConfig

    @field_validator("methods")
    @classmethod
    def _unique(cls, methods: list[Method]) -> list[Method]:
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            raise ValueError(f"method names must be unique ({', '.join(names)})")
        return methods

    @model_validator(mode="after")
    def _rehearsal_has_a_corpus(self) -> DemoConfig:
        if self.sft.rehearsal and not self.pretrain.enabled:
            raise ValueError("sft.rehearsal rehearses the pre-training sessions: it needs pretrain.sessions and "
                             "pretrain.steps > 0")
        return self

    @model_validator(mode="after")
    def _methods_resolve(self) -> DemoConfig:
        for method in self.methods:
            method_run(self, method, self.seeds[0])  # every override must give a valid RunConfig
        smol_run(self, "smollm2-135m")
        return self


def method_run(cfg: DemoConfig, method: Method, seed: int) -> RunConfig:
    """The RunConfig of ``method`` on ``seed``: ``cfg.run`` with the method's overrides."""
    data = cfg.run.model_dump(mode="json")
    apply_overrides(data, method.overrides)
    data["seed"] = seed
    data["name"] = run_name(method, seed)
    data["policy"]["threads"] = run_threads(cfg)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ValueError(format_validation_error(err, f"method {method.name}")) from None


def run_name(method: Method, seed: int) -> str:
    """The name of ``method``'s run on ``seed``: its RunConfig's name and its directory under ``OUT/runs``."""
    return f"{method.name}-seed{seed}"


def run_threads(cfg: DemoConfig) -> int:
    """Torch threads of one RL run: ``threads`` shared out among the ``rl_workers`` runs at once (at least 1)."""
    return max(1, cfg.threads // cfg.rl_workers)


def smol_run(cfg: DemoConfig, model: str) -> RunConfig:
    """The RunConfig of ``--model MODEL``: ``cfg.run`` with the ``smol`` changes, from ``model``."""
    try:
        return with_changes(cfg.run, merge(cfg.smol, {"name": f"{cfg.name}-{model}",
                                                      "policy": {"model": model, "threads": cfg.threads}}))
    except ValidationError as err:
        raise ValueError(format_validation_error(err, "smol")) from None


def stage_run(cfg: DemoConfig, stage: str, optim: StageOptim, steps: int, examples: int, model: Path, corpus: Path,
              train: dict[str, Any], eval: dict[str, Any]) -> RunConfig:
    """``cfg.run`` for a stage the SFT loop runs (pre-training, SFT): named ``<name>-<stage>``, from ``model`` on
    the tasks of ``corpus``, ``steps`` steps of ``optim.batch_size`` of the ``examples`` transcripts (as epochs)
    in micro-batches of ``optim.micro_batch_size``, with ``optim``'s lr, warm-up and decay and ``sft.grad_clip``, one
    checkpoint kept, then the ``train`` and ``eval`` changes. ``train.steps`` is the stage's own (the RL runs'
    step count is not what the stage depends on)."""
    return with_changes(cfg.run, {
        "name": f"{cfg.name}-{stage}", "policy": {"threads": cfg.threads, "model": str(model)},
        "tasks": {"corpus": str(corpus)},
        "optim": {"lr": optim.lr, "warmup_steps": optim.warmup_steps, "decay_steps": steps if optim.lr_decay else 0,
                  "grad_clip": cfg.sft.grad_clip},
        "train": {"steps": steps, "sft_batch_size": optim.batch_size, "micro_batch_size": optim.micro_batch_size,
                  "sft_epochs": steps * optim.batch_size / max(examples, 1), "keep_checkpoints": 1, **train},
        "eval": eval})


def active_methods(cfg: DemoConfig) -> list[Method]:
    """The methods this demo runs: all of them with ``all_methods``, else those not marked ``extra``."""
    return [m for m in cfg.methods if cfg.all_methods or not m.extra]


def method_seeds(cfg: DemoConfig, method: Method) -> list[int]:
    return cfg.seeds[: method.seeds] if method.seeds else list(cfg.seeds)


def _default_data() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def load_demo_config(
    args: tuple[str, ...] | list[str] = (), *, quick: bool = False, seeds: int | None = None,
    methods: Sequence[str] | None = None,
) -> DemoConfig:
    """Resolve ``[CONFIG] [key.sub=value …]`` over the embedded default (a CONFIG file replaces it, or with
    ``extends: demo`` or ``extends: OTHER.yaml`` holds only what differs: :func:`~echo_rl.configfile.read_extending_yaml`);
    ``quick`` applies the config's ``quick`` overrides first; ``seeds`` N sets ``seeds`` to 0 … N-1; ``methods``
    keeps only the named methods (:func:`chosen_methods`)."""
    path, overrides = split_args(args)
    data = read_extending_yaml(path, {"demo": _default_data}) if path else _default_data()
    source = path or "<demo default>"
    if quick:
        apply_overrides(data, dict(data.get("quick") or {}))
        source += " (--quick)"
    if seeds is not None:
        data["seeds"] = list(range(seeds))
    cfg = load_model(DemoConfig, data, overrides, source)
    return cfg if methods is None else chosen_methods(cfg, methods, source)


def chosen_methods(cfg: DemoConfig, names: Sequence[str], source: str) -> DemoConfig:
    """``cfg`` with only the methods named in ``names`` (``--methods``), in the config's order, each run whether
    or not it is marked extra. A run's result does not depend on which others run beside it, so a sweep run in
    parts into one ``--out`` reuses every part's runs when the whole sweep runs there."""
    known = [m.name for m in cfg.methods]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        problem = f"the config has no method {unknown[0]!r}" if unknown else "names no method"
        raise UserError(f"--methods: {problem} (its methods: {', '.join(known)})", where=source)
    chosen = [m.model_copy(update={"extra": False}) for m in cfg.methods if m.name in names]
    return cfg.model_copy(update={"methods": chosen})
