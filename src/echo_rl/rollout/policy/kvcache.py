"""Reuse keys and values already computed for a prompt's leading tokens (the transformers backend's prefix cache).

The keys and values at position i depend only on tokens 0..i, so any sequence computed earlier that shares
a prompt's first k tokens holds valid keys and values for those k positions. Two kinds of sharing follow:

- across turns: an episode's next prompt is its previous prompt + the sampled tokens + one observation;
- across episodes: a GRPO group's episodes start from the same prompt, and every task from the same system
  prompt and chat-template header.

:class:`PrefixCache` keeps the keys and values of finished and prefilled sequences (without batch padding)
and, for a new prompt, returns those of its longest common prefix with any kept sequence (at most all but
its last token, so that at least one token is fed). Sequences are indexed by a chain hash of their
:data:`BLOCK`-token blocks, as vLLM's prefix caching does, so a lookup is one dictionary probe per block.
A sequence that extends a kept one replaces it (the longer serves every lookup the shorter did); entries
are evicted least-recently-used past ``max_bytes``, and all are dropped as soon as the model's weights
change (their in-place version counters moved, as after an optimizer step or ``load_state_dict``).
:func:`shared_prefixes` picks, among prompts admitted together, the prefixes worth computing once for all.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from echo_rl.sequences import common_prefix

try:
    from transformers.cache_utils import DynamicLayer
except ImportError:  # transformers < 4.56 keeps lists of tensors, concatenated each step
    DynamicLayer = None  # type: ignore[assignment,misc]

LayerKV = tuple[torch.Tensor, torch.Tensor]  # keys, values: [(batch,) kv_heads, length, head_dim]


if DynamicLayer is not None:

    class _GrowingLayer(DynamicLayer):
        """A cache layer that writes new positions into spare room instead of concatenating: a decode step
        then copies one position per row, not the whole cache (``DynamicLayer`` re-allocates [B, H, T, D]
        every step; ~18% of a 32-row decode step of the tiny model). ``keys``/``values`` are views of the
        first T positions of the room; the room grows by half when full, and is re-made when something
        else (a crop, a row selection) replaced ``keys``."""

        _key_room: torch.Tensor | None = None
        _value_room: torch.Tensor | None = None

        @classmethod
        def in_room(cls, key_room: torch.Tensor, value_room: torch.Tensor, length: int) -> _GrowingLayer:
            """A layer holding the first ``length`` positions of the rooms (no copy), growing into the rest."""
            layer = cls()
            layer._key_room, layer._value_room = key_room, value_room
            layer.keys, layer.values = key_room[:, :, :length], value_room[:, :, :length]
            layer.device, layer.dtype, layer.is_initialized = key_room.device, key_room.dtype, True
            return layer

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
        ) -> tuple[torch.Tensor, torch.Tensor]:
            held = self.keys if getattr(self, "keys", None) is not None and self.keys.numel() else None
            length = 0 if held is None else held.shape[-2]
            total = length + key_states.shape[-2]
            room = self._key_room
            if (
                room is None
                or held is None
                or held.data_ptr() != room.data_ptr()
                or held.shape[0] != room.shape[0]
                or room.shape[-2] < total
            ):
                shape = (*key_states.shape[:2], room_length(total), key_states.shape[-1])
                self._key_room, self._value_room = key_states.new_empty(shape), value_states.new_empty(shape)
                if held is not None:
                    self._key_room[:, :, :length] = held
                    self._value_room[:, :, :length] = self.values
            assert self._key_room is not None and self._value_room is not None
            self._key_room[:, :, length:total] = key_states
            self._value_room[:, :, length:total] = value_states
            self.keys, self.values = self._key_room[:, :, :total], self._value_room[:, :, :total]
            self.device, self.dtype, self.is_initialized = key_states.device, key_states.dtype, True
            return self.keys, self.values


def room_length(length: int) -> int:
    """Positions to allocate for a cache layer of ``length`` positions: half as many again, at least 64 spare."""
    return length + max(64, length // 2)


def layers(cache: DynamicCache) -> list[LayerKV]:
    """(keys, values) of every layer of ``cache``, each [B, kv_heads, T, head_dim]."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def new_cache() -> DynamicCache:
    """An empty ``DynamicCache`` whose layers append in place (:class:`_GrowingLayer`) where transformers has
    cache layers (>= 4.56); a plain one otherwise."""
    cache = DynamicCache()
    if DynamicLayer is not None and hasattr(cache, "layer_class_to_replicate"):
        cache.layer_class_to_replicate = _GrowingLayer
    return cache


