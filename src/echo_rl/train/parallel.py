"""The trained module across ranks (``parallel.mode``): gradient reduction across micro-batches, activation
checkpointing, and full weights for the sampler and for checkpoints.

=======  ==========================================  ====================================================
mode     module the update trains (``module``)       module rollouts, evaluation and saving read (``full``)
=======  ==========================================  ====================================================
none     the model                                   the model
ddp      ``DistributedDataParallel(model)``          the model (every rank holds all of it)
fsdp2    the model, ``fully_shard`` per decoder      an unsharded copy in ``policy.dtype``, refreshed after
         layer and at the root: fp32 master           every update (:meth:`TrainedModel.refresh`); costs
         parameters, gradients and AdamW state        (bytes of ``policy.dtype``) × parameters per rank,
         sharded; compute in ``policy.dtype``         e.g. 16 GB for 8B parameters in bf16, plus one
         (``MixedPrecisionPolicy``, fp32 reduce)      gathered parameter at a time while refreshing
=======  ==========================================  ====================================================

Every sequence's loss is already weighted by 1 / (global batch), so gradients are SUMMED across ranks
(a DDP communication hook; FSDP2 with divide factor 1): an update equals the single-process update on the
same global batch. Under DDP :func:`accumulate_gradients` reduces once per optimizer step, in the last
micro-batch's backward (``no_sync`` before it). Under FSDP2 every micro-batch's backward reduce-scatters
its gradients and the shards add up (a reduce-scatter is linear, so the update is the same): holding the
unsharded fp32 gradients until the last micro-batch instead would cost 4 bytes × parameters per rank
(33 GB for 8B), more than sharding saves.
Grad-norm clipping is global: under FSDP2 the gradients are sharded DTensors and their norm is reduced
over ranks.

The sampler never runs the sharded module: ranks generate different numbers of tokens, and FSDP2's
all-gathers would not line up. Without ``torchrun`` only ``none`` (and ``auto``) can run.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.objective.logprobs import token_logprobs
from echo_rl.distributed import DistContext, all_reduce_max
from echo_rl.train.precision import compute_dtype

Item = TypeVar("Item")


def resolve_mode(cfg: RunConfig, ctx: DistContext) -> str:
    """``parallel.mode`` with ``auto`` resolved (``ddp`` under torchrun with several ranks, else ``none``);
    a one-line error for ``ddp`` / ``fsdp2`` in a single process."""
    mode = cfg.parallel.mode
    if mode == "auto":
        return "ddp" if ctx.enabled else "none"
    if mode != "none" and not ctx.enabled:
        raise UserError(f"parallel.mode={mode} needs torchrun with 2 or more processes "
                        "(or parallel.mode=auto / none in one process)")
    return mode


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a Hugging Face model (the classes it names in ``_no_split_modules``)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names]


def _sum_allreduce_hook(group, bucket):  # type: ignore[no-untyped-def]  # DDP rejects string annotations
    """DDP communication hook: all-reduce a gradient bucket (a ``dist.GradBucket``) as a sum (DDP's default
    averages)."""
    work = dist.all_reduce(bucket.buffer(), group=group, async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


@dataclass
class TrainedModel:
    """What :func:`parallelize` returns; see the module docstring for ``module`` and ``full``."""

    module: torch.nn.Module
    full: torch.nn.Module
    mode: str
    ctx: DistContext

    @property
    def sharded(self) -> bool:
        return self.mode == "fsdp2"

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the sharded master weights into the full copy, one gathered parameter at a time (fsdp2;
        a no-op otherwise: ``full`` is the trained model)."""
        if not self.sharded:
            return
        targets = dict(self.full.named_parameters())
        for name, param in self.module.named_parameters():
            targets[name].copy_(param.full_tensor() if isinstance(param, DTensor) else param)

    def _options(self) -> StateDictOptions:
        return StateDictOptions(full_state_dict=True, cpu_offload=self.ctx.enabled)

    def model_state(self) -> dict[str, torch.Tensor] | None:
        """The full fp32 state dict to save (fsdp2: gathered to rank 0's CPU; every rank must call it);
        None when ``full.save_pretrained`` can read the weights itself."""
        return get_model_state_dict(self.module, options=self._options()) if self.sharded else None

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer state keyed by parameter name, gathered whole (rank 0's copy is the complete one;
        every rank must call it), so that a checkpoint resumes under any mode and world size."""
        return get_optimizer_state_dict(self.module, optimizer, options=self._options())

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Inverse of :meth:`optimizer_state`: every rank keeps its share."""
        set_optimizer_state_dict(self.module, optimizer, state, options=StateDictOptions(full_state_dict=True))


