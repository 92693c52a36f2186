"""The transformers backend: batched sampling with a KV cache, continuous batching for episodes.

:meth:`TransformersPolicy.generate` decodes a list of prompts together; :meth:`TransformersPolicy.serve`
keeps decoding while requests come and go — a prompt that arrives joins the rows being decoded at the next
step, and each row is answered the moment it finishes, so an episode whose turn ended early runs its
command while the others still generate (see :mod:`.decode`). A prompt's tokens whose keys and values an
earlier call computed (the episode's previous turn) are not prefilled again (:mod:`.kvcache`). Sampling
draws from each request's own seeded stream when it has a seed — the same tokens whatever rows share
the step — and otherwise from the backend's ``torch.Generator`` (seeded), whose draws under :meth:`serve`
go to whichever rows share a step, so timing decides who gets which. (Log-probs of the same tokens may
still differ in the last float bits between batch compositions.) Recorded log-probs follow
:mod:`echo_rl.rollout.policy.base`: log softmax(logits / T) over the full vocabulary in float32, whatever
the model's dtype. The model is sampled in eval mode; its mode is restored afterwards (a trainer may
share it). ``threads`` sets torch's intra-op threads while sampling on the CPU (restored afterwards): a
decode step of a small model is too small to split, and splitting it across cores the sandboxes also
need makes every operation wait for a descheduled thread. ``compute`` is entered around sampling: a
trainer that shares its float32 module passes its compute precision (:func:`echo_rl.train.precision.compute_autocast`), so that the recorded log-probs come
from the arithmetic the trainer's forward uses and π_old matches π_θ before the update.
"""

from __future__ import annotations

import contextlib
import inspect
import queue
from collections.abc import Callable, Iterator, Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from echo_rl.rollout.policy.base import (
    Generation,
    Policy,
    Request,
    SamplingParams,
    per_prompt,
    prompt_seeds,
)
from echo_rl.rollout.policy.decode import DecodeBatch
from echo_rl.rollout.policy.kvcache import LayerKV, PrefixCache, cache_in_rooms, new_cache, new_rooms


class TransformersPolicy(Policy):
    """Samples from a ``PreTrainedModel`` (causal LM) on the device it is on when the policy is built.
    ``prefix_cache_mb`` bounds the memory of kept KV caches (0: prefill every prompt in full); ``compute``
    makes the context sampling runs in, ``threads`` the intra-op threads it uses on the CPU (module docstring;
    None: the process's setting)."""

    continuous = True

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        pad_token_id: int,
        seed: int = 0,
        prefix_cache_mb: int = 1024,
        compute: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
        threads: int | None = None,
    ) -> None:
        self.model = model
        self.compute = compute
        self.pad_token_id = pad_token_id
        self.device = next(model.parameters()).device
        self.threads = threads if self.device.type == "cpu" else None
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.prefix_cache = PrefixCache(prefix_cache_mb * 2**20)
        # transformers >= 5 names the KV cache argument ``cache``; 4.x calls it ``past_key_values``.
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    @contextlib.contextmanager
    def _sampling_mode(self) -> Iterator[None]:
        training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), self.compute(), intra_op_threads(self.threads):
                yield
        finally:
            self.model.train(training)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int | Sequence[int],
        sampling: SamplingParams = SamplingParams(),
        *,
        conversations: Sequence[list[dict[str, str]]] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        if any(not prompt for prompt in prompts):
            raise ValueError("every prompt needs at least one token")
        answers: list[Generation | BaseException | None] = [None] * len(prompts)

        def answer(i: int) -> Callable[[Generation | BaseException], None]:
            return lambda result: answers.__setitem__(i, result)

        limits, row_seeds = per_prompt(max_new_tokens, len(prompts)), prompt_seeds(seeds, len(prompts))
        requests = [Request(list(p), limits[i], answer(i), row_seeds[i]) for i, p in enumerate(prompts)]
        batch = DecodeBatch(self, sampling)
        with self._sampling_mode():
            self.prefix_cache.check_weights(self.model)
            batch.admit(requests)
            while batch.rows:
                batch.step()
        return answers  # type: ignore[return-value]  # every request was answered with a Generation

    def serve(
        self,
        inbox: queue.Queue[Request | None],
        sampling: SamplingParams = SamplingParams(),
        *,
        batch_sizes: list[int] | None = None,
    ) -> None:
        batch = DecodeBatch(self, sampling, batch_sizes=batch_sizes)
        closing = False  # once None has arrived: end when the rows being decoded are done
        with self._sampling_mode():
            while True:
                arrived = [inbox.get()] if not batch.rows else []
                with contextlib.suppress(queue.Empty):
                    while True:
                        arrived.append(inbox.get_nowait())
                closing = closing or None in arrived
                new = [r for r in arrived if r is not None]
                try:
                    if new:
                        self.prefix_cache.check_weights(self.model)
                        batch.admit(new)
                    if batch.rows:
                        batch.step()
                except Exception as err:  # noqa: BLE001 - every waiting episode gets the error
                    for request in new:
                        request.settle(err)
                    batch.fail(err)
                if closing and not batch.rows:
                    return

    def prefill_inputs(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache]:
        """Input ids, attention mask, position ids and batch cache for prefilling ``prompts``: per row
        ``[pad][cached prefix][pad][new tokens]``, the cached prefixes taken from the prefix cache."""
        hits = [self.prefix_cache.lookup(prompt) for prompt in prompts]
        past = max(n for n, _ in hits)
        news = [prompt[n:] for prompt, (n, _) in zip(prompts, hits, strict=True)]
        width = max(len(new) for new in news)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), past + width), dtype=torch.long)
        positions = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ((n, _), new) in enumerate(zip(hits, news, strict=True)):
            ids[row, width - len(new) :] = torch.tensor(new, dtype=torch.long)
            mask[row, past - n : past] = 1
            mask[row, past + width - len(new) :] = 1
            positions[row, width - len(new) :] = torch.arange(n, n + len(new))
        cache = _batch_cache(hits, past) if past else new_cache()
        return ids.to(self.device), mask.to(self.device), positions.to(self.device), cache


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside (unchanged for None), restored on exit."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _batch_cache(hits: list[tuple[int, list[LayerKV] | None]], past: int) -> DynamicCache:
    """A batch cache of ``past`` positions holding each row's cached prefix right-aligned (zeros before it)."""
    template = [(keys[None], values[None]) for keys, values in next(kv for _, kv in hits if kv is not None)]
    rooms = new_rooms(template, len(hits), past)
    for layer, (batch_keys, batch_values) in enumerate(rooms):
        for row, (n, kv) in enumerate(hits):
            batch_keys[row, :, : past - n], batch_values[row, :, : past - n] = 0, 0
            if kv is not None:
                batch_keys[row, :, past - n : past], batch_values[row, :, past - n : past] = kv[layer]
    return cache_in_rooms(rooms, past)
