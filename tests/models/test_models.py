"""The local tokenizer, the tiny Qwen3 builder and the model-spec resolver."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3ForCausalLM

from echo_rl.errors import UserError
from echo_rl.models.load import load_policy_model, save_checkpoint
from echo_rl.models.tiny import build_tiny_qwen3
from echo_rl.models.tokenizer import MARKUP_TOKENS, SPECIAL_TOKENS, train_tokenizer

torch.set_num_threads(1)
TEXTS = ["ls -la /home/user\n", "cat key_mint.txt\ncode: 4575\n(exit_code=0)", "<think>\nplan\n</think>"] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=512)


@settings(max_examples=100, deadline=None, database=None)
@given(text=st.text())
def test_tokenizer_round_trips_any_text(tokenizer, text):
    assert (
        tokenizer.decode(tokenizer.encode(text, add_special_tokens=False), clean_up_tokenization_spaces=False) == text
    )


def test_tokenizer_has_single_token_markup_and_a_chatml_template(tokenizer, tmp_path):
    assert len(tokenizer) <= 512
    for token in SPECIAL_TOKENS + MARKUP_TOKENS:
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    messages = [{"role": "user", "content": "hi"}, {"role": "tool", "content": "out"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>tool\nout<|im_end|>\n<|im_start|>assistant\n"
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.chat_template == tokenizer.chat_template
    assert again.encode(TEXTS[1], add_special_tokens=False) == tokenizer.encode(TEXTS[1], add_special_tokens=False)
    assert train_tokenizer(TEXTS, vocab_size=512).get_vocab() == tokenizer.get_vocab()


def test_tiny_qwen3_is_a_seeded_qwen3_that_saves_and_loads(tokenizer, tmp_path):
    model = build_tiny_qwen3(tokenizer, seed=1)
    assert isinstance(model, Qwen3ForCausalLM) and model.config.num_hidden_layers == 4
    assert 2e6 < sum(p.numel() for p in model.parameters()) < 6e6
    same = build_tiny_qwen3(tokenizer, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters(), strict=True))
    save_checkpoint(tmp_path / "ckpt", model, tokenizer)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    ids = torch.tensor([tokenizer.encode(TEXTS[1], add_special_tokens=False)])
    assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 layers"):
        build_tiny_qwen3(tokenizer, num_layers=1)


def test_load_policy_model_resolves_tiny_and_checkpoints(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_RL_CACHE", str(tmp_path / "cache"))
    model, tok = load_policy_model("tiny")
    assert isinstance(model, Qwen3ForCausalLM) and tok.chat_template and not model.training
    assert (tmp_path / "cache" / "tiny" / "config.json").is_file()
    small = build_tiny_qwen3(tokenizer, hidden_size=64, num_layers=2, intermediate_size=128)
    save_checkpoint(tmp_path / "mine", small, tokenizer)
    model, tok = load_policy_model(str(tmp_path / "mine"))
    assert model.config.hidden_size == 64 and tok.get_vocab() == tokenizer.get_vocab()


def test_load_policy_model_errors_are_one_line(tokenizer, tmp_path):
    with pytest.raises(UserError, match="no such model: expected 'tiny', 'smollm2-135m' or a checkpoint"):
        load_policy_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a checkpoint directory"):
        load_policy_model(str(tmp_path / "empty"))
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    tokenizer.chat_template = None
    save_checkpoint(
        tmp_path / "plain", build_tiny_qwen3(tokenizer, hidden_size=32, num_layers=2, intermediate_size=64), tokenizer
    )
    with pytest.raises(UserError, match="tokenizer has no chat template") as err:
        load_policy_model(str(tmp_path / "plain"))
    assert "\n" not in str(err.value)
