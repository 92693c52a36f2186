"""Shared pieces of the TRL integration tests: the tiny Qwen3 with a tool-calling chat template, a GRPOConfig
for CPU, and a scripted first turn (a random tiny model never writes a tool call by itself)."""

from __future__ import annotations

import os

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from datasets import Dataset  # noqa: E402
from trl import GRPOConfig  # noqa: E402
from trl.chat_template_utils import qwen3_chat_template  # noqa: E402

from echo_rl.integrations.trl import EchoGRPOTrainer  # noqa: E402
from echo_rl.models.load import load_policy_model  # noqa: E402

MARKER = "marker-4217"
TOOL_CALL = '<tool_call>\n{"name": "run_command", "arguments": {"command": "echo ' + MARKER + '; ls"}}\n</tool_call>'


def tiny_tool_model():
    """The tiny Qwen3 and its tokenizer, with TRL's Qwen3 chat template (tool calls, a response parser)."""
    model, tokenizer = load_policy_model("tiny")
    tokenizer.chat_template = qwen3_chat_template
    return model, tokenizer


def cpu_args(tmp_path, **overrides) -> GRPOConfig:
    settings = dict(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=96,
        max_steps=1,
        learning_rate=5e-5,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        max_tool_calling_iterations=1,
        bf16=False,  # TRL defaults to bf16 autocast (on CPU too): fp32, as echo-rl on CPU
        gradient_checkpointing=False,
    )
    return GRPOConfig(**(settings | overrides))


def task_rows(n: int = 2) -> Dataset:
    return Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "Solve the task."}], "task": f"log_count:{i}"} for i in range(n)]
    )


class ScriptedFirstTurn(EchoGRPOTrainer):
    """Every rollout's first turn is ``TOOL_CALL`` (then <|im_end|>); the turns after a tool result are the
    model's own samples. Everything else — the tool loop, the sandbox, the masks, the loss — is TRL's and ours."""

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if num_generations == 1:  # a turn after a tool result
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, 1, has_tool_images)
        ids = self.processing_class.encode(TOOL_CALL + "<|im_end|>", add_special_tokens=False)
        return [list(ids) for _ in prompt_ids], None