def cache_from(kv: list[LayerKV]) -> DynamicCache:
    """A cache (:func:`new_cache`) holding ``kv`` (batched [B, kv_heads, T, head_dim] tensors per layer)."""
    cache = new_cache()
    for layer, (keys, values) in enumerate(kv):
        cache.update(keys, values, layer)
    return cache


def new_rooms(template: list[LayerKV], rows: int, length: int) -> list[LayerKV]:
    """Uninitialised (keys, values) per layer, [rows, kv_heads, room_length(length), head_dim] with the
    dtype and device of ``template``'s layers: fill the first ``length`` positions, then
    :func:`cache_in_rooms`."""
    shape = lambda t: (rows, t.shape[1], room_length(length), t.shape[3])  # noqa: E731
    return [(keys.new_empty(shape(keys)), values.new_empty(shape(values))) for keys, values in template]


def cache_in_rooms(rooms: list[LayerKV], length: int) -> DynamicCache:
    """A cache whose layer l holds the first ``length`` positions of ``rooms[l]`` (:func:`new_rooms`, filled)
    and appends the next positions into the rest in place — built without copying (a copy where
    transformers has no cache layers)."""
    if DynamicLayer is None:
        return cache_from([(keys[:, :, :length], values[:, :, :length]) for keys, values in rooms])
    cache = new_cache()
    cache.layers.extend(_GrowingLayer.in_room(keys, values, length) for keys, values in rooms)
    return cache


def gathered(cache: DynamicCache, index: torch.Tensor, start: int) -> DynamicCache:
    """The rows ``index`` of ``cache`` from position ``start`` on, gathered straight into new rooms (one copy)."""
    kv = layers(cache)
    length = kv[0][0].shape[2] - start
    rooms = new_rooms(kv, len(index), length)
    for (keys, values), (key_room, value_room) in zip(kv, rooms, strict=True):
        torch.index_select(keys[:, :, start:], 0, index, out=key_room[:, :, :length])
        torch.index_select(values[:, :, start:], 0, index, out=value_room[:, :, :length])
    return cache_in_rooms(rooms, length)


def stacked(caches: list[DynamicCache], width: int, start: int) -> DynamicCache:
    """The rows of ``caches`` one after another, each cache's positions right-aligned in ``width`` (zeros on
    the left, where its rows are masked), from position ``start`` on: one copy into new rooms."""
    parts = [layers(cache) for cache in caches]
    length = width - start
    rooms = new_rooms(parts[0], sum(kv[0][0].shape[0] for kv in parts), length)
    row = 0
    for kv in parts:
        rows, held = kv[0][0].shape[0], kv[0][0].shape[2]
        left = width - held - start  # zero columns before this cache's positions (negative: some are cut)
        for (keys, values), room in zip(kv, rooms, strict=True):
            for source, target in zip((keys, values), room, strict=True):
                target[row : row + rows, :, : max(left, 0)] = 0
                target[row : row + rows, :, max(left, 0) : length] = source[:, :, max(-left, 0) :]
        row += rows
    return cache_in_rooms(rooms, length)


def row_kv(cache: DynamicCache, row: int, mask: torch.Tensor) -> list[LayerKV]:
    """One row's keys and values at its unpadded positions (``mask`` [T] of 0/1), copied: the positions are
    found once for every layer (boolean indexing would search the mask again for each tensor)."""
    keep = mask.nonzero()[:, 0]
    return [(keys[row].index_select(1, keep), values[row].index_select(1, keep)) for keys, values in layers(cache)]


BLOCK = 16  # tokens per indexed block; shorter matches are not worth a lookup
Key = tuple[int, int]  # (length, hash of the ids)


