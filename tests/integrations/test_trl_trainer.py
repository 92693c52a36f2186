"""EchoGRPOTrainer: TRL's GRPO loss and gradients at λ = 0, + λ·∇CE otherwise, the env mask of a real
multi-turn episode in a real sandbox, a 3-step run, and its bad-input errors."""

from __future__ import annotations

import copy
import importlib.metadata

import pytest
import torch
from trl import GRPOTrainer
from trl_helpers import MARKER, ScriptedFirstTurn, cpu_args, task_rows, tiny_tool_model

import echo_rl.integrations.trl as echo_trl
from echo_rl.integrations.environment import EchoEnvironment, MissingFieldError
from echo_rl.integrations.trl import EchoGRPOTrainer, TRLVersionError, environment_class
from echo_rl.objective.logprobs import full_logits_logprobs

torch.set_num_threads(1)


def _reward(completions, **kwargs):
    return [0.0] * len(completions)


def _inputs(tokenizer, seed: int = 0) -> dict:
    """A hand-made TRL batch: 4 completions of 12 tokens after a 5-token prompt; tokens 3..6 of rows 0 and 2
    are tool output (tool_mask 0), row 3 is padded after 8 tokens, advantages mixed."""
    g = torch.Generator().manual_seed(seed)
    vocab = len(tokenizer)
    completion_mask = torch.ones(4, 12, dtype=torch.long)
    completion_mask[3, 8:] = 0
    tool_mask = torch.ones(4, 12, dtype=torch.long)
    tool_mask[[0, 2], 3:7] = 0
    return {
        "prompt_ids": torch.randint(0, vocab, (4, 5), generator=g),
        "prompt_mask": torch.ones(4, 5, dtype=torch.long),
        "completion_ids": torch.randint(0, vocab, (4, 12), generator=g),
        "completion_mask": completion_mask,
        "tool_mask": tool_mask,
        "advantages": torch.tensor([1.0, -0.5, 0.3, -0.8]),
        "num_items_in_batch": completion_mask.sum(),
    }


def _loss_and_grads(trainer, inputs):
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in trainer.model.parameters()]


def _pair(tmp_path, temperature: float, **echo_kwargs):
    model, tokenizer = tiny_tool_model()
    args = cpu_args(tmp_path, temperature=temperature)
    rows = task_rows()
    trl = GRPOTrainer(model=copy.deepcopy(model), processing_class=tokenizer, args=args, reward_funcs=_reward,
                      train_dataset=rows)
    echo = EchoGRPOTrainer(model=copy.deepcopy(model), processing_class=tokenizer, args=args, reward_funcs=_reward,
                           train_dataset=rows, **echo_kwargs)
    return trl, echo, model, tokenizer


def test_lambda_zero_gives_exactly_trls_grpo_loss_and_gradients(tmp_path):
    trl, echo, _, tokenizer = _pair(tmp_path, 0.7, env_lambda=0.0)
    inputs = _inputs(tokenizer)
    loss_trl, grads_trl = _loss_and_grads(trl, inputs)
    loss_echo, grads_echo = _loss_and_grads(echo, inputs)
    assert torch.equal(loss_trl, loss_echo)
    assert all(torch.equal(a, b) for a, b in zip(grads_trl, grads_echo))


def _reference_env_ce(model, inputs, temperature: float) -> torch.Tensor:
    """Per-sequence env CE from the full logits (the computation the trainer must not need)."""
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    logprobs = full_logits_logprobs(model, input_ids, attention, temperature).logprobs[:, 5:]
    env = (inputs["completion_mask"] * (1 - inputs["tool_mask"])).float()
    return ((-logprobs * env).sum(1) / env.sum(1).clamp(min=1)).mean()


