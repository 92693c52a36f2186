"""InterCode-Bash as Harbor tasks: the 300 NL2Bash queries with gold commands and the five file-system
set-ups that the ``icalfa`` package (InterCode-ALFA, MIT) ships.

    tasks = intercode_tasks("debian:bookworm-slim")          # 300 Task objects
    summary = import_intercode("tasks/intercode", base_image)  # or: echo-rl tasks import intercode-bash --out DIR

Only icalfa's data files are read (``assets/datasets/nl2bash_fs_N.json``, ``assets/docker/setup_nl2b_fs_N.sh``),
so ``pip install --no-deps icalfa==0.3.6`` is enough. Each query becomes one task:

    environment/setup.sh      the set-up script of its file system (run from /; the Dockerfile runs it too),
                              then a copy of the initial state (every path the diff covers)
    environment/Dockerfile    FROM the base image, python3 installed when missing, the set-up run at build
    instruction.md            the query, where the agent is, and where its answer goes (/tmp/answer.txt)
    tests/test.sh, check.py   InterCode's scoring against the gold command (see intercode_check)
    tests/gold.json           the gold command
    solution/solve.sh         the gold command (``bash -c``, as the verifier runs it), its output saved as the
                              answer (no turn markers: one turn)

InterCode ran set-ups 1-4 on ``ubuntu:noble`` with extra tools (tree, jq, imagemagick, dnsutils, …) and
set-up 5 on alpine under ``/bin/sh``; here every set-up runs on the sandbox's own base (the host's tools
in the local backend, ``--base-image`` in containers) under bash, and a gold command whose tool is missing
compares its "command not found" output.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

from echo_rl.errors import UserError
from echo_rl.tasks.importer import ImportSummary, write_imported
from echo_rl.tasks.intercode_check import EXCLUDED, INITIAL_COPY
from echo_rl.tasks.task import Task

SOURCE_NAME = "intercode-bash"
ICALFA_VERSION = "0.3.6"
SETUPS = (1, 2, 3, 4, 5)
DIFFICULTY = {0: "easy", 1: "medium", 2: "hard"}
CHECK_SCRIPT = Path(__file__).with_name("intercode_check.py").read_bytes()
ANSWER = "/tmp/answer.txt"

TEST_SH = """#!/bin/bash
# InterCode-Bash verifier: the agent's final state and answer against the gold command's (see check.py).
cd / || exit 1
python3 -I -B -S /tests/check.py
"""

INSTRUCTION = """{query}

You are in a bash shell in `/` of a Linux machine. Do this by running shell commands.
Your result is compared with a reference command's: the files it creates, changes or removes, and the
output it prints. Save the output (stdout and stderr) of the command that answers the task to
`{answer}`, for example `ls -l > {answer} 2>&1`. A task that only changes files needs no answer file.
"""

# Appended to each set-up: a copy of every top-level path the diff covers (mtimes kept), on which the
# verifier runs the gold command, as InterCode runs it in a second container built from the same image.
KEEP_INITIAL = f"""
# echo-rl: keep a copy of the initial state (mtimes included) for the verifier's gold run
rm -rf {INITIAL_COPY} && mkdir -p {INITIAL_COPY}
for path in /* /.[!.]*; do
    case "${{path#/}}" in {"|".join(sorted(EXCLUDED))}) continue ;; esac
    if [ -e "$path" ] || [ -L "$path" ]; then cp -a "$path" {INITIAL_COPY}/; fi
done
""".encode()

DOCKERFILE = """FROM {base_image}
RUN command -v python3 >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive \\
    apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*)
COPY setup.sh /tmp/echo-rl-setup.sh
RUN mkdir -p /tests /logs/verifier && cd / && bash /tmp/echo-rl-setup.sh && rm /tmp/echo-rl-setup.sh
WORKDIR /
"""


def icalfa_assets() -> Path:
    """The ``assets`` folder of the installed icalfa package (found without importing it: its
    ``__init__`` pulls docker, gymnasium and openai, none of which is needed for the data)."""
    spec = importlib.util.find_spec("icalfa")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the icalfa package is not installed: pip install --no-deps icalfa=={ICALFA_VERSION}",
                        where=SOURCE_NAME)
    assets = Path(next(iter(spec.submodule_search_locations))) / "assets"
    if not (assets / "datasets").is_dir():
        raise UserError(f"icalfa has no assets/datasets (expected icalfa {ICALFA_VERSION})", where=str(assets))
    return assets


def _queries(assets: Path, setup: int) -> list[dict[str, object]]:
    path = assets / "datasets" / f"nl2bash_fs_{setup}.json"
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"not readable as JSON ({type(err).__name__})", where=str(path)) from None
    for number, item in enumerate(items):
        if not (isinstance(item, dict) and isinstance(item.get("query"), str) and isinstance(item.get("gold"), str)):
            raise UserError(f"item {number} has no string query and gold", where=str(path))
    return items


def intercode_task(setup: int, index: int, item: dict[str, object], setup_script: bytes, base_image: str) -> Task:
    """The Harbor task of query ``index`` of file-system set-up ``setup``."""
    gold, query = str(item["gold"]), str(item["query"]).strip()
    name = f"intercode-bash-fs{setup}-{index:03d}"
    config = {
        "schema_version": "1.1",
        "task": {"name": f"intercode/bash-fs{setup}-{index:03d}", "description": query[:200]},
        "metadata": {
            "family": f"intercode_fs{setup}",
            "domain": "intercode",
            "difficulty": DIFFICULTY.get(item.get("difficulty"), "unknown"),  # type: ignore[arg-type]
            "source": f"icalfa {ICALFA_VERSION} nl2bash_fs_{setup}.json #{index}",
            "gold": gold,
            "gold2": str(item.get("gold2", "")),
        },
        "verifier": {"timeout_sec": 120.0},
        "agent": {"timeout_sec": 600.0},
        "environment": {"build_timeout_sec": 600.0, "allow_internet": False, "workdir": "/"},
    }
    files = {
        "environment/setup.sh": setup_script,
        "environment/Dockerfile": DOCKERFILE.format(base_image=base_image).encode(),
        "tests/test.sh": TEST_SH.encode(),
        "tests/check.py": CHECK_SCRIPT,
        "tests/gold.json": json.dumps({"gold": gold}).encode(),
        "solution/solve.sh": f"#!/bin/bash\ncd /\nbash -c {shlex.quote(gold)} > {ANSWER} 2>&1\n".encode(),
    }
    executables = frozenset({"tests/test.sh", "solution/solve.sh", "environment/setup.sh"})
    return Task(name, INSTRUCTION.format(query=query, answer=ANSWER), config, files, executables)


def intercode_tasks(base_image: str, setups: tuple[int, ...] = SETUPS) -> list[Task]:
    """Every query of the given file-system set-ups, in icalfa's order."""
    assets = icalfa_assets()
    tasks = []
    for setup in setups:
        script = (assets / "docker" / f"setup_nl2b_fs_{setup}.sh").read_bytes() + KEEP_INITIAL
        tasks += [intercode_task(setup, i, item, script, base_image) for i, item in enumerate(_queries(assets, setup))]
    return tasks


def import_intercode(out: str | Path, base_image: str) -> ImportSummary:
    """Write all InterCode-Bash tasks into ``out`` (new or empty) with an ``index.jsonl``."""
    summary = ImportSummary()
    write_imported(intercode_tasks(base_image), Path(out), summary)
    return summary