@dataclass
class _Entry:
    ids: list[int]
    kv: list[LayerKV]
    nbytes: int
    blocks: list[int]  # chain hash after each full block


def _block_hashes(ids: Sequence[int], limit: int) -> Iterator[int]:
    """Chain hash h_j = hash(h_{j-1}, ids[(j-1)·BLOCK : j·BLOCK]) for every full block within ``ids[:limit]``."""
    chain = 0
    for end in range(BLOCK, min(limit, len(ids)) + 1, BLOCK):
        chain = hash((chain, tuple(ids[end - BLOCK : end])))
        yield chain


class PrefixCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()  # least recently used first
        self._by_block: dict[int, dict[Key, None]] = {}  # chain hash -> keys of the entries holding that block
        self._bytes = 0
        self._weights: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def check_weights(self, model: torch.nn.Module) -> None:
        """Drop every entry when ``model``'s parameters changed since the last call."""
        params = list(model.parameters())
        version = tuple(p._version for p in params) + (params[0].data_ptr(),)
        if version != self._weights:
            self._entries.clear()
            self._by_block.clear()
            self._bytes = 0
            self._weights = version

    def lookup(self, prompt: Sequence[int]) -> tuple[int, list[LayerKV] | None]:
        """(k, keys and values of ``prompt[:k]``) for the longest common prefix k < len(prompt) of ``prompt``
        with a kept sequence; (0, None) when none shares a full block."""
        head = list(prompt)[: len(prompt) - 1]
        holders: dict[Key, None] = {}
        for chain in _block_hashes(head, len(head)):
            deeper = self._by_block.get(chain)
            if not deeper:
                break
            holders = deeper
        # every holder shares the matched blocks; the one that goes on matching longest wins (exact lengths,
        # whatever the hashes said)
        length, best = max(((common_prefix(self._entries[key].ids, head), key) for key in holders), default=(0, None))
        if not length or best is None:
            return 0, None
        self._entries.move_to_end(best)
        return length, [(keys[:, :length], values[:, :length]) for keys, values in self._entries[best].kv]

    def store(self, ids: list[int], kv: list[LayerKV]) -> None:
        """Keep ``kv`` (computed for exactly ``ids``); kept sequences that ``ids`` extends are dropped, then
        the least recently used ones while over budget."""
        nbytes = sum(t.numel() * t.element_size() for pair in kv for t in pair)
        if len(ids) < BLOCK or nbytes > self.max_bytes:
            return
        key = (len(ids), hash(tuple(ids)))
        blocks = list(_block_hashes(ids, len(ids)))
        extended = {k for chain in blocks for k in self._by_block.get(chain, ())}
        for old in extended:
            held = self._entries[old].ids
            if len(held) <= len(ids) and ids[: len(held)] == held:
                self._remove(old)
        self._entries[key] = _Entry(list(ids), kv, nbytes, blocks)
        self._bytes += nbytes
        for chain in blocks:
            self._by_block.setdefault(chain, {})[key] = None
        while self._bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))

    def _remove(self, key: Key) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.nbytes
        for chain in entry.blocks:
            holders = self._by_block[chain]
            holders.pop(key, None)
            if not holders:
                del self._by_block[chain]


def shared_prefixes(prompts: Sequence[list[int]], cached: Sequence[int]) -> list[list[int]]:
    """The prefixes worth prefilling once before ``prompts`` (admitted together; the cache holds
    ``cached[i]`` of prompt i's tokens): every point where prompts part ways — in sorted order, the common
    prefix of neighbours, which covers every pair — at most all but the last token of either (it still
    has one to feed), when that is at least :data:`BLOCK` tokens more than the cache holds. Distinct,
    shortest first: the system prompt before a group's prompt."""
    order = sorted(range(len(prompts)), key=prompts.__getitem__)
    picked: dict[tuple[int, ...], None] = {}
    for a, b in itertools.pairwise(order):
        length = min(common_prefix(prompts[a], prompts[b]), len(prompts[a]) - 1, len(prompts[b]) - 1)
        if length - max(cached[a], cached[b]) >= BLOCK:
            picked[tuple(prompts[a][:length])] = None
    return [list(prefix) for prefix in sorted(picked, key=len)]