@pytest.mark.parametrize("env_temperature", ["sampling", 1.0])
def test_gradient_is_grpos_plus_lambda_times_the_env_ce_gradient(tmp_path, env_temperature):
    lam, temperature = 0.5, 0.7
    trl, echo, model, tokenizer = _pair(tmp_path, temperature, env_lambda=lam, env_temperature=env_temperature)
    inputs = _inputs(tokenizer)
    loss_trl, grads_trl = _loss_and_grads(trl, inputs)
    loss_echo, grads_echo = _loss_and_grads(echo, inputs)
    tau = temperature if env_temperature == "sampling" else 1.0
    reference = copy.deepcopy(model)
    ce = _reference_env_ce(reference, inputs, tau)
    ce.backward()
    assert ce.item() > 1.0
    assert loss_echo.item() == pytest.approx(loss_trl.item() + lam * ce.item(), rel=1e-5)
    for g_trl, g_echo, p in zip(grads_trl, grads_echo, reference.parameters()):
        expected = g_trl + lam * p.grad
        assert torch.allclose(g_echo, expected, rtol=1e-4, atol=1e-6)
    # the env term really moved the gradient (a trainer that ignored λ fails here)
    assert max((a - b).abs().max().item() for a, b in zip(grads_trl, grads_echo)) > 1e-4


def test_env_mask_covers_exactly_the_tool_output_of_a_real_sandbox_episode(tmp_path):
    model, tokenizer = tiny_tool_model()
    trainer = ScriptedFirstTurn(model=model, processing_class=tokenizer, args=cpu_args(tmp_path),
                                train_dataset=task_rows(), environment_factory=environment_class(command_timeout_s=10))
    batch = [trainer.train_dataset[i // 2] for i in range(4)]
    out = trainer._generate_and_score_completions(batch)
    env_mask = trainer.env_mask(out)
    assert len({id(e) for e in trainer.environments}) == 4  # one sandboxed environment per rollout
    for row in range(4):
        ids = out["completion_ids"][row]
        # what the tool returned, exactly as the chat template renders it after the tool call
        rendered = f"{MARKER}\nlogs\n(exit_code=0)"
        suffix = trainer._get_tool_suffix_ids([{"role": "tool", "name": "run_command", "content": rendered}])
        assert ids[env_mask[row]].tolist() == suffix
        # the masked span is contiguous and right after the scripted tool call
        positions = env_mask[row].nonzero().flatten()
        assert positions.tolist() == list(range(int(positions[0]), int(positions[0]) + len(suffix)))
        action_text = tokenizer.decode(ids[out["completion_mask"][row].bool() & ~env_mask[row]])
        assert MARKER in action_text and "exit_code" not in action_text  # the command, never its output


@pytest.mark.slow
def test_three_step_multi_turn_run_trains(tmp_path):
    model, tokenizer = tiny_tool_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = ScriptedFirstTurn(model=model, processing_class=tokenizer, args=cpu_args(tmp_path, max_steps=3),
                                train_dataset=task_rows(), environment_factory=environment_class(command_timeout_s=10),
                                env_lambda=0.05)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "echo/env_tokens" in entry]
    assert len(logs) == 3 and all(entry["echo/env_tokens"] > 0 for entry in logs)
    assert all(0 < entry["echo/env_ce"] < 20 for entry in logs)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not EchoEnvironment._live or all(e._sandbox is None for e in EchoEnvironment._live)


def test_a_dataset_without_the_task_field_fails_at_construction(tmp_path):
    model, tokenizer = tiny_tool_model()
    rows = task_rows().remove_columns("task")
    with pytest.raises(MissingFieldError, match="train_dataset: has no 'task' column"):
        EchoGRPOTrainer(model=model, processing_class=tokenizer, args=cpu_args(tmp_path), train_dataset=rows,
                        environment_factory=EchoEnvironment)
    with pytest.raises(ValueError, match="'task' field"):
        EchoEnvironment().reset(prompt="no task here")


def test_trl_missing_or_outside_the_tested_range_is_one_clear_import_error(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.15.2")
    with pytest.raises(TRLVersionError, match=r"TRL 1.15.2 is installed; .* trl>=1.16.0,<1.17"):
        echo_trl._check_trl()

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(ImportError, match=r"needs TRL: pip install 'echo-rl\[trl\]'"):
        echo_trl._check_trl()
    assert TRLVersionError.exit_code == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"env_lambda": -1.0}, "env_lambda"), ({"env_normalizer": "observation"}, "env_normalizer"),
     ({"env_temperature": 0}, "env_temperature")],
)
def test_bad_trainer_options_raise_value_errors(tmp_path, kwargs, message):
    model, tokenizer = tiny_tool_model()
    with pytest.raises(ValueError, match=message):
        EchoGRPOTrainer(model=model, processing_class=tokenizer, args=cpu_args(tmp_path), reward_funcs=_reward,
                        train_dataset=task_rows(), **kwargs)
