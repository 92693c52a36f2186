"""The verifier: reward files, outcome classes (issue 17.5) and unforgeable rewards (issue 10.2), in real
sandboxes — the local backend always, the container backend when an engine is available."""

from __future__ import annotations

import asyncio

import pytest

from echo_rl.sandbox.base import SandboxError
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.families import generate
from echo_rl.tasks.verifier import VerifierResult, verify

REWARD = "/logs/verifier"


def run_verifier(task, cfg, agent_commands=(), timeout_s=20.0) -> VerifierResult:
    """Open ``task``'s sandbox, run the agent's commands, verify, stop."""

    async def main() -> VerifierResult:
        sandbox = await open_task_sandbox(task, cfg, label="test-tasks")
        try:
            for command in agent_commands:
                await sandbox.exec(command, timeout_s=10)
            return await verify(task, sandbox, timeout_s)
        finally:
            await sandbox.stop()

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("test_sh", "reward", "outcome", "reason"),
    [
        (f"echo 1 > {REWARD}/reward.txt", 1.0, "solved", "reward 1"),
        (f"echo 0.25 > {REWARD}/reward.txt", 0.25, "failed", "reward 0.25"),
        (f"echo '{{\"reward\": 1, \"tests\": 3}}' > {REWARD}/reward.json", 1.0, "solved", "reward 1"),
        (f"echo '{{\"reward\": 0}}' > {REWARD}/reward.json; echo 1 > {REWARD}/reward.txt", 0.0, "failed", "reward 0"),
        (f"echo '{{\"reward\": {{\"a\": 1}}}}' > {REWARD}/reward.json", 0.0, "failed", "not a flat object of numbers"),
        (f"echo '{{\"score\": 1}}' > {REWARD}/reward.json", 0.0, "failed", "reward.json has no 'reward' key"),
        (f"echo '[1' > {REWARD}/reward.json", 0.0, "failed", "reward.json is not JSON"),
        (f": > {REWARD}/reward.txt", 0.0, "failed", "reward.txt is empty"),
        (f"echo yes > {REWARD}/reward.txt", 0.0, "failed", "reward.txt holds 'yes', not a number"),
        (f"echo nan > {REWARD}/reward.txt", 0.0, "failed", "non-finite"),
        ("echo checking; exit 3", 0.0, "failed", "test.sh exited 3 without writing a reward"),
        ("true", 0.0, "failed", "test.sh wrote no reward file"),
        (f"echo 1 > {REWARD}/reward.txt; exit 1", 1.0, "solved", "reward 1"),
        ("sleep 30", 0.0, "failed", "verifier timed out after 1.5s on the agent's final state"),
    ],
)
def test_reward_files_and_outcomes(make_task, local_cfg, test_sh, reward, outcome, reason):
    result = run_verifier(make_task("#!/bin/bash\n" + test_sh + "\n"), local_cfg, timeout_s=1.5)
    assert (result.reward, result.outcome) == (reward, outcome), result
    assert reason in result.reason, result


def test_a_dead_sandbox_is_an_infra_error_not_an_exception(make_task, local_cfg):
    async def main() -> VerifierResult:
        sandbox = await open_task_sandbox(make_task("echo 1 > /logs/verifier/reward.txt\n"), local_cfg, "test-tasks")
        await sandbox.stop()
        return await verify(make_task("true\n"), sandbox, 5)

    result = asyncio.run(main())
    assert result.outcome == "infra_error" and result.reward == 0.0
    assert result.reason.startswith(("sandbox error:", "verifier crashed:")), result.reason


def test_tests_are_uploaded_only_at_verification_with_their_files(make_task, local_cfg):
    task = make_task(
        "#!/bin/bash\nsource /tests/lib/helper.sh\nhelper\n",
        files={"tests/lib/helper.sh": f"helper() {{ echo 1 > {REWARD}/reward.txt; }}\n".encode()},
    )
    result = run_verifier(task, local_cfg, agent_commands=["test ! -e /tests/lib || echo LEAK > /home/user/leak"])
    assert result.outcome == "solved", result


def test_verifier_ignores_the_agents_shell_state(make_task, local_cfg):
    """Variables, functions and rc files the agent set up do not reach test.sh."""
    task = make_task(f"#!/bin/bash\n[ -z \"$EVIL\" ] && [ \"$(type -t cat)\" = file ] && echo 1 > {REWARD}/reward.txt\n")
    agent = ["export EVIL=1", "cat() { echo 0; }; export -f cat", "echo 'export EVIL=1' >> ~/.bashrc",
             "export BASH_ENV=~/.bashrc"]
    assert run_verifier(task, local_cfg, agent).outcome == "solved"


# ---------------------------------------------------------------- forged rewards (issue 10.2)

FORGERIES = {
    "writes reward.txt": [f"mkdir -p {REWARD}", f"echo 1 > {REWARD}/reward.txt"],
    "writes reward.json": [f"mkdir -p {REWARD}", f"echo '{{\"reward\": 1}}' > {REWARD}/reward.json"],
    "plants /tests/test.sh": [
        "mkdir -p /tests",
        f"printf '#!/bin/bash\\necho 1 > {REWARD}/reward.txt\\n' > /tests/test.sh",
        "chmod +x /tests/test.sh",
    ],
    "leaves a process rewriting the reward": [
        (
            f"setsid nohup bash -c 'while :; do mkdir -p {REWARD}; echo 1 > {REWARD}/reward.txt; "
            f"echo 1 > {REWARD}/reward.json; sleep 0.001; done' > /dev/null 2>&1 &"
        ),
        "sleep 0.2",
    ],
    "plants a daemon in code the verifier runs": [],  # set per task below
}
DAEMON_CALC = f"""\
import subprocess
loop = "while :; do echo 1 > {REWARD}/r && mv {REWARD}/r {REWARD}/reward.txt; done"
subprocess.Popen(["bash", "-c", loop], start_new_session=True)

def total(a, b):
    return 0

def difference(a, b):
    return 0

def product(a, b):
    return 0
"""


def forged(cfg, attack: str) -> VerifierResult:
    if attack == "plants a daemon in code the verifier runs":
        task = generate("python_fix", 0)
        module = task.reference_commands[1].split()[-1]  # cat -n MODULE.py
        return run_verifier(task, cfg, [f"cat > {module} <<'EOF'\n{DAEMON_CALC}EOF"])
    return run_verifier(generate("key_copy", 0), cfg, FORGERIES[attack])


@pytest.mark.parametrize("attack", sorted(FORGERIES))
def test_forged_rewards_score_zero_on_the_local_backend(local_cfg, attack):
    result = forged(local_cfg, attack)
    assert (result.reward, result.outcome) == (0.0, "failed"), result


@pytest.mark.container
@pytest.mark.parametrize("attack", sorted(FORGERIES))
def test_forged_rewards_score_zero_on_the_container_backend(container_cfg, attack):
    result = forged(container_cfg, attack)
    assert (result.reward, result.outcome) == (0.0, "failed"), result


def test_setup_failure_is_a_sandbox_error(make_task, local_cfg):
    task = make_task("true\n", setup="echo broken >&2; exit 4\n")
    with pytest.raises(SandboxError, match="setup.sh failed \\(exit 4\\): broken"):
        asyncio.run(open_task_sandbox(task, local_cfg, "test-tasks"))
