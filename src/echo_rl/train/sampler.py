"""A seeded task sampler whose position survives a restart.

Tasks are drawn without replacement from a permutation of ``range(n)`` fixed by ``(seed, epoch)``; when a
permutation is used up the next epoch's begins. ``state()`` / ``load_state()`` round-trip the position, so
a resumed run draws exactly the tasks the uninterrupted run would have drawn.
"""

from __future__ import annotations

import random

from echo_rl.errors import UserError


class TaskSampler:
    def __init__(self, num_items: int, seed: int) -> None:
        if num_items < 1:
            raise ValueError("TaskSampler needs at least one item")
        self.num_items = num_items
        self.seed = seed
        self.epoch = 0
        self.index = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.num_items))
        random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return order

    def next(self, count: int) -> list[int]:
        """The next ``count`` item indices (crossing epochs as needed)."""
        drawn = []
        while len(drawn) < count:
            if self.index == self.num_items:
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            drawn.append(self._order[self.index])
            self.index += 1
        return drawn

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index, "num_items": self.num_items, "seed": self.seed}

    def load_state(self, state: dict[str, int]) -> None:
        if state["num_items"] != self.num_items or state["seed"] != self.seed:
            raise UserError("cannot resume: the checkpoint was trained on a different task set or seed")
        self.epoch, self.index = state["epoch"], state["index"]
        self._order = self._permutation(self.epoch)
