"""Policy backends: the transformers sampler's log-probs, batching, stops and seeds (issue 10.4); the
OpenAI-compatible HTTP backend against a local server; the vLLM import guard."""

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from echo_rl.models.tiny import build_tiny_qwen3
from echo_rl.rollout.policy.base import Request, SamplingParams
from echo_rl.rollout.policy.decode import truncate
from echo_rl.rollout.policy.hf import TransformersPolicy
from echo_rl.rollout.policy.openai import EndpointError, OpenAIPolicy

GREEDY = SamplingParams(temperature=0)


@pytest.fixture(scope="module")
def model(chat):
    return build_tiny_qwen3(
        chat.tokenizer, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
    )


def policy(model, chat, seed=0):
    return TransformersPolicy(model, pad_token_id=chat.tokenizer.pad_token_id, seed=seed)


def prompts(chat):
    ids = chat.prompt("Find the key file and write its code to answer.txt.").ids
    return [ids, ids[:-7], ids[:40]]


def trainer_logprobs(model, prompt, tokens, temperature):
    """What the trainer computes: one plain float32 forward, log softmax(logits / T) of each token."""
    logits = model(input_ids=torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1].float()
    return (logits / temperature).log_softmax(-1).gather(-1, torch.tensor(tokens)[:, None])[:, 0]


@pytest.mark.parametrize(("temperature", "top_p", "top_k"), [(0.8, 1.0, 0), (0.8, 0.9, 20), (1.0, 0.5, 0)])
def test_recorded_logprobs_match_a_plain_forward(model, chat, temperature, top_p, top_k):
    batch = prompts(chat)
    generations = policy(model, chat).generate(batch, [12, 20, 16], SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k))
    for prompt, generation, limit in zip(batch, generations, [12, 20, 16], strict=True):
        assert len(generation.token_ids) == limit and generation.finish_reason == "length"
        reference = trainer_logprobs(model, prompt, generation.token_ids, temperature)
        assert (reference - torch.tensor(generation.logprobs)).abs().max().item() < 1e-4


def test_greedy_batched_equals_one_at_a_time_and_records_t1_logprobs(model, chat):
    batch = prompts(chat)
    together = policy(model, chat).generate(batch, 10, GREEDY)
    for prompt, generation in zip(batch, together, strict=True):
        (alone,) = policy(model, chat).generate([prompt], 10, GREEDY)
        assert alone.token_ids == generation.token_ids
        reference = trainer_logprobs(model, prompt, generation.token_ids, 1.0)
        assert (reference - torch.tensor(generation.logprobs)).abs().max().item() < 1e-4


def test_stop_tokens_end_a_row_and_stay_in_it(model, chat):
    batch = prompts(chat)
    greedy = policy(model, chat).generate(batch, 6, GREEDY)
    stop = greedy[1].token_ids[2]
    generations = policy(model, chat).generate(batch, [6, 6, 0], SamplingParams(temperature=0, stop_token_ids={stop}))
    for greedy_row, row in zip(greedy[:2], generations[:2], strict=True):
        ids = greedy_row.token_ids
        cut = ids.index(stop) + 1 if stop in ids else len(ids)
        assert row.token_ids == ids[:cut]
        assert row.finish_reason == ("stop" if stop in ids else "length")
    assert generations[1].finish_reason == "stop"
    assert (generations[2].token_ids, generations[2].finish_reason) == ([], "length")


def test_same_seed_same_samples(model, chat):
    batch = prompts(chat)
    a = policy(model, chat, seed=3).generate(batch, 8, SamplingParams(temperature=1.0))
    b = policy(model, chat, seed=3).generate(batch, 8, SamplingParams(temperature=1.0))
    c = policy(model, chat, seed=4).generate(batch, 8, SamplingParams(temperature=1.0))
    assert a == b and a != c


