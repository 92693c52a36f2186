"""The demo's configuration: what to build, how long to fine-tune, which methods to compare, on which seeds.

    cfg = load_demo_config(("seeds=[0,1,2]", "run.train.steps=40"), quick=False)

A demo config is a YAML mapping (the embedded default is :data:`echo_rl.demo.defaults.DEFAULT_YAML`, the
same text as ``configs/demo.yaml``). ``run`` is a full :class:`~echo_rl.config.RunConfig` shared by every
run of the study (sandbox, harness, episode limits, sampling, corpus, the RL optimiser, evaluation); the
other sections say what the demo does with it. Command-line overrides are ``key.sub=value`` over this
whole mapping (``run.train.steps=40``, ``sft.max_steps=300``); ``--quick`` applies the mapping under
``quick`` first. Bad input is a one-line :class:`~echo_rl.errors.UserError` naming the field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from echo_rl.config import RunConfig, apply_override, read_yaml
from echo_rl.errors import UserError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TokenizerSpec(_Section):
    """The byte-level BPE trained on the corpus' expert transcripts."""

    vocab_size: int = Field(1024, ge=300)
    pretokenizer: Literal["bytelevel", "qwen"] = Field(
        "qwen", description="qwen: Qwen3's split (one token per digit), so copied values keep their tokens")


class CopyWarmup(_Section):
    """Synthetic copy pretraining of the fresh model: sequences of random output tokens, each shown twice,
    with the loss on the second copy. A pretrained LM can already copy a value it has just read; a random
    tiny model cannot, and learns it from demonstrations only after a long plateau (the small-scale notes).
    A few dozen CPU-seconds of this give it an induction circuit first. 0 steps: off."""

    steps: int = Field(150, ge=0)
    length: int = Field(24, ge=2)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)


class PretrainSpec(_Section):
    """Pre-training of the fresh tiny model before SFT: a plain LM loss over every token
    (``train.sft_targets=all``) of ``sessions`` random shell sessions recorded in the sandbox
    (:mod:`echo_rl.tasks.sessions`, independent of the task families), so the model starts SFT with a world
    model of the terminal, as a pretrained LM would. The tokenizer is trained on these sessions too. 0
    sessions or 0 steps: off."""

    sessions: int = Field(1000, ge=0)
    seed: int = 0
    steps: int = Field(300, ge=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)

    @property
    def enabled(self) -> bool:
        return self.sessions > 0 and self.steps > 0


class ModelSpec(_Section):
    """Sizes of the tiny Qwen3 (``Qwen3ForCausalLM`` from a ``Qwen3Config``)."""

    hidden_size: int = Field(128, ge=16)
    num_layers: int = Field(3, ge=2)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(384, ge=16)
    seed: int = 0
    copy_warmup: CopyWarmup = CopyWarmup()


class Selection(_Section):
    """Which SFT checkpoint RL starts from (stable-ECHO issue, item 5).

    A checkpoint is *eligible* when its greedy validation pass@1 lies in [``low``, ``high``] and every
    training family solves at least ``min_family`` of its validation tasks. Among eligible checkpoints
    the one with the best worst-family score wins (then the lower overall score: more room for RL);
    without any, the one closest to the band with the best worst family. SFT stops early once the overall
    score passes ``high`` or ``patience`` evaluations after the first eligible one."""

    low: float = Field(0.15, ge=0, le=1)
    high: float = Field(0.6, ge=0, le=1)
    min_family: float = Field(0.1, ge=0, le=1)
    patience: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _band(self) -> Selection:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


