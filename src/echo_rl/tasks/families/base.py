"""What a procedural task family is, and the helpers every family shares.

A family is a function ``spec(rng) -> Spec`` registered with :func:`family`. From a seeded :class:`Rng` it
draws the values that make one task (codes, names, counts) and returns the task as data: the instruction,
the initial files, extra setup commands, the reference solution (one shell command per agent turn,
exploring first, then acting on values read from earlier outputs) and the final-state checks (Python
statements over :mod:`echo_rl.tasks.families.checklib`, run by the verifier inside the sandbox).
:mod:`echo_rl.tasks.families.build` turns a Spec into a Harbor :class:`~echo_rl.tasks.task.Task`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Domain = Literal["data", "sysops", "dev"]
DIFFICULTIES = ("easy", "medium", "hard")

WORDS = (
    "alpha amber apex arrow atlas aurora badge beacon birch bison blaze cedar cobalt comet coral crane "
    "delta dune echo ember falcon fern flint forge gamma garnet glacier harbor hazel heron indigo iris "
    "jade jasper juno kestrel koala lark lemon lima lotus lunar maple marble mesa mint nova oak onyx "
    "opal orbit otter pearl pepper pine plum polar quartz quill raven reef ridge rowan ruby sage "
    "sierra slate sonar spruce storm tango thorn topaz tulip umber vega velvet violet willow yew zinc"
).split()
NAMES = (
    "ada alan alice amir ana ben bruno carla chen dana diego elena emma farah felix gina hana ivan "
    "jonas julia kai kim lena leo luca maya mei nadia nina omar oscar paula priya quinn rosa sam sara "
    "tara theo uma vera wes yara yuki zane"
).split()


class Rng(random.Random):
    """``random.Random`` seeded from ``family:seed`` (stable across processes and Python versions),
    with the draws families share."""

    def __init__(self, family_name: str, seed: int):
        super().__init__(f"{family_name}:{seed}")

    def level(self) -> int:
        """0, 1 or 2: easy, medium, hard (families scale their distractors with it)."""
        return self.randrange(3)

    def words(self, k: int) -> list[str]:
        return self.sample(WORDS, k)

    def names(self, k: int) -> list[str]:
        return self.sample(NAMES, k)

    def code(self, digits: int = 4) -> str:
        """A number with ``digits`` digits and no leading zero."""
        return str(self.randrange(10 ** (digits - 1), 10**digits))

    def codes(self, k: int, digits: int = 4) -> list[str]:
        return [str(n) for n in self.sample(range(10 ** (digits - 1), 10**digits), k)]

    def ticket(self) -> str:
        return f"{self.choice('ABCDEFGHJKMNPQRSTUVWXYZ')}{self.choice('ABCDEFGHJKMNPQRSTUVWXYZ')}-{self.code(3)}"


@dataclass(frozen=True)
class Spec:
    """One generated task. ``files`` (relative to the workdir) are written first, then ``setup`` shell
    lines run in the workdir; ``commands`` is the reference solution, one per turn; ``checks`` are Python
    statements over ``checklib`` that pass only in a solved final state."""

    instruction: str
    files: dict[str, str]
    commands: list[str]
    checks: list[str]
    level: int
    setup: list[str] = field(default_factory=list)

    @property
    def difficulty(self) -> str:
        return DIFFICULTIES[self.level]


@dataclass(frozen=True)
class Family:
    name: str
    domain: Domain
    description: str
    spec: Callable[[Rng], Spec]


FAMILIES: dict[str, Family] = {}


def family(name: str, domain: Domain, description: str) -> Callable[[Callable[[Rng], Spec]], Callable[[Rng], Spec]]:
    """Register ``spec(rng) -> Spec`` as the family ``name``."""

    def register(spec: Callable[[Rng], Spec]) -> Callable[[Rng], Spec]:
        if name in FAMILIES:
            raise ValueError(f"family {name!r} registered twice")
        FAMILIES[name] = Family(name, domain, description, spec)
        return spec

    return register


def lines(*rows: object) -> str:
    """File content from rows, one per line, with a final newline."""
    return "".join(f"{row}\n" for row in rows)


def call(function: str, *args: object) -> str:
    """One check statement: ``function(arg, …)`` with Python literals."""
    return f"{function}({', '.join(repr(a) for a in args)})"