def test_a_seeded_prompt_samples_the_same_tokens_whatever_shares_its_batch(model, chat):
    batch = prompts(chat)
    alone = [policy(model, chat, seed=0).generate([p], 12, SamplingParams(temperature=1.0), seeds=[100 + i])[0]
             for i, p in enumerate(batch)]
    together = policy(model, chat, seed=9).generate(batch, 12, SamplingParams(temperature=1.0), seeds=[100, 101, 102])
    reversed_ = policy(model, chat, seed=5).generate(batch[::-1], 12, SamplingParams(temperature=1.0), seeds=[102, 101, 100])[::-1]
    assert [g.token_ids for g in alone] == [g.token_ids for g in together] == [g.token_ids for g in reversed_]
    for a, b in zip(alone, together, strict=True):
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
    other = policy(model, chat).generate(batch, 12, SamplingParams(temperature=1.0), seeds=[200, 201, 202])
    assert [g.token_ids for g in other] != [g.token_ids for g in together]
    mixed = policy(model, chat, seed=1).generate(batch, 12, SamplingParams(temperature=1.0), seeds=[100, None, 102])
    assert mixed[0].token_ids == together[0].token_ids and mixed[2].token_ids == together[2].token_ids


def test_seeded_sampling_follows_the_distribution():
    """Inverse-CDF draws from per-row streams have the sampled distribution (chi-square-free check: 4,000
    draws of a 4-token distribution land within 0.03 of each probability)."""
    from echo_rl.rollout.policy.decode import DecodeBatch, _Row

    class Stub:
        device = torch.device("cpu")
        generator = torch.Generator().manual_seed(0)

    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    batch = DecodeBatch(Stub(), SamplingParams())  # type: ignore[arg-type]
    rows = [_Row(Request([1], 1, lambda _: None, seed)) for seed in range(4000)]
    tokens, logprobs = batch._sample(probs.log().expand(len(rows), 4), rows)
    freq = torch.bincount(tokens, minlength=4).double() / len(rows)
    assert torch.allclose(freq, probs.double(), atol=0.03), freq
    assert torch.allclose(logprobs, probs.log()[tokens])


