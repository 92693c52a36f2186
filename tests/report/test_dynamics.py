"""Training dynamics from step records: first and last windows, zero-advantage share, the probe's means."""

import pytest

from echo_rl.report.dynamics import WINDOW, run_dynamics


def _records(steps: int, probe_every: int = 0) -> list[dict]:
    out = []
    for step in range(1, steps + 1):
        record = {"kind": "train", "step": step, "rollout/pass_rate": step / steps, "update/env_ce": 5.0 - step / 10,
                  "advantage/groups": 8.0, "advantage/groups_zero_advantage": 6.0 if step % 2 else 8.0}
        if probe_every and step % probe_every == 0:
            record |= {"update/grad_policy_norm": 0.2, "update/grad_env_norm": 4.0 + step,
                       "update/grad_env_to_policy": 0.5, "update/lambda_effective": 0.01, "update/grad_cosine": -0.1}
        out.append(record)
    return out


def test_first_and_last_windows_are_means_of_their_steps_not_of_the_run():
    dyn = run_dynamics(_records(40))
    first, last = dyn.pass_rate
    assert first == pytest.approx(sum(range(1, WINDOW + 1)) / WINDOW / 40)
    assert last == pytest.approx(sum(range(41 - WINDOW, 41)) / WINDOW / 40)
    assert dyn.env_ce_own == pytest.approx((5.0 - 0.55, 5.0 - 3.55))
    assert dyn.zero_advantage == pytest.approx(0.875)  # 6/8 and 8/8 alternating
    assert dyn.grad_policy is None and dyn.lambda_effective is None  # no probe ran


def test_a_short_run_splits_in_halves_and_the_probe_is_averaged_over_its_own_steps():
    dyn = run_dynamics(_records(6, probe_every=2))
    assert dyn.pass_rate == pytest.approx((2 / 6, 5 / 6))  # steps 1-3 and 4-6
    assert dyn.grad_env == pytest.approx((6 + 8 + 10) / 3)  # steps 2, 4 and 6 only
    assert (dyn.grad_policy, dyn.env_to_policy, dyn.lambda_effective, dyn.cosine) == pytest.approx((0.2, 0.5, 0.01, -0.1))


def test_a_verifier_free_run_has_no_pass_rate_or_advantages():
    records = [{k: v for k, v in r.items() if not k.startswith(("rollout/", "advantage/"))} for r in _records(4)]
    dyn = run_dynamics(records)
    assert dyn.pass_rate is None and dyn.zero_advantage is None and dyn.env_ce_own is not None


def test_the_gradient_ratio_leaves_out_probe_steps_without_a_policy_gradient():
    """All groups zero-advantage: ‖∇L_GRPO‖ = 0, and the logged ratio divides by ~0 (1e-12)."""
    records = _records(4, probe_every=1)
    records[0] |= {"update/grad_policy_norm": 0.0, "update/grad_env_to_policy": 1e10}
    dyn = run_dynamics(records)
    assert dyn.env_to_policy == pytest.approx(0.5) and dyn.grad_policy == pytest.approx(0.15)
