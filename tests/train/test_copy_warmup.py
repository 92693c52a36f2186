"""The copy warm-up teaches a fresh tiny Qwen3 to repeat a sequence it has just read, at the offset it was
trained on, and says so: its gapped accuracy (the copy at another offset) stays at chance."""

import torch

from echo_rl.models.tiny import build_tiny_qwen3
from echo_rl.models.tokenizer import train_tokenizer
from echo_rl.train.copy_warmup import copy_warmup


def test_copy_warmup_learns_the_trained_offset_and_reports_the_gapped_copy_at_chance():
    torch.set_num_threads(1)
    tokenizer = train_tokenizer(["x"], vocab_size=263)
    model = build_tiny_qwen3(tokenizer, seed=0, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                             intermediate_size=128)
    pool = list(range(40, 56))  # 16 tokens: chance is 1/16
    before = copy_warmup(model, pool, steps=1, length=8, batch_size=16, lr=0.0, seed=1)
    after = copy_warmup(model, pool, steps=150, length=8, batch_size=16, lr=3e-3, seed=1)
    assert before["copy_accuracy"] < 0.2
    assert after["copy_accuracy"] > 0.8 and after["loss"] < before["loss"] and not model.training
    # 150 steps at one layout find the positional shortcut (copy from 8 back), not an induction circuit
    assert after["copy_accuracy_gapped"] < 0.2
