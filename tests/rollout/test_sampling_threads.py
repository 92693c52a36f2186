"""``policy.sampling_threads``: the transformers sampler runs its forward passes with that many torch
intra-op threads, restores the process's setting afterwards, and samples the same tokens as with the
process's threads (issue 20.2)."""

import queue
import threading

import pytest
import torch

from echo_rl.config import RunConfig
from echo_rl.models.tiny import build_tiny_qwen3
from echo_rl.rollout.policy.base import Request, SamplingParams
from echo_rl.rollout.policy.hf import TransformersPolicy, intra_op_threads
from echo_rl.train.policy_sync import make_policy


SAMPLING = SamplingParams(temperature=0.8)


@pytest.fixture(scope="module")
def model(chat):
    return build_tiny_qwen3(
        chat.tokenizer, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
    )


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def threads_seen(model):
    """The intra-op thread counts of every forward pass of ``model`` (appended to the returned list)."""
    seen: list[int] = []
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    return seen


def prompts(chat):
    ids = chat.prompt("Find the key file and write its code to answer.txt.").ids
    return [ids, ids[:-7], ids[:40], ids[:-3]]


def test_intra_op_threads_sets_and_restores(two_threads):
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), intra_op_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == 2
    with intra_op_threads(None):
        assert torch.get_num_threads() == 2


def test_generate_samples_on_one_thread_with_the_same_tokens(chat, two_threads):
    model = build_tiny_qwen3(chat.tokenizer, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                             intermediate_size=128)
    seen = threads_seen(model)
    pad = chat.tokenizer.pad_token_id
    batch, seeds = prompts(chat), [11, 12, 13, 14]
    plain = TransformersPolicy(model, pad_token_id=pad).generate(batch, 16, SAMPLING, seeds=seeds)
    assert set(seen) == {2}
    seen.clear()
    one = TransformersPolicy(model, pad_token_id=pad, threads=1).generate(batch, 16, SAMPLING, seeds=seeds)
    assert set(seen) == {1} and torch.get_num_threads() == 2
    assert [g.token_ids for g in one] == [g.token_ids for g in plain]
    for a, b in zip(one, plain, strict=True):
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)


def test_serve_samples_on_one_thread(chat, two_threads):
    model = build_tiny_qwen3(chat.tokenizer, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                             intermediate_size=128)
    seen = threads_seen(model)
    policy = TransformersPolicy(model, pad_token_id=chat.tokenizer.pad_token_id, threads=1)
    inbox: queue.Queue[Request | None] = queue.Queue()
    answers: list[object] = []
    for prompt in prompts(chat):
        inbox.put(Request(prompt, 8, answers.append, seed=3))
    inbox.put(None)
    worker = threading.Thread(target=policy.serve, args=(inbox, SAMPLING))
    worker.start()
    worker.join(60)
    assert not worker.is_alive()  # the None that arrived with the prompts ends it once they are answered
    assert len(answers) == 4 and all(len(a.token_ids) == 8 for a in answers)
    assert set(seen) == {1}
    assert torch.get_num_threads() == 2  # this thread's setting is untouched


def test_the_trainer_policy_takes_sampling_threads(model, chat, two_threads):
    cfg = RunConfig.model_validate({"policy": {"threads": 2, "sampling_threads": 1}})
    policy = make_policy(cfg, model, chat.tokenizer, training=True)
    assert policy.threads == 1
    default = make_policy(RunConfig(), model, chat.tokenizer, training=True)
    assert default.threads is None
