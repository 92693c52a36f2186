"""A memory plan before a run starts: the per-rank bytes of one training step, from first principles.

    plan = memory_plan(cfg, world_size=8)          # or: echo-rl train CONFIG --plan --world-size 8
    plan.check_fits(80 * 2**30)                    # one-line UserError naming the field to change

Model shape (:func:`model_shape`): the config's ``policy.model`` — ``tiny``/``smollm2-135m``, a checkpoint
or run directory, a Hugging Face ``config.json``, or a preset with published shapes (:data:`PRESETS`,
e.g. ``qwen3-8b``), so a run can be planned without its weights. Notation: P parameters (P_l of one decoder
layer, P_r of the root: embeddings, final norm, untied lm_head), L layers, hidden h, q = heads·head_dim,
kv = kv_heads·head_dim, intermediate I, vocabulary V, N ranks, s the bytes of the compute dtype
``policy.dtype``, b = micro_batch_size, T = ``episode.max_context_tokens`` (the longest sequence).

Precision (as ``policy.dtype`` is defined: the compute dtype; master weights and AdamW state fp32):
weights 4P (+ a compute copy: sP when s < 4 without sharding — an autocast cache or a low-precision
shadow); gradients 4 bytes per trainable parameter; AdamW 8 (exp_avg, exp_avg_sq). LoRA
(``policy.lora``): the base stays as above but frozen; only the adapters r·(in+out) per target module
get gradients and AdamW state. The KL term (``objective.kl_coef`` > 0) holds a frozen reference copy in
the compute dtype, unsharded (sP; none with LoRA, whose reference is the base with adapters off).

Sharding (``parallel.mode``): ``none`` — everything on one rank; ``ddp`` — the same plus DDP's gradient
buckets (4 bytes per trainable parameter, ``gradient_as_bucket_view`` off, torch's default); ``fsdp2`` —
weights, gradients and AdamW state ÷ N, plus the unsharded working set: two decoder layers' parameters
in the compute dtype (the one running and the one prefetched), one layer's unsharded fp32 gradient
before its reduce-scatter, and the root's parameters (s·P_r) and fp32 gradient (4·P_r), which FSDP2
keeps unsharded from forward to backward; every micro-batch's backward reduce-scatters, so no more than
that is unsharded at once (:mod:`echo_rl.train.parallel`). The sampler and checkpoints read a full copy
of the weights in the compute dtype (sP), refreshed after every update: FSDP2 never runs the sharded
module for rollouts.

Activations, per token and decoder layer, what autograd saves for backward in Hugging Face's Qwen3 layer
with SDPA (an O(T) flash / memory-efficient kernel, never the T×T math path):

    RMSNorm over d (input, post-attention: d = h; q_norm, k_norm per head: d = q, kv)  (4 + s)·d + 4·rows
        (the fp32 upcast feeding the variance, the normalised input of the weight multiply, rsqrt)
    attention: SDPA saves q, k, v (after RoPE), its output and logsumexp    s·(2q + 2kv') + 4·heads
        (kv' = kv, or q when a padding mask (b > 1) makes transformers repeat k/v for GQA)
    o_proj input (a contiguous copy of SDPA's output)                       s·q
    MLP: SiLU input, SiLU output, up output, down_proj input                4·s·I

so A = (4+s)(2h + q + kv) + s(4q + 2kv') + 4sI + 4(2 + 2·heads + kv_heads) bytes when the residual stream
is in the compute dtype (fp32, or FSDP2's bf16 parameters). Under autocast over fp32 weights (``none`` and
``ddp`` at bf16) the stream stays fp32: its two norms save (4 + 4)·h each, and each of the five projections
reading them saves its own bf16 cast (5·s·h); the stream's other tensors below are then fp32 too (w = 4
bytes instead of s). Without checkpointing
every layer keeps A·bT; with ``parallel.activation_checkpointing`` each layer keeps only its input (s·h
per token) and one layer at a time is recomputed in the body's backward (A·bT). A layer's backward adds
the gradient flowing through the stream (s·h) and two [bT × I] gradients in its MLP (2·s·I per token);
it runs after the log-prob pass below has freed its buffers, so the larger of the two counts. Besides the layers: the final norm ((4+s)h), RoPE's
cos/sin (2·s·head_dim), the padding mask of b > 1 (b·T² bool), and the chunked log-prob computation of
:mod:`echo_rl.objective.logprobs` (C = ``objective.logprob_chunk_size``): the gathered hidden states (s·h
per token) kept for backward, plus the larger of its forward — one chunk's fp32 logits and entropy
terms (8CV) — and its backward — the fp32 lm_head gradient accumulator (4hV), then one chunk's fp32
logits gradient (4CV, + sCV for its cast when s < 4) or, at the end, the lm_head gradient in the weight's
dtype (s·hV), and the hidden-state gradient (s·h per token). Models with a small width and a large
vocabulary peak in the forward blocks (C > h), Qwen3-8B in the backward ones.

vLLM (``policy.backend=vllm``): the engine holds ``policy.vllm.gpu_memory_utilization`` of the device
while it samples; with sleep mode it frees all but ~1 GiB (CUDA graphs, context) during the update. The
peak is the larger of the update (trainer total + asleep engine) and the rollout (trainer's weights and
AdamW state, gradients freed, + the awake engine).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from echo_rl.config import RunConfig
from echo_rl.errors import UserError

GIB = 2**30
ENGINE_ASLEEP_BYTES = GIB
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    qk_norm: bool = True  # Qwen3's per-head RMSNorm of q and k

    @property
    def q(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv(self) -> int:
        return self.kv_heads * self.head_dim

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear module of a decoder layer."""
        h, q, kv, i = self.hidden, self.q, self.kv, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def layer_params(self) -> int:
        norms = 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        return sum(a * b for a, b in self.module_dims().values()) + norms

    @property
    def root_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.root_params


