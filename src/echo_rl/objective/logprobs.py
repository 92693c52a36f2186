"""Per-token log-probabilities from one forward pass, without materialising [tokens × vocab] logits.

For a causal LM with final hidden states h and output projection W (the ``lm_head``), token t of a
sequence is scored from the hidden state one position earlier, at a per-token temperature τ_t:

    z_t               = W h_{t-1} / τ_t                       (logits, float32)
    log p(x_t | x_<t) = z_t[x_t] − logsumexp(z_t)
    H_t               = −Σ_v p_v log p_v,  p = softmax(z_t)    (entropy; a metric, carries no gradient)

The transformer body runs once over the whole transcript; the projection and the log-softmax then run
over chunks of ``chunk_size`` positions. The backward pass recomputes each chunk's logits and applies

    ∂ log p(x_t) / ∂ z_t = onehot(x_t) − softmax(z_t),     ∂ z_t / ∂ (W h_{t-1}) = 1 / τ_t

so neither pass holds more than one [chunk × V] float32 block (plus the [T × hidden] states).
Under ``torch.autocast`` (bf16 compute, :mod:`echo_rl.train.precision`) the projection W h runs in the
autocast dtype in both passes, as the model's own ``lm_head`` would (the recomputed logits then equal the
forward's); the softmax, the log-probs and the weight gradient stay float32.
Positions are aligned with ``input_ids``: entry t is log p(x_t | x_<t); entry 0 and padding are 0.

The hidden states come from the model's own (root) forward with no position kept for its logits, so that
wrappers that act in that forward — DistributedDataParallel's gradient hooks, FSDP2's all-gathers, peft's
adapters — see the pass (:func:`final_hidden_states`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

Temperature = float | Tensor  # a scalar, or a [B, T] tensor of per-token temperatures


class TokenLogprobs(NamedTuple):
    logprobs: Tensor  # [B, T] float32, differentiable
    entropy: Tensor | None  # [B, T] float32, detached; None unless asked for


def _scaled_logits(hidden: Tensor, weight: Tensor, inv_temp: Tensor) -> Tensor:
    """z = (h Wᵀ) / τ for one chunk, in float32 (the matmul runs in the dtype of ``weight``)."""
    return (hidden.to(weight.dtype) @ weight.T).float().mul_(inv_temp[:, None])


def _matmul_dtype(weight: Tensor) -> torch.dtype:
    """The dtype of the projection: the autocast dtype when autocast is on for the weight's device."""
    device = weight.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype


