"""Stage 1 of the demo: corpus → reference replays in the sandbox → BPE tokenizer → tiny Qwen3 → transcripts.

Everything lands in cache directories keyed by the config that determines them, so a re-run with the same
config reuses them (``DONE`` is written last). The corpus and its replays depend only on the task and sandbox
settings, and are kept apart so that changing the tokenizer or the model does not replay anything::

    CACHE/replays-<key>/corpus/        train / validation / heldout Harbor folders + index.jsonl
    CACHE/replays-<key>/replays.pkl    each reference command's recorded result and the verifier's verdict
    CACHE/<key>/corpus                 a link to the corpus above
    CACHE/<key>/model-init/            the randomly initialised tiny Qwen3 and its tokenizer (a checkpoint dir)
    CACHE/expert-train.jsonl           solved reference transcripts of the train split (SFT data)
    CACHE/env-ce-heldout.jsonl         reference transcripts of held-out-family tasks (held-out env CE)
    CACHE/env-ce-validation.jsonl      reference transcripts of validation tasks (new files, seen families)
    CACHE/prepare.json                 counts and timings

The tokenizer has to be trained on transcripts, and transcripts are token ids: the references are replayed
once, rendered through a provisional byte-level tokenizer (exact text), the BPE is trained on that text,
and the same replays are then tokenised with it (no second replay).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.demo.config import DemoConfig, fingerprint
from echo_rl.harness.chat import ChatFormat
from echo_rl.rollout.trajectory import Trajectory, load_trajectories, save_trajectories
from echo_rl.roles import Role
from echo_rl.rundir import atomic_write_text
from echo_rl.tasks.replay import ReferenceStep
from echo_rl.tasks.task import Task
from echo_rl.tasks.verifier import VerifierResult

Replay = tuple[Task, list[ReferenceStep], VerifierResult]


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
                       cfg.model.model_dump(mode="json"), "prepare-v2")


async def replay_references(
    tasks: Sequence[Task], cfg: RunConfig, *, label: str, on_done: Callable[[], None] | None = None
) -> list[Replay]:
    """Replay each task's reference solution in a fresh sandbox and verify it (``sandbox.pool_size`` at a
    time); tasks whose sandbox failed after ``sandbox.infra_retries`` retries are left out."""
    from echo_rl.rollout.expert import replay_verified

    slots = asyncio.Semaphore(cfg.sandbox.pool_size)

    async def one(task: Task) -> Replay | None:
        try:
            replayed = await replay_verified(task, cfg, slots, label=label)
            return None if replayed is None else (task, *replayed)
        finally:
            if on_done is not None:
                on_done()

    return [r for r in await asyncio.gather(*(one(task) for task in tasks)) if r is not None]


def transcripts(replays: Sequence[Replay], chat: ChatFormat, cfg: RunConfig) -> list[Trajectory]:
    from echo_rl.rollout.expert import expert_transcript

    return [
        expert_transcript(task, steps, chat, result, max_output_chars=cfg.harness.max_output_chars,
                          command_timeout_s=cfg.sandbox.command_timeout_s)
        for task, steps, result in replays
    ]


def _chat(tokenizer: Any, cfg: RunConfig) -> ChatFormat:
    return ChatFormat.from_config(tokenizer, cfg.harness)


def prepare(cfg: DemoConfig, cache: Path, log: Callable[[str], None], progress: Any = None) -> Prepared:
    """Build (or reuse) everything of stage 1 under ``cache/<key>``; see the module docstring."""
    from echo_rl.harness.chat import tokenizer_fingerprint
    from echo_rl.models.load import save_checkpoint
    from echo_rl.models.tiny import build_tiny_qwen3
    from echo_rl.models.tokenizer import train_tokenizer
    from echo_rl.tasks.corpus import load_corpus

    root = cache / prepare_key(cfg)
    done = root / "DONE"
    if done.is_file():
        stats = json.loads((root / "prepare.json").read_text())
        log(f"reusing corpus, tokenizer, model and transcripts from {root}")
        return Prepared(root, stats)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    run = cfg.run
    replays, timings, summary_counts = _corpus_and_replays(cfg, cache / replay_key(cfg), log, progress)
    (root / "corpus").symlink_to(Path("..") / replay_key(cfg) / "corpus")
    names = {split: {t.name for t in load_corpus(root / "corpus", split)} for split in ("train", "validation", "heldout")}
    by_split: dict[str, list[Replay]] = {"train": [], "validation": [], "heldout": []}
    for replay in replays:
        split = next(s for s in ("train", "validation", "heldout") if replay[0].name in names[s])
        by_split[split].append(replay)

    start = time.monotonic()
    provisional = _chat(train_tokenizer(["x"], vocab_size=263), run)  # bytes only: decodes exactly
    texts = [provisional.decode(t.token_ids) for t in transcripts(by_split["train"], provisional, run)]
    tokenizer = train_tokenizer(texts, vocab_size=cfg.tokenizer.vocab_size, pretokenizer=cfg.tokenizer.pretokenizer)
    chat = _chat(tokenizer, run)
    timings["tokenizer_s"] = time.monotonic() - start

    sizes = cfg.model.model_dump()
    seed, warmup = sizes.pop("seed"), cfg.model.copy_warmup
    del sizes["copy_warmup"]
    model = build_tiny_qwen3(tokenizer, seed=seed, **sizes)
    warm = {}
    if warmup.steps:
        start = time.monotonic()
        pool = sorted({i for t in transcripts(by_split["train"], chat, run) for i, r in zip(t.token_ids, t.roles)
                       if r == Role.ENV})
        warm = copy_warmup(model, pool, warmup.steps, warmup.length, warmup.batch_size, warmup.lr, seed)
        timings["copy_warmup_s"] = time.monotonic() - start
        log(f"copy warm-up: {warmup.steps} steps on random sequences of {len(pool)} output tokens shown twice; "
            f"copy accuracy {warm['copy_accuracy']:.2f} in {timings['copy_warmup_s']:.1f} s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the demo's output
    try:
        save_checkpoint(root / "model-init", model, tokenizer)
    finally:
        hf_logging.enable_progress_bar()
    params = sum(p.numel() for p in model.parameters())

    tok_fp = tokenizer_fingerprint(chat)
    files = {"train": root / "expert-train.jsonl", "heldout": root / "env-ce-heldout.jsonl",
             "validation": root / "env-ce-validation.jsonl"}
    written: dict[str, list[Trajectory]] = {}
    for split, path in files.items():
        trajectories = [t for t in transcripts(by_split[split], chat, run) if t.outcome == "solved"]
        for t in trajectories:
            t.split = split
            t.meta["tokenizer"] = tok_fp
        save_trajectories(path, trajectories)
        written[split] = trajectories
    train = written["train"]
    roles = Counter(role for t in train for role in t.roles)
    stats = {
        "counts": summary_counts,
        "families": {split: sorted({t[0].family for t in rs}) for split, rs in by_split.items()},
        "solved_references": {split: len(ts) for split, ts in written.items()},
        "vocab_size": len(tokenizer),
        "parameters": params,
        "transcript_tokens_mean": statistics.mean(len(t.token_ids) for t in train) if train else 0,
        "transcript_tokens_max": max((len(t.token_ids) for t in train), default=0),
        "token_roles": {Role(role).name.lower(): count for role, count in sorted(roles.items())},
        "copy_warmup": warm,
        "timings": timings,
    }
    log(f"tokenizer: byte-level BPE, {len(tokenizer)} ids, trained on {len(texts)} transcripts; "
        f"model: Qwen3ForCausalLM, {params / 1e6:.2f}M parameters; transcripts: "
        f"{stats['transcript_tokens_mean']:.0f} tokens on average")
    atomic_write_text(root / "prepare.json", json.dumps(stats, indent=1))
    atomic_write_text(done, "")
    return Prepared(root, stats)


def copy_warmup(model: Any, pool: Sequence[int], steps: int, length: int, batch_size: int, lr: float,
                seed: int) -> dict[str, float]:
    """Train ``model`` in place to repeat random sequences of ``pool`` tokens (see
    :class:`~echo_rl.demo.config.CopyWarmup`); return the final loss and copy accuracy."""
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


def _corpus_and_replays(
    cfg: DemoConfig, root: Path, log: Callable[[str], None], progress: Any
) -> tuple[list[Replay], dict[str, float], dict[str, int]]:
    """The corpus under ``root/corpus`` and the replays of its train tasks and of the first
    ``eval.heldout_transcript_tasks`` validation and held-out tasks (built once, then read back)."""
    from echo_rl.tasks.corpus import build_corpus, load_corpus

    done = root / "DONE"
    if done.is_file():
        data = json.loads((root / "replays.json").read_text())
        with (root / "replays.pkl").open("rb") as handle:
            replays = pickle.load(handle)
        log(f"reusing the corpus and {len(replays)} reference replays from {root}")
        return replays, {"corpus_s": 0.0, "replay_s": 0.0}, data["counts"]
    shutil.rmtree(root, ignore_errors=True)
    run = cfg.run
    timings: dict[str, float] = {}
    start = time.monotonic()
    summary = build_corpus(root / "corpus", run.tasks, run.sandbox.base_image)
    splits = {name: load_corpus(root / "corpus", name) for name in ("train", "validation", "heldout")}
    timings["corpus_s"] = time.monotonic() - start
    log(f"corpus: {summary.counts} ({summary.duplicates_dropped} near-duplicates replaced) "
        f"in {timings['corpus_s']:.1f} s")
    n_ref = run.eval.heldout_transcript_tasks
    chosen = splits["train"] + splits["validation"][:n_ref] + splits["heldout"][:n_ref]
    start = time.monotonic()
    bar = progress.add_task("replaying reference solutions", total=len(chosen)) if progress is not None else None
    replays = asyncio.run(replay_references(
        chosen, run, label="echo-rl-demo", on_done=(lambda: progress.advance(bar)) if progress is not None else None,
    ))
    if progress is not None:
        progress.remove_task(bar)
    timings["replay_s"] = time.monotonic() - start
    solved = sum(r[2].outcome == "solved" for r in replays)
    log(f"replayed {len(replays)}/{len(chosen)} reference solutions in {timings['replay_s']:.1f} s "
        f"({len(chosen) / max(timings['replay_s'], 1e-9):.0f}/s); {solved} solved")
    with (root / "replays.pkl").open("wb") as handle:
        pickle.dump(replays, handle)
    atomic_write_text(root / "replays.json", json.dumps({"counts": summary.counts, "timings": timings}))
    atomic_write_text(done, "")
    return replays, timings, summary.counts


def load_env_ce_sets(prepared: Prepared) -> dict[str, list[Trajectory]]:
    return {"heldout": load_trajectories(prepared.env_ce_heldout),
            "validation": load_trajectories(prepared.env_ce_validation)}
