"""The copy warm-up teaches a fresh tiny Qwen3 to repeat a sequence it has just read."""

import torch

from echo_rl.models.tiny import build_tiny_qwen3
from echo_rl.models.tokenizer import train_tokenizer
from echo_rl.train.copy_warmup import copy_warmup


def test_copy_warmup_raises_copy_accuracy_far_above_chance():
    torch.set_num_threads(1)
    tokenizer = train_tokenizer(["x"], vocab_size=263)
    model = build_tiny_qwen3(tokenizer, seed=0, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                             intermediate_size=128)
    pool = list(range(40, 56))  # 16 tokens: chance is 1/16
    before = copy_warmup(model, pool, steps=1, length=8, batch_size=16, lr=0.0, seed=1)
    after = copy_warmup(model, pool, steps=150, length=8, batch_size=16, lr=3e-3, seed=1)
    assert before["copy_accuracy"] < 0.2
    assert after["copy_accuracy"] > 0.8 and after["loss"] < before["loss"] and not model.training
