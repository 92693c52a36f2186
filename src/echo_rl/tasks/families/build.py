"""Turn a family's :class:`~echo_rl.tasks.families.base.Spec` into a Harbor :class:`Task`.

The initial state is built by ONE script, ``environment/setup.sh``, run in the workdir: the local backend
runs it inside the sandbox, the exported Dockerfile copies and runs it, so both backends start from the
same files.

The Dockerfile is portable: its first step (:data:`TOOLS_PRELUDE`, the same line in every generated task,
so an engine's layer cache builds it once per base image) installs with apt-get the tools that
``setup.sh``, the checks and the reference solutions run beyond a bare ``debian:bookworm-slim``
(:data:`REQUIRED_TOOLS`), and skips that when the base image has them already. The local backend never
reads the Dockerfile: it runs on the host's ``/usr``, which must provide the same tools.

The verifier (``tests/test.sh``) writes 1 to ``/logs/verifier/reward.txt`` when ``tests/check.py`` passes
and 0 otherwise; the expected values live only in ``tests/``, which the agent never sees.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from echo_rl.tasks.families.base import FAMILIES, Rng, Spec
from echo_rl.tasks.task import DOCKERFILE, SETUP_SCRIPT, SOLUTION_SCRIPT, TEST_SCRIPT, Task, solve_script

WORKDIR = "/home/user"
DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
# Debian package -> the command it provides, for everything beyond debian:bookworm-slim that generated
# tasks run (checks: python3; the git families: git; make_target: make).
REQUIRED_TOOLS = {"python3": "python3", "git": "git", "make": "make"}
TOOLS_PRELUDE = (
    "RUN for tool in " + " ".join(REQUIRED_TOOLS.values()) + "; do command -v $tool >/dev/null || missing=1; done;"
    " if [ -n \"$missing\" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
    " --no-install-recommends " + " ".join(REQUIRED_TOOLS) + " >/dev/null && rm -rf /var/lib/apt/lists/*; fi\n"
)
VERIFIER_TIMEOUT_S = 60.0
AGENT_TIMEOUT_S = 600.0
CHECKLIB = Path(__file__).with_name("checklib.py").read_bytes()

TEST_SH = f"""#!/bin/bash
# Final-state verifier: reward 1 when /tests/check.py passes, 0 otherwise.
cd {WORKDIR} || exit 1
if python3 -I -B -S /tests/check.py; then reward=1; else reward=0; fi
echo "$reward" > /logs/verifier/reward.txt
"""


def setup_script(spec: Spec) -> str:
    """The shell script that creates the initial state in the current directory."""
    out = ["#!/bin/bash", "# Builds the task's initial state in the working directory.", "set -euo pipefail"]
    folders = sorted({str(Path(path).parent) for path in spec.files} - {"."})
    if folders:
        out.append("mkdir -p " + " ".join(shlex.quote(folder) for folder in folders))
    for path, content in spec.files.items():
        out.append(f"printf '%s' {shlex.quote(content)} > {shlex.quote(path)}")
    return "\n".join(out + spec.setup) + "\n"


def dockerfile(base_image: str) -> str:
    return (
        f"FROM {base_image}\n"
        + TOOLS_PRELUDE
        + "COPY setup.sh /tmp/echo-rl-setup.sh\n"
        f"RUN mkdir -p {WORKDIR} /tests /logs/verifier && cd {WORKDIR} && bash /tmp/echo-rl-setup.sh"
        " && rm /tmp/echo-rl-setup.sh\n"
        f"WORKDIR {WORKDIR}\n"
    )


def check_script(spec: Spec) -> str:
    head = ["import sys", "", 'sys.path.insert(0, "/tests")', "from checklib import *  # noqa: E402,F403", ""]
    return "\n".join(head + spec.checks) + "\n"


def generate(name: str, seed: int, base_image: str = DEFAULT_BASE_IMAGE) -> Task:
    """Task ``{name}-{seed}`` of the registered family ``name``; the same (name, seed) always gives the
    same task. Raises KeyError for an unknown family."""
    fam = FAMILIES[name]
    spec = fam.spec(Rng(name, seed))
    task_id = f"{name}-{seed}"
    config = {
        "schema_version": "1.1",
        "task": {"name": f"echo-rl/{task_id}", "description": fam.description},
        "metadata": {
            "family": name,
            "domain": fam.domain,
            "difficulty": spec.difficulty,
            "seed": seed,
            "generator": "echo-rl",
        },
        "verifier": {"timeout_sec": VERIFIER_TIMEOUT_S},
        "agent": {"timeout_sec": AGENT_TIMEOUT_S},
        "environment": {
            "build_timeout_sec": 600.0,
            "cpus": 1,
            "memory_mb": 2048,
            "storage_mb": 2048,
            "allow_internet": False,
            "workdir": WORKDIR,
        },
    }
    files = {
        DOCKERFILE: dockerfile(base_image).encode(),
        SETUP_SCRIPT: setup_script(spec).encode(),
        TEST_SCRIPT: TEST_SH.encode(),
        "tests/check.py": check_script(spec).encode(),
        "tests/checklib.py": CHECKLIB,
        SOLUTION_SCRIPT: solve_script(spec.commands, WORKDIR).encode(),
    }
    executables = frozenset({SETUP_SCRIPT, TEST_SCRIPT, SOLUTION_SCRIPT})
    return Task(task_id, spec.instruction.strip() + "\n", config, files, executables)
