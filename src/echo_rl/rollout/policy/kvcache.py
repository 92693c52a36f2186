"""Reuse the KV cache of an episode's previous turn (the transformers backend's prefix cache).

An episode's next prompt is its previous prompt + the sampled tokens + one observation, so the keys and
values computed for the previous call are still valid for all but the new tokens. :class:`PrefixCache`
keeps them per finished sequence (without batch padding) and finds them again by token prefix; only the
new tokens are prefilled. Entries are evicted least-recently-used past ``max_bytes``, and all of them are
dropped as soon as the model's weights change (their in-place version counters moved, as after an
optimizer step or ``load_state_dict``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

LayerKV = tuple[torch.Tensor, torch.Tensor]  # keys, values: [(batch,) kv_heads, length, head_dim]


def layers(cache: DynamicCache) -> list[LayerKV]:
    """(keys, values) of every layer of ``cache``, each [B, kv_heads, T, head_dim]."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def cache_from(kv: list[LayerKV]) -> DynamicCache:
    """A ``DynamicCache`` holding ``kv`` (batched [B, kv_heads, T, head_dim] tensors per layer)."""
    cache = DynamicCache()
    for layer, (keys, values) in enumerate(kv):
        cache.update(keys, values, layer)
    return cache


def row_kv(cache: DynamicCache, row: int, mask: torch.Tensor) -> list[LayerKV]:
    """One row's keys and values at its unpadded positions (``mask`` [T] of 0/1)."""
    keep = mask.bool()
    return [(keys[row][:, keep].clone(), values[row][:, keep].clone()) for keys, values in layers(cache)]


@dataclass
class _Entry:
    ids: list[int]
    kv: list[LayerKV]
    nbytes: int


class PrefixCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], _Entry] = OrderedDict()  # (length, hash) -> entry
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
            self._bytes = 0
            self._weights = version

    def lookup(self, prompt: Sequence[int]) -> tuple[int, list[LayerKV] | None]:
        """The longest cached sequence that is a proper prefix of ``prompt``: (its length, its KV)."""
        for length in sorted({key[0] for key in self._entries if key[0] < len(prompt)}, reverse=True):
            head = list(prompt[:length])
            key = (length, hash(tuple(head)))
            entry = self._entries.get(key)
            if entry is not None and entry.ids == head:
                self._entries.move_to_end(key)
                return length, entry.kv
        return 0, None

    def store(self, ids: list[int], kv: list[LayerKV]) -> None:
        """Keep ``kv`` (computed for exactly ``ids``), evicting the least recently used entries."""
        nbytes = sum(t.numel() * t.element_size() for pair in kv for t in pair)
        if not ids or nbytes > self.max_bytes:
            return
        key = (len(ids), hash(tuple(ids)))
        old = self._entries.pop(key, None)
        self._bytes += nbytes - (old.nbytes if old else 0)
        self._entries[key] = _Entry(list(ids), kv, nbytes)
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.nbytes