class SFTSpec(_Section):
    """Expert-demonstration SFT from the randomly initialised tiny model."""

    max_steps: int = Field(600, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    env_loss_weight: float = Field(0.0, ge=0)
    eval_every: int = Field(25, ge=1)
    eval_from: int = Field(0, ge=0, description="skip the evaluations before this step (nothing is learnt yet)")
    eval_tasks: int | None = Field(None, ge=1, description="validation tasks per SFT evaluation (None: all)")
    select: Selection = Selection()


class Method(_Section):
    """One arm of the study: a name, a label for the report, and ``key.sub=value`` changes to ``run``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    label: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    seeds: int | None = Field(None, ge=1, description="run only the first N seeds (None: all)")


class EvalSpec(_Section):
    """The final evaluation of the base policy and of every run, on the report's splits (``run.eval`` drives
    the cheap curve evaluations on the selection split during training)."""

    samples_per_task: int = Field(2, ge=1)
    splits: list[str] = ["test", "heldout"]
    max_tasks: int | None = Field(None, ge=1)
    seed: int = 0


class SmolSpec(_Section):
    """``--model smollm2-135m``: evaluate SmolLM2-135M-Instruct, then a few ECHO steps."""

    eval_tasks: int = Field(8, ge=1)
    steps: int = Field(2, ge=1)
    tasks_per_step: int = Field(2, ge=1)
    rollouts_per_task: int = Field(2, ge=1)
    lr: float = Field(1e-6, gt=0)
    run: dict[str, Any] = Field(default_factory=dict, description="overrides of `run` for this path")


class DemoConfig(_Section):
    name: str = "demo"
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=1)
    threads: int = Field(2, ge=1, description="torch threads (the demo runs one method at a time)")
    tokenizer: TokenizerSpec = TokenizerSpec()
    model: ModelSpec = ModelSpec()
    pretrain: PretrainSpec = PretrainSpec()
    sft: SFTSpec = SFTSpec()
    methods: list[Method] = Field(min_length=1)
    eval: EvalSpec = EvalSpec()
    smol: SmolSpec = SmolSpec()
    budget_s: float = Field(1200.0, gt=0, description="wall-time budget the timing table is checked against")
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
    def _methods_resolve(self) -> DemoConfig:
        for method in self.methods:
            method_run(self, method, self.seeds[0])  # every override must give a valid RunConfig
        return self


def method_run(cfg: DemoConfig, method: Method, seed: int) -> RunConfig:
    """The RunConfig of ``method`` on ``seed``: ``cfg.run`` with the method's overrides."""
    data = cfg.run.model_dump(mode="json")
    for key, value in method.overrides.items():
        apply_override(data, f"{key}={json.dumps(value)}")
    data["seed"] = seed
    data["name"] = f"{method.name}-seed{seed}"
    data["policy"]["threads"] = cfg.threads
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"method {method.name}: {field}: {first['msg']}") from None


def method_seeds(cfg: DemoConfig, method: Method) -> list[int]:
    return cfg.seeds[: method.seeds] if method.seeds else list(cfg.seeds)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (cache keys)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<root>"
    message = "no such field" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{source}: {field}: {message}"


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in changes.items():
        both_maps = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both_maps else value
    return merged


def read_demo_yaml(path: str | Path) -> dict[str, Any]:
    """A demo config file. With ``extends: demo`` (the embedded default) or ``extends: OTHER.yaml`` (relative
    to this file) it holds only what differs: the file is merged over its base (:func:`merge`). Top-level
    keys starting with ``_`` only hold YAML anchors for the rest of the file and are dropped."""
    from echo_rl.demo.defaults import DEFAULT_YAML

    data = {key: value for key, value in read_yaml(path).items() if not key.startswith("_")}
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise UserError("extends: must be 'demo' or the path of another demo config", where=str(path))
    if parent == "demo":
        base = yaml.safe_load(DEFAULT_YAML)
    else:
        target = Path(path).parent / parent
        if target.resolve() == Path(path).resolve():
            raise UserError("extends: a config cannot extend itself", where=str(path))
        base = read_demo_yaml(target)
    return merge(base, data)


def load_demo_config(
    args: tuple[str, ...] | list[str] = (), *, quick: bool = False, seeds: int | None = None
) -> DemoConfig:
    """Resolve ``[CONFIG] [key.sub=value …]`` over the embedded default (a CONFIG file replaces it, or
    extends it: :func:`read_demo_yaml`);
    ``quick`` applies the config's ``quick`` overrides first; ``seeds`` N sets ``seeds`` to 0 … N-1."""
    from echo_rl.demo.defaults import DEFAULT_YAML

    overrides = list(args)
    path = overrides.pop(0) if overrides and "=" not in overrides[0] else None
    stray = [arg for arg in overrides if "=" not in arg]
    if stray:
        raise UserError(f"unexpected argument {stray[0]!r}: overrides look like key.sub=value")
    data = read_demo_yaml(path) if path else yaml.safe_load(DEFAULT_YAML)
    source = path or "<demo default>"
    if quick:
        for key, value in dict(data.get("quick") or {}).items():
            apply_override(data, f"{key}={json.dumps(value)}")
        source += " (--quick)"
    if seeds is not None:
        data["seeds"] = list(range(seeds))
    for override in overrides:
        apply_override(data, override)
    if overrides:
        source += " (with overrides)"
    try:
        return DemoConfig.model_validate(data)
    except ValidationError as err:
        raise UserError(_format_error(err, source)) from None


def dump_demo_config(cfg: DemoConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
