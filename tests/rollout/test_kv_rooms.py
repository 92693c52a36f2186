"""The decode batch's cache re-packing (rows leaving, rows joining) written straight into growable rooms."""

import torch

from echo_rl.rollout.policy.kvcache import cache_from, gathered, layers, row_kv, stacked


def _cache(rows: int, length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    kv = [(torch.randn(rows, 2, length, 4, generator=g), torch.randn(rows, 2, length, 4, generator=g)) for _ in range(3)]
    return cache_from(kv), kv


def _append_one(cache, rows: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    step = [(torch.randn(rows, 2, 1, 4, generator=g), torch.randn(rows, 2, 1, 4, generator=g)) for _ in range(3)]
    for layer, (keys, values) in enumerate(step):
        cache.update(keys, values, layer)
    return step


def test_gathered_rows_equal_indexing_and_then_grow_in_place():
    cache, kv = _cache(5, 9, 0)
    index = torch.tensor([0, 2, 4])
    out = gathered(cache, index, 3)
    for (keys, values), (want_k, want_v) in zip(layers(out), kv):
        assert torch.equal(keys, want_k[index, :, 3:]) and torch.equal(values, want_v[index, :, 3:])
    step = _append_one(out, 3, 1)
    for (keys, values), (want_k, want_v), (new_k, new_v) in zip(layers(out), kv, step):
        assert torch.equal(keys, torch.cat([want_k[index, :, 3:], new_k], 2))
        assert torch.equal(values, torch.cat([want_v[index, :, 3:], new_v], 2))


def test_stacked_caches_are_right_aligned_with_zeros_before_and_the_leading_columns_cut():
    (old, old_kv), (new, new_kv) = _cache(2, 7, 2), _cache(3, 4, 3)
    out = stacked([old, new], width=7, start=1)
    for (keys, _), (old_k, _), (new_k, _) in zip(layers(out), old_kv, new_kv):
        assert keys.shape == (5, 2, 6, 4)
        assert torch.equal(keys[:2], old_k[:, :, 1:])
        assert torch.equal(keys[2:, :, :2], torch.zeros(3, 2, 2, 4))  # the newcomers' left padding: zeros
        assert torch.equal(keys[2:, :, 2:], new_k)
    step = _append_one(out, 5, 4)
    assert torch.equal(layers(out)[0][0][:, :, -1:], step[0][0]) and layers(out)[0][0].shape[2] == 7


def test_row_kv_copies_one_rows_unpadded_positions_around_a_gap():
    cache, kv = _cache(3, 8, 5)
    mask = torch.tensor([0, 1, 1, 0, 0, 1, 1, 1])  # [pad][cached prefix][pad][new tokens], as a prefill lays out
    out = row_kv(cache, 1, mask)
    for (keys, values), (want_k, want_v) in zip(out, kv):
        assert torch.equal(keys, want_k[1][:, [1, 2, 5, 6, 7]]) and torch.equal(values, want_v[1][:, [1, 2, 5, 6, 7]])
    before = out[0][0].clone()
    for keys, values in layers(cache):
        keys.zero_(), values.zero_()
    assert torch.equal(out[0][0], before)  # a copy: the batch cache's rooms are reused after the row leaves
