import pytest
import torch
from objective_helpers import VOCAB, backward_grads

from echo_rl.objective import full_logits_logprobs, token_logprobs


def _inputs(batch=3, length=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, (batch, length), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 15:] = 0  # padded row
    attention_mask[2, 1:] = 0  # a single token: no targets
    weights = torch.rand(batch, length, generator=gen)  # a loss that weighs every position differently
    return input_ids, attention_mask, weights


@pytest.mark.parametrize("chunk_size", [1, 5, 64, 4096])
@pytest.mark.parametrize("temperature", [1.0, 0.8, "per_token"])
def test_chunked_equals_full_logits_values_entropy_and_gradients(model, chunk_size, temperature):
    input_ids, attention_mask, weights = _inputs()
    if temperature == "per_token":
        temperature = 0.5 + torch.rand(input_ids.shape, generator=torch.Generator().manual_seed(1))
    chunked = token_logprobs(model, input_ids, attention_mask, chunk_size, temperature, with_entropy=True)
    chunked_grads = backward_grads(model, (chunked.logprobs * weights).sum())
    naive = full_logits_logprobs(model, input_ids, attention_mask, temperature)
    naive_grads = backward_grads(model, (naive.logprobs * weights).sum())

    torch.testing.assert_close(chunked.logprobs, naive.logprobs, rtol=0, atol=1e-5)
    torch.testing.assert_close(chunked.entropy, naive.entropy, rtol=0, atol=1e-5)
    for got, want in zip(chunked_grads, naive_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_layout_zero_at_first_position_and_padding(model):
    input_ids, attention_mask, _ = _inputs()
    out = token_logprobs(model, input_ids, attention_mask, chunk_size=7, with_entropy=True)
    assert out.logprobs.shape == input_ids.shape and out.logprobs.dtype == torch.float32
    assert (out.logprobs[:, 0] == 0).all()
    assert (out.logprobs[attention_mask == 0] == 0).all() and (out.entropy[attention_mask == 0] == 0).all()
    assert (out.logprobs[:, 1:][attention_mask[:, 1:].bool()] < 0).all()
    assert not out.entropy.requires_grad


def test_no_vocabulary_wide_tensor_per_token_is_kept_for_backward(model):
    """The chunked path saves hidden states and the projection, never [tokens × V] logits; the reference
    keeps the full logits."""
    input_ids = torch.randint(1, VOCAB, (8, 128))
    attention_mask = torch.ones_like(input_ids)

    def most_vocab_rows_saved(fn) -> int:
        """The largest saved tensor with a vocabulary-sized dimension, in rows of V values."""
        rows = [0]

        def pack(t):
            rows.append(t.numel() // VOCAB if VOCAB in t.shape else 0)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(model, input_ids, attention_mask)
        return max(rows)

    hidden_size = model.config.hidden_size
    assert most_vocab_rows_saved(lambda *a: token_logprobs(*a, chunk_size=16)) == hidden_size  # lm_head weight
    assert most_vocab_rows_saved(full_logits_logprobs) >= input_ids.shape[0] * (input_ids.shape[1] - 1)
