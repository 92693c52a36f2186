"""The policy interface every sampling backend implements.

    gens = policy.generate(prompts, [512, 300], SamplingParams(temperature=0.8, stop_token_ids={eot}))

``prompts`` are token ids (the episode's whole context so far); each :class:`Generation` holds the ids
the backend sampled, the end-of-turn token included when it stopped on one.

Recorded log-probs (issue 10.4). ``Generation.logprobs[i]`` is log softmax(logits / T) of the sampled
token over the FULL vocabulary, T the sampling temperature (T = 1 for greedy decoding, temperature 0) —
the distribution the trainer recomputes (temperature-scaled log-softmax), so sampler and trainer agree
up to floating-point error. With top-p / top-k the token is drawn from the truncated, renormalised
distribution, yet the recorded value stays the untruncated one: the importance ratio π_train/π_sample
then ignores the truncation (a small bias towards truncated-away tokens, the usual practice of RL
trainers). Backends that cannot give these numbers say so (see each backend).

Random streams. A prompt may come with a seed (``generate(…, seeds=…)``, :attr:`Request.seed`): its
tokens are then drawn from a stream of that seed alone, whatever else shares the batch, so an episode
samples the same tokens with 1 or 64 episodes alive, in one process or spread over ranks (the
transformers backend; vLLM and OpenAI-compatible servers get the seed per request and honour it as they
do). Prompts without a seed draw from the backend's own generator.
"""

from __future__ import annotations

import abc
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How every backend samples, one record from the episode runner to the decoding loop: ``temperature``
    0 is greedy; ``top_k`` 0 and ``top_p`` 1 disable truncation; a generation ends on any of
    ``stop_token_ids``. The token limit is per prompt (``max_new_tokens`` of :meth:`Policy.generate`,
    :attr:`Request.limit`): an episode's budget shrinks as its context grows."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop_token_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop_token_ids", frozenset(self.stop_token_ids))  # any collection of ids

    @property
    def truncates(self) -> bool:
        """True when top-p or top-k cuts the distribution the token is drawn from."""
        return self.top_p < 1.0 or self.top_k > 0


@dataclass(frozen=True)
class Generation:
    """One sampled continuation. ``finish_reason`` is ``stop`` when it ended on a stop token (kept as the
    last id; text backends: the server's stop, token not included) and ``length`` at ``max_new_tokens``.
    ``logprobs`` is None for backends that give none."""

    token_ids: list[int]
    logprobs: list[float] | None
    finish_reason: FinishReason


@dataclass
class Request:
    """One prompt handed to :meth:`Policy.serve`; ``reply`` receives its Generation (or the exception
    that failed it) exactly once, from the serving thread."""

    prompt: list[int]
    limit: int
    reply: Callable[[Generation | BaseException], None]
    seed: int | None = None
    settled: bool = field(default=False, repr=False)

    def settle(self, result: Generation | BaseException) -> None:
        """Answer the request (later answers are ignored)."""
        if not self.settled:
            self.settled = True
            self.reply(result)


class Policy(abc.ABC):
    """A sampler over token ids. Implementations are used from one thread at a time."""

    #: True when :meth:`serve` is implemented (continuous batching).
    continuous: bool = False

    def exact_logprobs(self, sampling: SamplingParams) -> bool:
        """True when :attr:`Generation.logprobs` sampled with ``sampling`` are exactly the distribution of the
        module docstring (False: none, or another distribution such as vLLM's truncated one)."""
        return True

    @abc.abstractmethod
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int | Sequence[int],
        sampling: SamplingParams = SamplingParams(),
        *,
        conversations: Sequence[list[dict[str, str]]] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        """Continue every prompt in one batched call. ``max_new_tokens`` is one limit or one per prompt;
        ``sampling`` says how (:class:`SamplingParams`). ``conversations``
        (the same episodes as chat messages) is read only by chat-API backends; ``seeds`` (one per prompt,
        None for the backend's generator) gives each prompt its own random stream (module docstring)."""

    def serve(
        self,
        inbox: queue.Queue[Request | None],
        sampling: SamplingParams = SamplingParams(),
        *,
        batch_sizes: list[int] | None = None,
    ) -> None:
        """Continuous batching with ``sampling``, run on a worker thread: requests that arrive in ``inbox``
        join the rows being decoded at the next step, and each is answered as soon as its own row finishes.
        Returns once ``None`` has arrived and every row admitted by then is answered, even when ``None``
        came along with requests. ``batch_sizes`` records the rows of every forward pass."""
        raise NotImplementedError(f"{type(self).__name__} has no continuous batching")

    def close(self) -> None:
        """Release what the backend holds (servers, engines). Idempotent."""


def prompt_seeds(seeds: Sequence[int | None] | None, n: int) -> list[int | None]:
    """``seeds`` as one (possibly None) seed per prompt."""
    if seeds is None:
        return [None] * n
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} prompts")
    return list(seeds)


def per_prompt(max_new_tokens: int | Sequence[int], n: int) -> list[int]:
    """``max_new_tokens`` as one limit per prompt."""
    limits = [max_new_tokens] * n if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != n:
        raise ValueError(f"{len(limits)} token limits for {n} prompts")
    return limits
