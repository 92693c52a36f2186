"""The transformers backend's prefix cache: longest-common-prefix lookups, extensions replacing what they
extend, eviction, weight changes; and prompts admitted together prefilling their shared start once."""

import torch

from echo_rl.rollout.policy.kvcache import BLOCK, PrefixCache, shared_prefixes
from echo_rl.sequences import common_prefix


def kv_of(ids, heads=2, dim=4):
    """Fake per-layer keys/values whose every position records its token id (2 layers)."""
    column = torch.tensor(ids, dtype=torch.float32)[None, :, None].expand(heads, len(ids), dim).clone()
    return [(column, column + 0.5), (column * 2, column * 2 + 0.5)]


def test_common_prefix_is_exact():
    assert common_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_prefix([], [1]) == 0 and common_prefix([5], [6]) == 0
    assert common_prefix("<tool_call>a", "<tool_call>b") == len("<tool_call>")  # text too (the harness)
    a = list(range(1000))
    for cut in (0, 1, 511, 999):
        b = [*a[:cut], -1, *a[cut + 1 :]]
        assert common_prefix(a, b) == cut


def test_lookup_returns_the_longest_common_prefix_with_any_kept_sequence():
    cache = PrefixCache(1 << 20)
    system = list(range(100, 100 + 3 * BLOCK + 5))  # a shared start that ends mid-block
    first, second = [*system, *range(1, 30)], [*system, *range(500, 540)]
    cache.store(first, kv_of(first))
    cache.store(second, kv_of(second))
    # another task's prompt shares only the system part; the KV returned is that of exactly those tokens
    length, kv = cache.lookup([*system, 7, 7, 7])
    assert length == len(system)
    assert torch.equal(kv[0][0][0, :, 0], torch.tensor(system, dtype=torch.float32))
    assert kv[1][1].shape == (2, len(system), 4)
    # a continuation of `second` (its next turn) gets all of `second`; an identical prompt all but its last token
    assert cache.lookup([*second, 1, 2])[0] == len(second)
    assert cache.lookup(first)[0] == len(first) - 1
    # fewer than one shared block: no hit
    assert cache.lookup([100, 101, 102, 9, 9])[0] == 0 and cache.lookup(system[:BLOCK])[0] == 0


def test_a_sequence_that_extends_a_kept_one_replaces_it():
    cache = PrefixCache(1 << 20)
    prompt = list(range(2 * BLOCK + 3))
    cache.store(prompt, kv_of(prompt))
    turn = [*prompt, 40, 41, 42]
    cache.store(turn, kv_of(turn))
    assert len(cache) == 1
    assert cache.lookup([*prompt, 9])[0] == len(prompt)  # still served, from the longer sequence
    other = [*prompt[:BLOCK], 77, *range(20)]  # shares a block but is no extension: both kept
    cache.store(other, kv_of(other))
    assert len(cache) == 2
    assert cache.lookup([*turn, 1])[0] == len(turn) and cache.lookup([*other, 1])[0] == len(other)


def test_least_recently_used_sequences_are_evicted_past_the_budget():
    one = sum(t.numel() * t.element_size() for pair in kv_of(range(BLOCK * 2)) for t in pair)
    cache = PrefixCache(2 * one)
    a, b, c = ([k * 1000 + i for i in range(BLOCK * 2)] for k in range(3))
    cache.store(a, kv_of(a))
    cache.store(b, kv_of(b))
    assert cache.lookup([*a, 0])[0] == len(a)  # a is now the most recently used
    cache.store(c, kv_of(c))
    assert len(cache) == 2 and cache.lookup([*b, 0])[0] == 0 and cache.lookup([*a, 0])[0] == len(a)


def test_weight_changes_drop_everything():
    model = torch.nn.Linear(2, 2)
    cache = PrefixCache(1 << 20)
    cache.check_weights(model)
    ids = list(range(BLOCK * 2))
    cache.store(ids, kv_of(ids))
    cache.check_weights(model)
    assert len(cache) == 1
    with torch.no_grad():
        model.weight.add_(1.0)
    cache.check_weights(model)
    assert len(cache) == 0 and cache.lookup([*ids, 1])[0] == 0


def test_shared_prefixes_picks_what_several_prompts_start_with():
    system = list(range(1000, 1000 + 2 * BLOCK))
    task_a, task_b = [*system, *range(1, 40)], [*system, *range(50, 90)]
    group = [task_a, task_a, task_a, task_b, task_b]
    # where the prompts part ways, shortest first: the system prompt, then each group's prompt (all but its
    # last token, which every episode still feeds); nothing twice
    assert shared_prefixes(group, [0] * 5) == [system, task_a[:-1], task_b[:-1]]
    # a prompt alone, or prompts whose shared start is already cached, need nothing
    assert shared_prefixes([task_a], [0]) == []
    assert shared_prefixes([task_a, task_b], [len(system)] * 2) == []
    assert shared_prefixes([task_a, task_a], [len(task_a) - 5] * 2) == []
