"""Synthetic copy pre-training of a fresh model: an induction circuit before it sees a demonstration.

A pretrained LM can already copy a value it has just read; a randomly initialised tiny model cannot, and
learns it from demonstrations only after a long plateau. Each step draws ``batch_size`` sequences ``s`` of
``length`` tokens from ``pool`` and trains on ``s ‖ s`` with the cross-entropy on the second copy only:

    L = CE(logits[:, length-1 : -1], x[:, length:])     x = s ‖ s
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def copy_warmup(model: Any, pool: Sequence[int], steps: int, length: int, batch_size: int, lr: float,
                seed: int) -> dict[str, float]:
    """Train ``model`` in place to repeat random sequences of ``pool`` tokens (AdamW, gradient norm clipped
    to 1); return the steps, the final loss and the final copy accuracy."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.tensor(list(pool), dtype=torch.long)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    loss = accuracy = torch.tensor(0.0)
    for _ in range(steps):
        first = ids[torch.randint(len(ids), (batch_size, length), generator=generator)]
        x = torch.cat([first, first], dim=1)
        logits = model(input_ids=x).logits[:, length - 1 : -1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, length:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        accuracy = (logits.argmax(-1) == x[:, length:]).float().mean()
    model.eval()
    return {"steps": steps, "loss": float(loss.detach()), "copy_accuracy": float(accuracy)}