def test_truncation_keeps_top_k_and_the_top_p_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(truncate(logits, 1.0, 2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(truncate(logits, 0.75, 0)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(truncate(logits, 0.8, 0)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(truncate(logits, 0.81, 0)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(truncate(logits, 0.1, 0)).tolist() == [[True, False, False, False]]


class _Server:
    """A local OpenAI-compatible server: answers ``reply`` and records the request bodies."""

    def __init__(self, reply: dict | None, status: int = 200):
        requests = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                requests.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                body = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_openai_chat_backend(chat):
    server = _Server({"choices": [{"message": {"content": "<command>ls</command>"}, "finish_reason": "stop"}]})
    try:
        backend = OpenAIPolicy(server.url, "served", chat.tokenizer, api="chat")
        conversation = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
            {"role": "tool", "content": "o"},
        ]
        (generation,) = backend.generate([[1, 2]], 64, SamplingParams(temperature=0.6, top_k=5), conversations=[conversation])
        backend.close()
    finally:
        server.close()
    assert generation.token_ids == chat.tokenizer.encode("<command>ls</command>", add_special_tokens=False)
    assert (generation.logprobs, generation.finish_reason) == (None, "stop")
    path, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "served" and body["max_tokens"] == 64 and body["temperature"] == 0.6 and body["top_k"] == 5
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]


def test_openai_completions_backend_sends_the_prompt_text(chat):
    server = _Server({"choices": [{"text": "ls", "finish_reason": "length"}]})
    try:
        backend = OpenAIPolicy(server.url, "served", chat.tokenizer, api="completions")
        prompt = chat.prompt("task").ids
        (generation,) = backend.generate([prompt], 2, SamplingParams(stop_token_ids={chat.eot_id}))
    finally:
        server.close()
    _, body = server.requests[0]
    assert body["prompt"] == chat.decode(prompt) and body["stop"] == ["<|im_end|>"]
    assert generation.finish_reason == "length"


def test_openai_backend_failures_are_endpoint_errors(chat):
    server = _Server({"error": "overloaded"}, status=503)
    try:
        backend = OpenAIPolicy(server.url, "served", chat.tokenizer, api="completions")
        with pytest.raises(EndpointError, match="503"):
            backend.generate([[1]], 4)
    finally:
        server.close()


def test_vllm_backend_is_import_guarded():
    try:
        import vllm  # noqa: F401
    except ImportError:
        from echo_rl.config import RunConfig
        from echo_rl.errors import UserError
        from echo_rl.rollout.policy.vllm import VLLMPolicy

        with pytest.raises(UserError, match="needs vLLM"):
            VLLMPolicy("/nonexistent", RunConfig())
    else:
        pytest.skip("vLLM is installed")


def test_which_backends_record_exact_logprobs_for_a_sampling(model, chat):
    """vLLM's processed log-probs are the trainer's distribution unless the sampling truncates; a server's
    are none; the transformers backend's always are."""
    from echo_rl.rollout.policy.vllm import VLLMPolicy

    engine = object.__new__(VLLMPolicy)  # the rule alone: the engine itself needs a GPU
    assert engine.exact_logprobs(SamplingParams(temperature=0.8))
    assert not engine.exact_logprobs(SamplingParams(top_p=0.9)) and not engine.exact_logprobs(SamplingParams(top_k=5))
    server = OpenAIPolicy("http://127.0.0.1:9/v1", "m", chat.tokenizer)
    assert not server.exact_logprobs(SamplingParams())
    server.close()
    assert policy(model, chat).exact_logprobs(SamplingParams(top_p=0.5))


def test_next_turn_reuses_the_kv_cache_with_the_same_results(model, chat):
    cached, uncached = (
        policy(model, chat),
        TransformersPolicy(model, pad_token_id=chat.tokenizer.pad_token_id, prefix_cache_mb=0),
    )
    first = prompts(chat)
    turn1 = cached.generate(first, [5, 9, 7], GREEDY)
    observation = chat.tokenizer.encode("\n(exit_code=0)\n", add_special_tokens=False)
    second = [p + g.token_ids + observation for p, g in zip(first, turn1, strict=True)]
    assert [cached.prefix_cache.lookup(p)[0] for p in second] == [
        len(p) + len(g.token_ids) - 1 for p, g in zip(first, turn1, strict=True)
    ]
    turn2 = cached.generate(second, 8, SamplingParams(temperature=0.8))
    for prompt, generation in zip(second, turn2, strict=True):
        reference = trainer_logprobs(model, prompt, generation.token_ids, 0.8)
        assert (reference - torch.tensor(generation.logprobs)).abs().max().item() < 1e-4
    greedy = cached.generate([p + g.token_ids for p, g in zip(second, turn2, strict=True)], 6, GREEDY)
    plain = uncached.generate([p + g.token_ids for p, g in zip(second, turn2, strict=True)], 6, GREEDY)
    assert [g.token_ids for g in greedy] == [g.token_ids for g in plain]
    assert all(
        abs(a - b) < 1e-4
        for g, h in zip(greedy, plain, strict=True)
        for a, b in zip(g.logprobs, h.logprobs, strict=True)
    )


def test_a_group_prefills_its_common_prompt_once_with_the_same_results(model, chat):
    """Four episodes of one task and one of another, admitted together, then a late fifth of the first task:
    the system prompt and the group's prompt are computed once; every generation is what an uncached
    sampler gives, and recorded log-probs are the trainer's."""
    fed = []  # per forward: (rows, real tokens fed), padding not counted

    def count(_, args, kw):
        width = kw["input_ids"].shape[1]
        fed.append((kw["input_ids"].shape[0], int(kw["attention_mask"][:, -width:].sum())))

    hook = model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        cached = policy(model, chat)
        task_a = chat.prompt("Find the key file and write its code to answer.txt.").ids
        task_b = chat.prompt("Count the error lines in app.log; write the number to answer.txt.").ids
        group = [task_a] * 4 + [task_b]
        shared = cached.generate(group, 6, GREEDY)
        prefill = fed[: -5]  # the last 5 forwards are the decode steps
        assert sum(tokens for _, tokens in prefill) < len(task_a) + len(task_b) + len(group)  # not 4·|a| + |b|
        fed.clear()
        (late,) = cached.generate([task_a], 6, GREEDY)
        assert fed[0] == (1, 1)  # the prompt's last token is all it feeds
    finally:
        hook.remove()
    plain = TransformersPolicy(model, pad_token_id=chat.tokenizer.pad_token_id, prefix_cache_mb=0)
    expected = plain.generate(group + [task_a], 6, GREEDY)
    for got, want in zip([*shared, late], expected, strict=True):
        assert got.token_ids == want.token_ids
        assert max(abs(a - b) for a, b in zip(got.logprobs, want.logprobs, strict=True)) < 1e-4
    sampled = cached.generate(group, 8, SamplingParams(temperature=0.8), seeds=[1, 2, 3, 4, 5])
    for prompt, generation in zip(group, sampled, strict=True):
        reference = trainer_logprobs(model, prompt, generation.token_ids, 0.8)
        assert (reference - torch.tensor(generation.logprobs)).abs().max().item() < 1e-4


def test_weight_updates_drop_the_cache_and_the_model_mode_is_restored(model, chat):
    sampler = policy(model, chat)
    sampler.generate(prompts(chat), 3, GREEDY)
    assert len(sampler.prefix_cache) == 3
    model.train()
    with torch.no_grad():
        next(model.parameters()).add_(0.0)  # an optimizer step changes parameters in place
    sampler.generate([prompts(chat)[2]], 2, GREEDY)
    assert len(sampler.prefix_cache) == 1 and model.training
    model.eval()


def test_continuous_batching_answers_rows_as_they_finish_and_merges_newcomers(model, chat):
    """serve(): a short request is answered while a long one still decodes; a request that arrives then
    joins the running batch; every result equals what generate() gives that prompt alone."""
    sampler, sizes, replies = policy(model, chat), [], {}
    first, second, third = prompts(chat)
    inbox = queue.Queue()

    def reply(tag):
        def settle(generation):
            replies[tag] = (generation, len(sizes))
            if tag == "short":  # arrives while "long" is mid-way
                inbox.put(Request(third, 12, reply("late")))

        return settle

    thread = threading.Thread(target=sampler.serve, args=(inbox, GREEDY), kwargs={"batch_sizes": sizes})
    thread.start()
    inbox.put(Request(first, 3, reply("short")))
    inbox.put(Request(second, 40, reply("long")))
    while len(replies) < 3:
        time.sleep(0.01)
    inbox.put(None)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert replies["short"][1] < replies["long"][1] and replies["late"][1] <= replies["long"][1]
    assert max(sizes) >= 2 and 2 in sizes[replies["short"][1] :]  # "late" and "long" shared forward passes
    fresh = TransformersPolicy(model, pad_token_id=chat.tokenizer.pad_token_id, prefix_cache_mb=0)
    for tag, prompt, limit in (("short", first, 3), ("long", second, 40), ("late", third, 12)):
        (alone,) = fresh.generate([prompt], limit, GREEDY)
        generation = replies[tag][0]
        assert generation.token_ids == alone.token_ids
        assert max(abs(a - b) for a, b in zip(generation.logprobs, alone.logprobs, strict=True)) < 1e-4


def test_serve_answers_every_request_with_the_error_of_a_failed_step(chat):
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **kwargs):
            raise RuntimeError("device lost")

    inbox, results = queue.Queue(), []
    sampler = TransformersPolicy(Broken(), pad_token_id=0)
    inbox.put(Request([1, 2], 4, results.append))
    inbox.put(None)
    sampler.serve(inbox)
    assert len(results) == 1 and isinstance(results[0], RuntimeError)