def _qwen3(name: str, hidden: int, layers: int, heads: int, intermediate: int, tied: bool) -> ModelShape:
    return ModelShape(name, hidden, layers, heads, 8, 128, intermediate, 151_936, tied)


#: Published shapes (the models' config.json) of the Qwen3 dense models.
PRESETS = {
    shape.name: shape
    for shape in (
        _qwen3("qwen3-0.6b", 1024, 28, 16, 3072, True),
        _qwen3("qwen3-1.7b", 2048, 28, 16, 6144, True),
        _qwen3("qwen3-4b", 2560, 36, 32, 9728, True),
        _qwen3("qwen3-8b", 4096, 36, 32, 12288, False),
        _qwen3("qwen3-14b", 5120, 40, 40, 17408, False),
    )
}


def shape_from_config(config: dict, name: str) -> ModelShape:
    """The shape in a Hugging Face ``config.json`` mapping."""
    try:
        heads = int(config["num_attention_heads"])
        return ModelShape(
            name=name,
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or config["hidden_size"] // heads),
            intermediate=int(config["intermediate_size"]),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            qk_norm=config.get("model_type") == "qwen3",
        )
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"not a decoder-only model config ({type(err).__name__}: {err})", where=name) from None


def model_shape(spec: str) -> ModelShape:
    """The shape of ``policy.model`` ``spec`` (module docstring)."""
    if spec.lower() in PRESETS:
        return PRESETS[spec.lower()]
    path = Path(spec).expanduser()
    if path.is_file():
        config_file = path
    else:
        from echo_rl.models.load import resolve_checkpoint
        from echo_rl.train.session import resolve_model_spec

        try:
            config_file = resolve_checkpoint(resolve_model_spec(spec)) / "config.json"
        except UserError as err:
            raise UserError(f"policy.model: {err} (or a config.json, or one of {', '.join(PRESETS)})") from None
    try:
        return shape_from_config(json.loads(config_file.read_text()), spec)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read a model config ({err})", where=str(config_file)) from None


def activation_bytes_per_token(shape: ModelShape, s: int, w: int, repeat_kv: bool) -> int:
    """A: bytes autograd saves per token in one decoder layer (module docstring); ``s`` the compute dtype's
    bytes, ``w`` the residual stream's (the weights' dtype: 4 under autocast over fp32 weights)."""
    h, q, kv, i = shape.hidden, shape.q, shape.kv, shape.intermediate
    stream_norms = 2 * (4 + w) * h + (5 * s * h if w != s else 0)  # + each projection's own cast under autocast
    head_norms = (4 + s) * (q + kv) if shape.qk_norm else 0
    rows = 2 + (shape.heads + shape.kv_heads if shape.qk_norm else 0)
    kv_saved = q if repeat_kv else kv
    return stream_norms + head_norms + 4 * rows + s * (2 * q + 2 * kv_saved) + 4 * shape.heads + s * q + 4 * s * i


