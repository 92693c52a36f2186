"""Synthetic copy pre-training of a fresh model: sequences of random tokens, each shown twice.

Each step draws ``batch_size`` sequences ``s`` of ``length`` tokens from ``pool`` and trains on ``s ‖ s``
with the cross-entropy on the second copy only:

    L = CE(logits[:, length-1 : -1], x[:, length:])     x = s ‖ s

What it teaches depends on the layout, and the layout never changes: the token to predict is always the
one exactly ``length`` positions back, so a model can reach 100% by attending to that offset, without
the induction circuit (find the earlier occurrence of the current token, copy its successor) that
copying a value from a terminal's output needs. :func:`copy_warmup` therefore also measures
``copy_accuracy_gapped``: the accuracy on fresh ``s ‖ g ‖ s``, ``g`` being ``length // 2`` random pool
tokens, where the copy sits at another offset — near chance for the positional shortcut, high only for
content-matched copying. (The demo's warm-up: 1.00 trained, 0.004 gapped; README.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def copy_warmup(model: Any, pool: Sequence[int], steps: int, length: int, batch_size: int, lr: float,
                seed: int) -> dict[str, float]:
    """Train ``model`` in place to repeat random sequences of ``pool`` tokens (AdamW, gradient norm clipped
    to 1); return the steps, the final loss, the final copy accuracy (on the last batch) and the copy
    accuracy with a gap (module docstring; sequences of their own generator, so training is unchanged)."""
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
    gapped = copy_accuracy(model, ids, length, length // 2, batch_size, torch.Generator().manual_seed(seed + 1))
    return {"steps": steps, "loss": float(loss.detach()), "copy_accuracy": float(accuracy),
            "copy_accuracy_gapped": gapped}


def copy_accuracy(model: Any, ids: Any, length: int, gap: int, batch_size: int, generator: Any) -> float:
    """Greedy accuracy of ``model`` on the second ``s`` of ``batch_size`` random ``s ‖ g ‖ s`` (``|s|`` =
    ``length``, ``|g|`` = ``gap``, tokens drawn uniformly from ``ids``)."""
    import torch

    first = ids[torch.randint(len(ids), (batch_size, length), generator=generator)]
    filler = ids[torch.randint(len(ids), (batch_size, gap), generator=generator)]
    x = torch.cat([first, filler, first], dim=1)
    with torch.no_grad():
        predicted = model(input_ids=x).logits[:, length + gap - 1 : -1].argmax(-1)
    return float((predicted == first).float().mean())
