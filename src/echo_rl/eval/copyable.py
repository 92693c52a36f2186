"""Which terminal-output tokens of a transcript set only copying can predict.

    masks = copyable_masks(transcripts)        # one list[bool] per transcript, aligned with its token_ids

An ENV token t of a transcript is *copyable* when the n-gram of token ids ending at it (``n`` = 5 by default,
``x[t-n+1 … t]``) already occurs earlier in the same transcript (in any role: an earlier output, the agent's
command, the instruction) and occurs in fewer than ``max_share`` of the set's transcripts (in this one alone
in a set too small for that share to leave room: under 20 at 10%). The first rule
makes the token predictable from the context; the second leaves out format every transcript shares — the
harness's ``(exit_code=0)`` line, a chat-template tail — which a model predicts from having seen the format,
not by reading this transcript. What remains is content the episode itself introduced (a file name, a code,
a line printed twice), so a model that copies what it reads pays little on it and one that does not pays as
much as on fresh output. The held-out env CE over these tokens (:func:`echo_rl.eval.heldout.heldout_env_ce`)
says which of the two a model is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from echo_rl.roles import Role
from echo_rl.rollout.trajectory import Trajectory

NGRAM = 5
MAX_SHARE = 0.1


def copyable_masks(transcripts: Sequence[Trajectory], n: int = NGRAM, max_share: float = MAX_SHARE) -> list[list[bool]]:
    """Per transcript, True at each copyable ENV token (module docstring)."""
    grams = [_ngrams(t.token_ids, n) for t in transcripts]
    spread = Counter(gram for seq in grams for gram in set(seq))
    limit = max(2.0, max_share * len(transcripts))  # a count below 2 would leave a small set no copyable token
    masks = []
    for traj, seq in zip(transcripts, grams):
        mask, seen = [False] * len(traj.token_ids), set()
        for end, gram in enumerate(seq, start=n - 1):
            mask[end] = traj.roles[end] == Role.ENV and gram in seen and spread[gram] < limit
            seen.add(gram)
        masks.append(mask)
    return masks


def _ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """The n-grams of ``ids`` in order: the i-th ends at position i + n - 1."""
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