@dataclass(frozen=True)
class MemoryPlan:
    """Per-rank bytes of one training step; ``total`` is the peak (module docstring)."""

    shape: ModelShape
    world_size: int
    mode: str
    dtype: str
    checkpointing: bool
    tokens: str  # "b × T" of the longest micro-batch
    trainable: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    reference: int  # the KL term's frozen copy (0 without it)
    engine: int  # vLLM while it samples (0 without vLLM)
    engine_asleep: int
    notes: list[str] = field(default_factory=list)

    @property
    def update(self) -> int:
        return self.weights + self.reference + self.gradients + self.optimizer + self.activations + self.engine_asleep

    @property
    def rollout(self) -> int:
        return self.weights + self.reference + self.optimizer + self.engine

    @property
    def total(self) -> int:
        return max(self.update, self.rollout)

    def rows(self) -> list[tuple[str, int]]:
        rows = [("weights", self.weights), ("gradients", self.gradients), ("optimizer state (AdamW)", self.optimizer),
                ("activations", self.activations)]
        if self.reference:
            rows.insert(1, ("reference model (KL)", self.reference))
        if self.engine:
            rows += [("vLLM engine (sampling)", self.engine), ("vLLM engine (asleep, update)", self.engine_asleep)]
        return rows

    def render(self, device_bytes: int | None = None) -> str:
        """The plan as text: the set-up, one line per component (GiB per rank), the peak and the verdict."""
        lora = f", LoRA ({_count(self.trainable)} trainable)" if self.trainable < self.shape.params else ""
        lines = [
            f"memory plan per rank: {self.shape.name} ({_count(self.shape.params)} parameters{lora}), "
            f"{self.world_size} rank(s), parallel.mode={self.mode}, compute {self.dtype} (fp32 master and AdamW), "
            f"activation checkpointing {'on' if self.checkpointing else 'off'}, micro-batch {self.tokens} tokens",
        ]
        lines += [f"  {label:<30} {value / GIB:9.2f} GiB" for label, value in self.rows()]
        phase = "update" if self.update >= self.rollout else "rollout"
        lines.append(f"  {'peak (' + phase + ')':<30} {self.total / GIB:9.2f} GiB")
        if device_bytes is not None:
            verdict = "fits" if self.total <= device_bytes else "does NOT fit"
            lines.append(f"  {verdict} in {device_bytes / GIB:.1f} GiB of device memory")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def check_fits(self, device_bytes: int) -> None:
        """Raise a one-line UserError naming the config field to change when the peak exceeds the device."""
        if self.total <= device_bytes:
            return
        parts = dict(self.rows())
        largest = max(parts, key=parts.__getitem__)
        if self.engine and self.rollout > self.update:
            hint = "policy.vllm.gpu_memory_utilization"
        elif largest == "activations":
            hint = ("parallel.activation_checkpointing=true" if not self.checkpointing
                    else "train.micro_batch_size or episode.max_context_tokens")
        elif self.mode != "fsdp2":
            hint = "parallel.mode=fsdp2"
        else:
            hint = "policy.lora.enabled=true or more ranks"
        raise UserError(
            f"memory plan: {self.total / GIB:.1f} GiB per rank exceeds {device_bytes / GIB:.1f} GiB of device memory "
            f"(largest: {largest}, {parts[largest] / GIB:.1f} GiB); change {hint}"
        )


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _trainable(shape: ModelShape, cfg: RunConfig) -> int:
    lora = cfg.policy.lora
    if not lora.enabled:
        return shape.params
    dims = shape.module_dims()
    unknown = sorted(set(lora.target_modules) - set(dims))
    if unknown:
        raise UserError(f"policy.lora.target_modules: no such module in a decoder layer: {', '.join(unknown)}")
    return shape.layers * sum(lora.rank * (dims[m][0] + dims[m][1]) for m in lora.target_modules)


