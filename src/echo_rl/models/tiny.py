"""A tiny model with the Qwen3 architecture, built from a transformers ``Qwen3Config``.

The model class is ``Qwen3ForCausalLM``, the same code path as a real Qwen3 checkpoint; only the sizes are
small. The defaults give ~3.4M parameters with a 1,024-token vocabulary (4 layers, width 256).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase, Qwen3Config, Qwen3ForCausalLM


def tiny_qwen3_config(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 768,
    max_position_embeddings: int = 32_768,
) -> Qwen3Config:
    """A ``Qwen3Config`` whose vocabulary, pad and end-of-turn ids come from ``tokenizer``."""
    if num_layers < 2:
        raise ValueError("a tiny Qwen3 needs at least 2 layers (copying needs an induction circuit)")
    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError("hidden_size must divide into num_heads, and num_heads into num_kv_heads")
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )


def build_tiny_qwen3(tokenizer: PreTrainedTokenizerBase, seed: int = 0, **sizes: int) -> Qwen3ForCausalLM:
    """A randomly initialised ``Qwen3ForCausalLM`` (float32) for ``tokenizer``; the same ``seed`` gives the
    same weights. ``sizes`` are the keyword arguments of :func:`tiny_qwen3_config`."""
    config = tiny_qwen3_config(tokenizer, **sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    return model.eval()
