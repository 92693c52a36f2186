"""Stage 1 of the demo: corpus → reference replays and shell sessions in the sandbox → BPE tokenizer → tiny
Qwen3 → transcripts → pre-training on the sessions.

Everything lands in cache directories keyed by the config that determines them, so a re-run with the same
config reuses them (``DONE`` is written last). The corpus and its replays depend only on the task and sandbox
settings, and are kept apart so that changing the tokenizer or the model does not replay anything::

    CACHE/replays-<key>/corpus/        train / validation / heldout Harbor folders + index.jsonl
    CACHE/replays-<key>/replays.pkl    each reference command's recorded result and the verifier's verdict
    CACHE/sessions-<key>/replays.pkl   the recorded shell sessions (pre-training corpus, when pretrain is on)
    CACHE/<key>/corpus                 a link to the corpus above
    CACHE/<key>/model-init/            the tiny Qwen3 SFT starts from and its tokenizer (a checkpoint dir):
                                       randomly initialised (+ copy warm-up), then pre-trained when pretrain is on
    CACHE/<key>/sessions.jsonl         the shell sessions as transcripts (pre-training data)
    CACHE/<key>/pretrain/              the pre-training run's directory (config, metrics; no checkpoint)
    CACHE/expert-train.jsonl           solved reference transcripts of the train split (SFT data)
    CACHE/env-ce-heldout.jsonl         reference transcripts of held-out-family tasks (held-out env CE)
    CACHE/env-ce-validation.jsonl      reference transcripts of validation tasks (new files, seen families)
    CACHE/prepare.json                 counts and timings

The tokenizer has to be trained on transcripts, and transcripts are token ids: the references (and the shell
sessions) are replayed once, rendered through a provisional byte-level tokenizer (exact text), the BPE is
trained on that text, and the same replays are then tokenised with it (no second replay). Pre-training
(:mod:`echo_rl.demo.pretrain`) runs last, from ``model-raw`` into ``model-init``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_rl.cache import cached_pickle, fingerprint, is_complete, mark_complete, start_fresh
from echo_rl.config import RunConfig
from echo_rl.demo.config import DemoConfig
from echo_rl.harness.chat import ChatFormat
from echo_rl.roles import Role
from echo_rl.rollout.expert import Replay, expert_transcripts, replay_references, transcript_tokenizer
from echo_rl.rollout.trajectory import Trajectory, save_trajectories
from echo_rl.rollout.transcript_file import stamp_tokenizer
from echo_rl.rundir import atomic_write_text
from echo_rl.tasks.task import Task

# the shell sessions whose text the BPE is trained on beside the train transcripts (the first ones: enough to
# learn their merges; rendering a transcript costs ~15 ms, all of them would double the sessions' cost)
TOKENIZER_SESSIONS = 400


@dataclass(frozen=True)
class Prepared:
    root: Path
    stats: dict[str, Any]

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def model(self) -> Path:
        return self.root / "model-init"

    @property
    def sessions(self) -> Path:
        return self.root / "sessions.jsonl"

    @property
    def expert_train(self) -> Path:
        return self.root / "expert-train.jsonl"

    @property
    def env_ce_heldout(self) -> Path:
        return self.root / "env-ce-heldout.jsonl"

    @property
    def env_ce_validation(self) -> Path:
        return self.root / "env-ce-validation.jsonl"


def replay_key(cfg: DemoConfig) -> str:
    """What the corpus and its replays depend on: the task and sandbox settings."""
    run = cfg.run
    return "replays-" + fingerprint(
        run.tasks.model_dump(mode="json"), run.sandbox.command_timeout_s, run.sandbox.workdir,
        run.sandbox.base_image, run.eval.heldout_transcript_tasks, "replays-v1",
    )


def prepare_key(cfg: DemoConfig) -> str:
    """What the rest of stage 1 depends on: the replays, the harness, the tokenizer and model settings."""
    return fingerprint(replay_key(cfg), cfg.run.harness.model_dump(mode="json"), cfg.tokenizer.model_dump(mode="json"),
                       cfg.model.model_dump(mode="json"), _pretrain_key(cfg), "prepare-v2")


def _pretrain_key(cfg: DemoConfig) -> Any:
    """What pre-training adds to the key (nothing when it is off, so old caches stay valid)."""
    if not cfg.pretrain.enabled:
        return None
    return [session_key(cfg), cfg.pretrain.model_dump(mode="json"), cfg.sft.grad_clip, cfg.threads,
            cfg.run.objective.model_dump(mode="json"), cfg.run.policy.model_dump(mode="json")]


def prepare(cfg: DemoConfig, cache: Path, log: Callable[[str], None], progress: Any = None) -> Prepared:
    """Build (or reuse) everything of stage 1 under ``cache/<key>``; see the module docstring."""
    from echo_rl.models.load import save_checkpoint
    from echo_rl.tasks.corpus import load_corpus

    root = cache / prepare_key(cfg)
    if is_complete(root):
        stats = json.loads((root / "prepare.json").read_text())
        log(f"reusing corpus, tokenizer, model and transcripts from {root}")
        return Prepared(root, stats)
    start_fresh(root)
    run = cfg.run
    replays, timings, summary_counts = _corpus_and_replays(cfg, cache / replay_key(cfg), log, progress)
    sessions = _session_replays(cfg, cache / session_key(cfg), log, progress, timings) if cfg.pretrain.enabled else []
    (root / "corpus").symlink_to(Path("..") / replay_key(cfg) / "corpus")
    names = {split: {t.name for t in load_corpus(root / "corpus", split)} for split in ("train", "validation", "heldout")}
    by_split: dict[str, list[Replay]] = {"train": [], "validation": [], "heldout": []}
    for replay in replays:
        split = next(s for s in ("train", "validation", "heldout") if replay[0].name in names[s])
        by_split[split].append(replay)

    start = time.monotonic()
    chat = transcript_tokenizer([*by_split["train"], *sessions[:TOKENIZER_SESSIONS]], cfg.run, cfg.tokenizer.vocab_size,
                                cfg.tokenizer.pretokenizer)
    timings["tokenizer_s"] = time.monotonic() - start
    model, warm = _initial_model(cfg, chat, by_split["train"], timings, log)
    save_checkpoint(root / ("model-raw" if sessions else "model-init"), model, chat.tokenizer)
    params = sum(p.numel() for p in model.parameters())
    written = _write_transcripts(root, chat, by_split, run)
    pretrained: dict[str, Any] = {}
    if sessions:
        from echo_rl.demo.pretrain import pretrain

        prepared = Prepared(root, {})
        _save_transcripts(prepared.sessions, expert_transcripts(sessions, chat, run), "pretrain", chat)
        pretrained = pretrain(cfg, root, prepared.sessions, len(sessions), log)
        timings["pretrain_s"] = pretrained["seconds"]
        shutil.rmtree(root / "model-raw")
    train = written["train"]
    roles = Counter(role for t in train for role in t.roles)
    stats = {
        "counts": summary_counts,
        "families": {split: sorted({t[0].family for t in rs}) for split, rs in by_split.items()},
        "solved_references": {split: len(ts) for split, ts in written.items()},
        "vocab_size": len(chat.tokenizer),
        "parameters": params,
        "transcript_tokens_mean": statistics.mean(len(t.token_ids) for t in train) if train else 0,
        "transcript_tokens_max": max((len(t.token_ids) for t in train), default=0),
        "token_roles": {Role(role).name.lower(): count for role, count in sorted(roles.items())},
        "copy_warmup": warm,
        "pretrain": pretrained,
        "timings": timings,
    }
    log(f"tokenizer: byte-level BPE, {len(chat.tokenizer)} ids, trained on {len(by_split['train'])} transcripts and "
        f"{len(sessions)} shell sessions; model: Qwen3ForCausalLM, {params / 1e6:.2f}M parameters; transcripts: "
        f"{stats['transcript_tokens_mean']:.0f} tokens on average")
    atomic_write_text(root / "prepare.json", json.dumps(stats, indent=1))
    mark_complete(root)
    return Prepared(root, stats)


def _initial_model(cfg: DemoConfig, chat: ChatFormat, train: Sequence[Replay], timings: dict[str, float],
                   log: Callable[[str], None]) -> tuple[Any, dict[str, float]]:
    """The randomly initialised tiny Qwen3, after the copy warm-up when ``model.copy_warmup.steps``."""
    from echo_rl.models.tiny import build_tiny_qwen3
    from echo_rl.train.copy_warmup import copy_warmup

    sizes = cfg.model.model_dump()
    seed, warmup = sizes.pop("seed"), cfg.model.copy_warmup
    del sizes["copy_warmup"]
    model = build_tiny_qwen3(chat.tokenizer, seed=seed, **sizes)
    if not warmup.steps:
        return model, {}
    start = time.monotonic()
    pool = sorted({i for t in expert_transcripts(train, chat, cfg.run) for i, r in zip(t.token_ids, t.roles) if r == Role.ENV})
    warm = copy_warmup(model, pool, warmup.steps, warmup.length, warmup.batch_size, warmup.lr, seed)
    timings["copy_warmup_s"] = time.monotonic() - start
    log(f"copy warm-up: {warmup.steps} steps on random sequences of {len(pool)} output tokens shown twice; "
        f"copy accuracy {warm['copy_accuracy']:.2f}, {warm['copy_accuracy_gapped']:.2f} with a gap (at another offset) "
        f"in {timings['copy_warmup_s']:.1f} s")
    return model, warm


def _save_transcripts(path: Path, trajectories: list[Trajectory], split: str, chat: ChatFormat) -> None:
    stamp_tokenizer(trajectories, chat, split)
    save_trajectories(path, trajectories)


def _write_transcripts(root: Path, chat: ChatFormat, by_split: dict[str, list[Replay]],
                       run: RunConfig) -> dict[str, list[Trajectory]]:
    """The solved reference transcripts of each split, written to the files :class:`Prepared` names."""
    files = {"train": root / "expert-train.jsonl", "heldout": root / "env-ce-heldout.jsonl",
             "validation": root / "env-ce-validation.jsonl"}
    written: dict[str, list[Trajectory]] = {}
    for split, path in files.items():
        written[split] = [t for t in expert_transcripts(by_split[split], chat, run) if t.outcome == "solved"]
        _save_transcripts(path, written[split], split, chat)
    return written


def _recorded(root: Path, what: str, tasks: Callable[[], tuple[list[Task], dict[str, Any]]], run: RunConfig,
              log: Callable[[str], None], progress: Any) -> tuple[list[Replay], dict[str, Any], bool]:
    """(replays, info, reused): the reference solutions of ``tasks()`` replayed in the sandbox under a progress
    bar, cached under ``root`` (:func:`~echo_rl.cache.cached_pickle`) with ``info`` and the replay's
    ``replay_s``."""

    def record() -> tuple[list[Replay], dict[str, Any]]:
        chosen, info = tasks()
        start = time.monotonic()
        bar = progress.add_task(what, total=len(chosen)) if progress is not None else None
        replays = asyncio.run(replay_references(
            chosen, run, label="echo-rl-demo", on_done=(lambda: progress.advance(bar)) if progress is not None else None,
        ))
        if progress is not None:
            progress.remove_task(bar)
        seconds = time.monotonic() - start
        verdicts = [r[2].outcome for r in replays if r[2] is not None]  # shell sessions have no verifier
        solved = f"; {verdicts.count('solved')} solved" if verdicts else ""
        log(f"{what}: {len(replays)}/{len(chosen)} in {seconds:.1f} s ({len(chosen) / max(seconds, 1e-9):.0f}/s){solved}")
        return replays, {**info, "replay_s": seconds}

    replays, info, reused = cached_pickle(root, record)
    if reused:
        log(f"reusing {what} ({len(replays)} replays) from {root}")
    return replays, info, reused


def _corpus_and_replays(
    cfg: DemoConfig, root: Path, log: Callable[[str], None], progress: Any
) -> tuple[list[Replay], dict[str, float], dict[str, int]]:
    """The corpus under ``root/corpus`` and the replays of its train tasks and of the first
    ``eval.heldout_transcript_tasks`` validation and held-out tasks (built once, then read back)."""
    from echo_rl.tasks.corpus import build_corpus, load_corpus

    run = cfg.run

    def tasks() -> tuple[list[Task], dict[str, Any]]:
        start = time.monotonic()
        summary = build_corpus(root / "corpus", run.tasks, run.sandbox.base_image)
        splits = {name: load_corpus(root / "corpus", name) for name in ("train", "validation", "heldout")}
        seconds = time.monotonic() - start
        log(f"corpus: {summary.counts} ({summary.duplicates_dropped} near-duplicates replaced) in {seconds:.1f} s")
        n_ref = run.eval.heldout_transcript_tasks
        return splits["train"] + splits["validation"][:n_ref] + splits["heldout"][:n_ref], {
            "counts": summary.counts, "corpus_s": seconds}

    replays, info, reused = _recorded(root, "replaying reference solutions", tasks, run, log, progress)
    timings = {"corpus_s": 0.0 if reused else info["corpus_s"], "replay_s": 0.0 if reused else info["replay_s"]}
    return replays, timings, info["counts"]


def session_key(cfg: DemoConfig) -> str:
    """What the recorded shell sessions depend on: their count and seed, and the sandbox settings."""
    run = cfg.run
    return "sessions-" + fingerprint(cfg.pretrain.sessions, cfg.pretrain.seed, run.sandbox.command_timeout_s,
                                     run.sandbox.workdir, "sessions-v2")


def _session_replays(cfg: DemoConfig, root: Path, log: Callable[[str], None], progress: Any,
                     timings: dict[str, float]) -> list[Replay]:
    """``pretrain.sessions`` shell sessions (:mod:`echo_rl.tasks.sessions`) replayed in the sandbox (cached)."""
    from echo_rl.tasks.sessions import session_tasks

    replays, info, reused = _recorded(root, "recording shell sessions",
                                      lambda: (session_tasks(cfg.pretrain.sessions, cfg.pretrain.seed), {}),
                                      cfg.run, log, progress)
    timings["sessions_s"] = 0.0 if reused else info["replay_s"]
    return replays