def _activations(shape: ModelShape, cfg: RunConfig, s: int, w: int) -> int:
    b, t = cfg.train.micro_batch_size, cfg.episode.max_context_tokens
    n = b * t
    per_layer = activation_bytes_per_token(shape, s, w, repeat_kv=b > 1) * n
    if cfg.policy.lora.enabled:  # each adapter saves its A-projection (r per token)
        per_layer += len(cfg.policy.lora.target_modules) * cfg.policy.lora.rank * s * n
    checkpointing = cfg.parallel.activation_checkpointing
    layers = shape.layers * (shape.hidden * w * n if checkpointing else per_layer)
    h, v, c = shape.hidden, shape.vocab, min(cfg.objective.logprob_chunk_size, n)
    around = (4 + w) * h * n + 2 * w * shape.head_dim * n + (b * t * t if b > 1 else 0)
    forward_blocks = 8 * c * v
    backward_blocks = 4 * h * v + max((4 + (w if w < 4 else 0)) * c * v, w * h * v) + w * h * n
    logprob = w * h * n + max(forward_blocks, backward_blocks)
    layer_backward = (per_layer if checkpointing else 0) + w * h * n + 2 * s * shape.intermediate * n
    return layers + around + max(logprob, layer_backward)


def memory_plan(cfg: RunConfig, *, world_size: int = 1, shape: ModelShape | None = None) -> MemoryPlan:
    """The per-rank plan of ``cfg`` on ``world_size`` ranks (module docstring); ``shape`` overrides the
    shape of ``cfg.policy.model``."""
    shape = shape or model_shape(cfg.policy.model)
    s = _DTYPE_BYTES[cfg.policy.dtype]
    mode = cfg.parallel.mode
    if mode == "auto":
        mode = "ddp" if world_size > 1 else "none"
    if mode in ("ddp", "fsdp2") and world_size < 2:
        notes = [f"parallel.mode={mode} with one rank: planned as one process"]
    else:
        notes = []
    p, trainable = shape.params, _trainable(shape, cfg)
    shards = world_size if mode == "fsdp2" else 1
    weights = -(-4 * p // shards)
    gradients = -(-4 * trainable // shards)
    optimizer = -(-8 * trainable // shards)
    if mode == "fsdp2":
        layer_grads = 4 * shape.layer_params if trainable == p else 4 * trainable // shape.layers
        root_grads = 4 * shape.root_params if trainable == p else 0
        weights += s * (2 * shape.layer_params + shape.root_params) + s * p  # working set + the sampler's copy
        gradients += layer_grads + root_grads
    elif s < 4:
        weights += s * p
    if mode == "ddp":
        gradients += 4 * trainable
    reference = s * p if cfg.objective.kl_coef > 0 and not cfg.policy.lora.enabled else 0
    engine = engine_asleep = 0
    if cfg.policy.backend == "vllm":
        notes.append("vLLM engine: share from policy.vllm.gpu_memory_utilization of --device-memory-gb")
        engine_asleep = ENGINE_ASLEEP_BYTES if cfg.policy.vllm.enable_sleep_mode else 0
    return MemoryPlan(shape, world_size, mode, cfg.policy.dtype, cfg.parallel.activation_checkpointing,
                      f"{cfg.train.micro_batch_size} × {cfg.episode.max_context_tokens}", trainable, weights, gradients,
                      optimizer, _activations(shape, cfg, s, s if mode == "fsdp2" else 4), reference, engine,
                      engine_asleep, notes)


def plan_for_device(cfg: RunConfig, *, world_size: int, device_bytes: int | None) -> MemoryPlan:
    """:func:`memory_plan` with the vLLM engine's share of ``device_bytes`` filled in (without the device
    memory the engine's share is unknown and left out, with a note)."""
    plan = memory_plan(cfg, world_size=world_size)
    if cfg.policy.backend != "vllm":
        return plan
    if device_bytes is None:
        return dataclasses.replace(plan, notes=[*plan.notes, "give --device-memory-gb to plan the vLLM engine"])
    share = int(cfg.policy.vllm.gpu_memory_utilization * device_bytes)
    engine_asleep = plan.engine_asleep if cfg.policy.vllm.enable_sleep_mode else share
    return dataclasses.replace(plan, engine=share, engine_asleep=engine_asleep)


def print_plan(cfg: RunConfig, *, world_size: int | None, device_memory_gb: float | None,
               echo: Callable[[str], object] = print) -> MemoryPlan:
    """What ``echo-rl train CONFIG --plan`` does: plan for ``world_size`` ranks (default ``WORLD_SIZE`` or
    1), print it, and raise the one-line error of :meth:`MemoryPlan.check_fits` when it does not fit
    ``device_memory_gb`` GiB."""
    ranks = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    device = int(device_memory_gb * GIB) if device_memory_gb is not None else None
    plan = plan_for_device(cfg, world_size=ranks, device_bytes=device)
    echo(plan.render(device))
    if device is not None:
        plan.check_fits(device)
    return plan
