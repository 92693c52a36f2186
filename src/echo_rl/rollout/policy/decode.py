"""The rows a transformers model decodes together (continuous batching).

A :class:`DecodeBatch` holds, for every row being generated: the KV cache (one batch cache, rows
left-padded to a common length), the attention mask over the cached positions, and the next token to
feed with its position. :meth:`DecodeBatch.admit` prefills new prompts — only their tokens the prefix
cache does not already hold — samples their first token and merges them into the batch;
:meth:`DecodeBatch.step` feeds every row its next token and samples the one after. A row that samples a
stop token or reaches its limit leaves at once: its Generation is delivered, its keys and values go to
the prefix cache for the episode's next turn, and its cache row is dropped.

Sampling is by inverse CDF: row r takes the token whose cumulative probability first exceeds u_r · total,
u_r uniform in [0, 1) drawn from the row's own stream (``random.Random(request.seed)``) when its request
has a seed, else from the policy's ``torch.Generator``. A seeded row's draws are thus its own, whatever
rows share the step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache

from echo_rl.rollout.policy.base import Generation, Request, SamplingParams
from echo_rl.rollout.policy.kvcache import BLOCK, gathered, row_kv, shared_prefixes, stacked

if TYPE_CHECKING:
    from echo_rl.rollout.policy.hf import TransformersPolicy


@dataclass
class _Row:
    request: Request
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stream: random.Random | None = None

    def __post_init__(self) -> None:
        if self.request.seed is not None:
            self.stream = random.Random(self.request.seed)


@dataclass
class _State:
    """Tensors of a set of rows: cache [B, kv_heads, T, head_dim] per layer, mask [B, T] over the cached
    positions, next tokens [B] and their positions [B]."""

    rows: list[_Row]
    cache: DynamicCache
    mask: torch.Tensor
    tokens: torch.Tensor
    positions: torch.Tensor


class DecodeBatch:
    def __init__(
        self,
        policy: TransformersPolicy,
        sampling: SamplingParams,
        *,
        batch_sizes: list[int] | None = None,
    ) -> None:
        self.policy = policy
        self.sampling = sampling
        self.stops = torch.tensor(sorted(sampling.stop_token_ids), dtype=torch.long, device=policy.device)
        self.batch_sizes = batch_sizes if batch_sizes is not None else []
        self.state: _State | None = None

    @property
    def rows(self) -> list[_Row]:
        return self.state.rows if self.state is not None else []

    def admit(self, requests: list[Request]) -> None:
        """Prefill ``requests`` and merge the unfinished ones into the batch."""
        for request in requests:
            if request.limit <= 0:
                request.settle(Generation([], [], "length"))
        requests = [r for r in requests if r.limit > 0]
        if not requests:
            return
        prompts = [r.prompt for r in requests]
        if self.policy.prefix_cache.max_bytes and len(prompts) > 1:
            self._prefill_shared(prompts)
        ids, mask, positions, cache = self.policy.prefill_inputs(prompts)
        cache, logits = self._forward(ids, mask, positions, cache)
        self._keep(prompts, cache, mask, ids.shape[1])
        rows = [_Row(r) for r in requests]
        tokens, logprobs = self._sample(logits, rows)
        lengths = torch.tensor([len(r.prompt) for r in requests], device=mask.device)  # next tokens' positions
        self._merge(self._advance(_State(rows, cache, mask, tokens, lengths), logprobs))

    def _prefill_shared(self, prompts: list[list[int]]) -> None:
        """Prefill once, and keep in the prefix cache, the prefixes several of ``prompts`` share (the system
        prompt of different tasks, a group's common prompt), level by level: a prefix waits for the shared
        prefixes it extends, so that it prefills only what it adds to them."""
        cache = self.policy.prefix_cache
        pending = shared_prefixes(prompts, [cache.lookup(prompt)[0] for prompt in prompts])
        while pending:
            level = [p for p in pending if not any(len(q) < len(p) and p[: len(q)] == q for q in pending)]
            pending = [p for p in pending if not any(p is q for q in level)]
            ids, mask, positions, past = self.policy.prefill_inputs(level)
            self._keep(level, self._forward(ids, mask, positions, past)[0], mask, ids.shape[1])

    def _keep(self, prompts: list[list[int]], cache: DynamicCache, mask: torch.Tensor, width: int) -> None:
        """Store the keys and values of each just-prefilled prompt that fed at least a block of new tokens
        (the last ``width`` mask columns are the fed ones): later arrivals that share its start (the rest of
        its group, other tasks' system prompt) prefill only what differs. A prompt the cache already held
        but for a few tokens is not copied again."""
        if not self.policy.prefix_cache.max_bytes:
            return
        fed = mask[:, mask.shape[1] - width :].sum(1).tolist()
        first_row = {tuple(prompt): row for row, prompt in reversed(list(enumerate(prompts)))}
        for row in first_row.values():
            if fed[row] >= BLOCK:
                self.policy.prefix_cache.store(prompts[row], row_kv(cache, row, mask[row]))

    def step(self) -> None:
        """Feed every row its next token; sample, deliver finished rows, drop them."""
        s = self.state
        assert s is not None
        mask = torch.cat([s.mask, s.mask.new_ones(len(s.rows), 1)], dim=1)
        s.cache, logits = self._forward(s.tokens[:, None], mask, s.positions[:, None], s.cache)
        s.mask = mask
        s.tokens, logprobs = self._sample(logits, s.rows)
        s.positions = s.positions + 1
        self.state = self._advance(s, logprobs)

    def fail(self, error: BaseException) -> None:
        """Answer every row with ``error`` and empty the batch."""
        for row in self.rows:
            row.request.settle(error)
        self.state = None

    # -- internals -----------------------------------------------------------------------------------------

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache | None
    ) -> tuple[DynamicCache, torch.Tensor]:
        self.batch_sizes.append(ids.shape[0])
        p = self.policy
        out = p.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{p.cache_arg: cache},
        )
        return out[p.cache_arg], out.logits[:, -1].float()

    def _sample(self, logits: torch.Tensor, rows: list[_Row]) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per row and log softmax(logits / T) of it (T = 1 when greedy)."""
        sampling = self.sampling
        if sampling.temperature == 0:
            token = logits.argmax(-1)
            return token, logits.log_softmax(-1).gather(-1, token[:, None])[:, 0]
        scaled = logits / sampling.temperature
        cdf = truncate(scaled, sampling.top_p, sampling.top_k).softmax(-1).double().cumsum(-1)
        total = cdf[:, -1]
        # strictly below the total: the first entry above it then always has a positive probability
        target = torch.minimum(self._uniforms(rows) * total, torch.nextafter(total, torch.zeros_like(total)))
        token = torch.searchsorted(cdf, target[:, None], right=True)[:, 0]
        return token, scaled.log_softmax(-1).gather(-1, token[:, None])[:, 0]

    def _uniforms(self, rows: list[_Row]) -> torch.Tensor:
        """u in [0, 1) per row (float64): the row's own stream, or the policy's generator for rows without."""
        device = self.policy.device
        unseeded = [i for i, row in enumerate(rows) if row.stream is None]
        shared = torch.rand(len(unseeded), generator=self.policy.generator, device=device, dtype=torch.float64)
        draws = [row.stream.random() if row.stream is not None else 0.0 for row in rows]
        u = torch.tensor(draws, dtype=torch.float64, device=device)
        if unseeded:
            u[torch.tensor(unseeded, device=device)] = shared
        return u

    def _advance(self, s: _State, logprobs: torch.Tensor) -> _State | None:
        """Record the sampled tokens (``s.tokens``); finish and remove rows that stopped or hit their limit."""
        stopped = torch.isin(s.tokens, self.stops).tolist()
        keep = []
        for index, (row, token, logprob) in enumerate(zip(s.rows, s.tokens.tolist(), logprobs.tolist(), strict=True)):
            row.tokens.append(token)
            row.logprobs.append(logprob)
            if stopped[index] or len(row.tokens) == row.request.limit:
                if self.policy.prefix_cache.max_bytes:
                    ids = [*row.request.prompt, *row.tokens[:-1]]  # the last token was sampled, not fed
                    self.policy.prefix_cache.store(ids, row_kv(s.cache, index, s.mask[index]))
                row.request.settle(Generation(row.tokens, row.logprobs, "stop" if stopped[index] else "length"))
            else:
                keep.append(index)
        if not keep:
            return None
        if len(keep) == len(s.rows):
            return s
        index = torch.tensor(keep, device=s.mask.device)
        mask = s.mask[index]
        start = _first_used(mask)
        return _State([s.rows[i] for i in keep], gathered(s.cache, index, start), mask[:, start:],
                      s.tokens[index], s.positions[index])

    def _merge(self, new: _State | None) -> None:
        """Join ``new`` rows to the batch: both caches left-padded to one length (all-pad columns dropped)."""
        if new is None or self.state is None:
            self.state = self.state or new
            return
        old = self.state
        width = max(old.mask.shape[1], new.mask.shape[1])
        mask = torch.cat([_pad_left(old.mask, width), _pad_left(new.mask, width)])
        start = _first_used(mask)
        self.state = _State(
            old.rows + new.rows,
            stacked([old.cache, new.cache], width, start),
            mask[:, start:],
            torch.cat([old.tokens, new.tokens]),
            torch.cat([old.positions, new.positions]),
        )


def _first_used(mask: torch.Tensor) -> int:
    """The first position that is not padding in every row of ``mask`` [B, T]."""
    return int(mask.any(0).nonzero()[0])


def _pad_left(mask: torch.Tensor, width: int) -> torch.Tensor:
    """``mask`` [B, T] zero-padded on the left to ``width`` positions."""
    missing = width - mask.shape[1]
    return mask if missing == 0 else torch.cat([mask.new_zeros(mask.shape[0], missing), mask], dim=1)


def truncate(logits: torch.Tensor, top_p: float, top_k: int) -> torch.Tensor:
    """``logits`` with everything outside the top-k tokens and the top-p nucleus set to -inf (the most
    likely token always stays)."""
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        outside = probs.cumsum(-1) - probs > top_p  # mass before this token already exceeds top_p
        logits = logits.masked_fill(outside.scatter(-1, order, outside), float("-inf"))
    return logits