def parallelize(model: torch.nn.Module, cfg: RunConfig, ctx: DistContext) -> TrainedModel:
    """Set ``model`` up for training under ``parallel.mode`` (module docstring), with activation
    checkpointing per decoder layer when ``parallel.activation_checkpointing`` (non-reentrant
    ``torch.utils.checkpoint`` through transformers' ``activation_checkpointing_enable``; it acts in
    training mode only, so sampling is unaffected)."""
    mode = resolve_mode(cfg, ctx)
    if cfg.parallel.activation_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.2x; older name below
        if enable is not None:
            enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if mode == "none":
        return TrainedModel(model, model, mode, ctx)
    if mode == "ddp":
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
        ddp.register_comm_hook(None, _sum_allreduce_hook)
        return TrainedModel(ddp, model, mode, ctx)
    compute = compute_dtype(cfg.policy.dtype)
    full = copy.deepcopy(model).to(compute).requires_grad_(False).eval()
    model.to(torch.float32)
    mesh = dist.device_mesh.init_device_mesh(ctx.device.type, (ctx.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=None if compute == torch.float32 else compute, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    for unit in model.modules():
        if isinstance(unit, FSDPModule):
            unit.set_gradient_divide_factor(1.0)
            unit.set_force_sum_reduction_for_comms(True)  # plain SUM collectives (gloo has no PREMUL_SUM)
    return TrainedModel(model, full, mode, ctx)


def autocast_dtype(model: torch.nn.Module, name: str) -> str:
    """The ``policy.dtype`` to autocast ``model``'s forward in: ``name``, or float32 (no autocast) for an
    FSDP2 module, whose MixedPrecisionPolicy already computes in ``name``."""
    return "float32" if isinstance(model, FSDPModule) else name


def _idle_loss(model: torch.nn.Module, device: torch.device) -> torch.Tensor:
    """A loss of exactly zero that still runs every parameter's forward and backward (two tokens)."""
    ids = torch.zeros(1, 2, dtype=torch.long, device=device)
    return token_logprobs(model, ids, torch.ones_like(ids)).logprobs.sum() * 0.0


def _gradient_sync(model: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager[None]:
    """DDP reduces in the last micro-batch only; FSDP2 reduce-scatters in every one (module docstring)."""
    if isinstance(model, DistributedDataParallel) and not last:
        return model.no_sync()
    return contextlib.nullcontext()


def accumulate_gradients(
    model: torch.nn.Module,
    micro_batches: Sequence[Item],
    loss_of: Callable[[Item], tuple[torch.Tensor, dict[str, float]]],
    ctx: DistContext,
) -> list[dict[str, float]]:
    """Backward ``loss_of(mb)`` for every micro-batch and return their metrics; gradients add up over the
    micro-batches and are summed across ranks (DDP: once, in the last backward; FSDP2: shard by shard). Every rank runs as many passes as the rank with
    the most micro-batches (DDP reduces in the last one, FSDP2 all-gathers in every forward); its missing
    ones are idle passes of zero loss."""
    count = int(all_reduce_max(len(micro_batches), ctx))
    device = next(model.parameters()).device
    parts = []
    for i in range(count):
        with _gradient_sync(model, last=i == count - 1):
            if i < len(micro_batches):
                loss, metrics = loss_of(micro_batches[i])
                parts.append(metrics)
            else:
                loss = _idle_loss(model, device)
            loss.backward()
    return parts


def paused_gradient_sync(model: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
    """For gradients taken with ``torch.autograd.grad`` (per-term probes), which DDP's hooks never see: the
    caller reduces them itself. (FSDP2 cannot take them: refused at config load.)"""
    return model.no_sync() if isinstance(model, DistributedDataParallel) else contextlib.nullcontext()