class _ChunkedLogprobs(torch.autograd.Function):
    """log p(target) (and optionally entropy) of rows of ``hidden`` under ``weight``, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, inv_temp, chunk_size: int, with_entropy: bool):
        n = hidden.shape[0]
        ctx.matmul_dtype = _matmul_dtype(weight)
        projection = weight.to(ctx.matmul_dtype)  # one cast per pass (autocast would cast per chunk)
        logprobs = torch.empty(n, dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logprobs)
        entropy = torch.empty_like(logprobs) if with_entropy else logprobs.new_empty(0)
        for start in range(0, n, chunk_size):
            rows = slice(start, start + chunk_size)
            z = _scaled_logits(hidden[rows], projection, inv_temp[rows])
            top = z.amax(dim=-1, keepdim=True)
            z.sub_(top)  # z − max, in place: the chunk's only [chunk × V] buffer without entropy
            target = z.gather(1, targets[rows, None]).squeeze(1)
            if with_entropy:  # H = log Σe − Σ e·(z − max) / Σe,  e = exp(z − max)
                e = z.exp()
                total = e.sum(dim=-1)
                entropy[rows] = total.log() - e.mul_(z).sum(dim=-1) / total
                del e
            else:
                total = z.exp_().sum(dim=-1)
            del z  # free this chunk's logits before the next chunk allocates its own
            logprobs[rows] = target - total.log()
            lse[rows] = top.squeeze(1) + total.log()
        ctx.save_for_backward(hidden, weight, targets, inv_temp, lse)
        ctx.chunk_size = chunk_size
        ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, _grad_entropy):
        with torch.autocast(grad_logprobs.device.type, enabled=False):  # the dtypes are explicit here
            return _ChunkedLogprobs._backward(ctx, grad_logprobs)

    @staticmethod
    def _backward(ctx, grad_logprobs):
        hidden, weight, targets, inv_temp, lse = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        projection = weight.to(ctx.matmul_dtype)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        # grad_weight is accumulated transposed, [hidden × V], so no [chunk × V] operand is ever transposed
        grad_weight_t = (
            torch.zeros(weight.shape[::-1], dtype=torch.float32, device=weight.device) if need_weight else None
        )
        for start in range(0, hidden.shape[0], ctx.chunk_size):
            rows = slice(start, start + ctx.chunk_size)
            g = grad_logprobs[rows, None].float()
            # ∂L/∂(W h) = g · (onehot(x) − softmax(z)) / τ, built in place in the recomputed logits buffer
            grad_z = _scaled_logits(hidden[rows], projection, inv_temp[rows]).sub_(lse[rows, None]).exp_().mul_(-g)
            grad_z.scatter_add_(1, targets[rows, None], g)
            grad_z.mul_(inv_temp[rows, None])
            if need_hidden:
                grad_hidden[rows] = (grad_z.to(projection.dtype) @ projection).to(hidden.dtype)
            if need_weight:
                grad_weight_t.addmm_(hidden[rows].T.float(), grad_z)
            del grad_z
        grad_weight = grad_weight_t.T.to(weight.dtype).contiguous() if need_weight else None
        return grad_hidden, grad_weight, None, None, None, None


def _per_token(temperature: Temperature, like: Tensor) -> Tensor:
    """Temperature as a float32 [B, T] tensor."""
    if isinstance(temperature, Tensor):
        return temperature.to(device=like.device, dtype=torch.float32).expand(like.shape)
    return torch.full(like.shape, float(temperature), dtype=torch.float32, device=like.device)


def _scatter_positions(values: Tensor, selected: Tensor) -> Tensor:
    """Place per-target values back at their positions: [B, T] with zeros at t = 0 and at padding."""
    rest = values.new_zeros(selected.shape).masked_scatter(selected, values)
    return F.pad(rest, (1, 0))


def hidden_logprobs(
    hidden: Tensor, weight: Tensor, targets: Tensor, temperature: float = 1.0, chunk_size: int = 1024
) -> Tensor:
    """log p(targets[i]) for each row of ``hidden`` [N, H] (states one position before each target) under the
    output projection ``weight`` [V, H] at temperature τ: the chunked projection above, for a caller that
    already ran the model body (e.g. a forward hook inside another trainer's pass). [N] float32."""
    inv_temp = torch.full((hidden.shape[0],), 1.0 / temperature, dtype=torch.float32, device=hidden.device)
    return _ChunkedLogprobs.apply(hidden, weight, targets, inv_temp, chunk_size, False)[0]


def final_hidden_states(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """The last hidden states [B, T, hidden] (after the final norm) from one call of ``model`` itself, with an
    empty logits selection: no [T × V] logits are computed."""
    nothing = torch.zeros(0, dtype=torch.long, device=input_ids.device)  # the positions to score: none
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, output_hidden_states=True,
                logits_to_keep=nothing)
    return out.hidden_states[-1]


def token_logprobs(
    model: torch.nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    chunk_size: int = 1024,
    temperature: Temperature = 1.0,
    with_entropy: bool = False,
) -> TokenLogprobs:
    """log p(x_t | x_<t) for every real token of a right-padded batch, from one pass of the model body and a
    chunked projection (see the module docstring). ``model`` is a Hugging Face causal LM whose logits are
    ``lm_head(hidden)`` without bias; ``temperature`` is a scalar or a [B, T] tensor of per-token τ_t."""
    head = getattr(model, "module", model).get_output_embeddings()  # through a DistributedDataParallel wrapper
    if getattr(head, "bias", None) is not None:
        raise ValueError("token_logprobs supports output projections without bias")
    hidden = final_hidden_states(model, input_ids, attention_mask)
    selected = attention_mask[:, 1:].bool()
    inv_temp = _per_token(temperature, input_ids)[:, 1:][selected].reciprocal()
    logprobs, entropy = _ChunkedLogprobs.apply(
        hidden[:, :-1][selected], head.weight, input_ids[:, 1:][selected], inv_temp, chunk_size, with_entropy
    )
    return TokenLogprobs(
        _scatter_positions(logprobs, selected), _scatter_positions(entropy, selected) if with_entropy else None
    )


def full_logits_logprobs(
    model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor, temperature: Temperature = 1.0
) -> TokenLogprobs:
    """The reference computation that :func:`token_logprobs` replaces: the model's full [B, T, V] logits,
    log-softmax over them, gather. Same layout and equations; memory grows with T × V (tests, benchmarks)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    log_p = torch.log_softmax(logits / _per_token(temperature, input_ids)[:, 1:, None], dim=-1)
    keep = attention_mask[:, 1:].to(log_p.dtype)
    logprobs = log_p.gather(-1, input_ids[:, 1:, None]).squeeze(-1) * keep
    entropy = -(log_p.exp() * log_p).sum(-1).detach() * keep
    return TokenLogprobs(F.pad(logprobs, (1, 0)), F.pad(entropy, (1, 0)))
