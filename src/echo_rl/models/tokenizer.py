"""A byte-level BPE tokenizer trained locally, with ChatML special tokens and a chat template.

    tokenizer = train_tokenizer(texts, vocab_size=1024)
    tokenizer.save_pretrained(path)          # a PreTrainedTokenizerFast with ``chat_template``

The template is plain ChatML (``<|im_start|>{role}\\n{content}<|im_end|>\\n``) for every role, ``tool``
included, so it is append-only: rendering a longer conversation never changes an earlier turn.
``<think>``, ``</think>``, ``<tool_call>``, ``</tool_call>`` are single (non-special) tokens, as in Qwen3.

``pretokenizer="qwen"`` splits text before BPE with Qwen2/Qwen3's own pattern instead of GPT-2's: every digit
is a token of its own and a word keeps at most one leading non-letter character, so a value copied from a
command's output into the next command (``4575`` in ``code: 4575`` → ``echo 4575``) is the same token
sequence in both places (the demo uses it; a tiny model learns to copy far sooner).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]
MARKUP_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]

# The pre-tokenizer pattern of Qwen2 / Qwen2.5 / Qwen3 (tokenizer.json, "Split" before "ByteLevel").
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 1024, *, pretokenizer: Literal["bytelevel", "qwen"] = "bytelevel"
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of at most ``vocab_size`` ids (special and markup tokens included) on
    ``texts``. Every byte has a token, so any string round-trips: ``decode(encode(s)) == s``.
    Deterministic for the same texts and size."""
    if vocab_size < 256 + len(SPECIAL_TOKENS) + len(MARKUP_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the byte alphabet plus special tokens")
    backend = Tokenizer(models.BPE())
    if pretokenizer == "qwen":
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(MARKUP_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(MARKUP_TOKENS)
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer
