"""The README's set-up on a fresh Debian: `bash scripts/install.sh` in a new container of the Debian 12 base
image, whose system Python 3.11 has no pip and refuses system-wide installs (PEP 668), then the two README
commands' programs: `echo-rl` from PATH and `.venv/bin/python -m pytest -q` (on one quick test file), then the
README's "Training, evaluation and reports" commands exactly as written there (SFT, GRPO, ECHO, resume, eval,
report on configs/tiny.yaml).

The container is privileged, as root on a fresh machine is: the sandboxes the README's commands start
(bubblewrap, per-sandbox tmpfs and cgroups) need the namespaces and mounts an unprivileged container
withholds. It gets the working tree (tracked and untracked, not ignored: what a clone holds) and what this
machine's own pip is configured with: its local wheel directory (the CPU build of torch lies there;
without it pip would fetch the CUDA build), its CA bundle (the registries are reached through a proxy that
host trusts) and pip's download cache; everything else comes from Debian's and PyPI's registries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from echo_rl.sandbox.engine import TOOLS_IMAGE

ROOT = Path(__file__).resolve().parents[1]
WHEELS = Path("/opt/wheels")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# A Debian 12 with its system Python, as a fresh machine has (the real debian:bookworm-slim has no python3).
IMAGE = TOOLS_IMAGE

SCRIPT = r"""
set -euo pipefail
! python3 -m pip --version 2>/dev/null || { echo "precondition: the image's Python has pip"; exit 90; }
test -f /usr/lib/python3.11/EXTERNALLY-MANAGED || { echo "precondition: no PEP 668 marker"; exit 91; }
mkdir /work && tar -C /work -xf /tree.tar && cd /work
bash scripts/install.sh
cd / && echo-rl --help >/dev/null && echo "echo-rl on PATH: $(command -v echo-rl)"
cd /work && .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_config.py
cd /work && bash -euo pipefail /readme-commands.sh && test -f runs/report/report.md && echo "README commands ran"
"""
README_SECTION = "## Training, evaluation and reports"


def readme_commands() -> str:
    """The first bash block of the README's training section, as written there."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(README_SECTION):]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start:section.index("```", start)]


def _tree_tar(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")
    existing = b"\0".join(f for f in files if f and (ROOT / f.decode()).is_file())
    tar = dest / "tree.tar"
    subprocess.run(["tar", "-C", str(ROOT), "--null", "-T", "-", "-cf", str(tar)], input=existing, check=True)
    return tar


@pytest.mark.slow
@pytest.mark.container
@pytest.mark.timeout(1800)  # an install from the registries, then six training/eval commands
def test_install_script_works_on_a_fresh_debian_without_pip(container_engine, tmp_path):
    if subprocess.run(["podman", "image", "exists", IMAGE]).returncode != 0:
        pytest.fail(f"no {IMAGE} image (scripts/setup-podman.sh makes it)")
    commands = tmp_path / "readme-commands.sh"
    commands.write_text(readme_commands())
    mounts = ["-v", f"{_tree_tar(tmp_path)}:/tree.tar:ro", "-v", f"{commands}:/readme-commands.sh:ro"]
    env = []
    if WHEELS.is_dir():
        mounts += ["-v", f"{WHEELS}:{WHEELS}:ro"]
        env += ["-e", f"PIP_FIND_LINKS={WHEELS}"]
    if CA_BUNDLE.is_file():
        mounts += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
        env += ["-e", f"PIP_CERT={CA_BUNDLE}"]
    cache = Path.home() / ".cache" / "pip"
    cache.mkdir(parents=True, exist_ok=True)
    mounts += ["-v", f"{cache}:/root/.cache/pip"]
    proc = subprocess.run(
        ["podman", "run", "--rm", "--privileged", *mounts, *env, IMAGE, "bash", "-c", SCRIPT],
        capture_output=True, text=True, timeout=1500,
    )
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert "echo-rl on PATH: /usr/local/bin/echo-rl" in proc.stdout, tail
    assert " passed" in proc.stdout, tail
    assert "README commands ran" in proc.stdout, tail


def test_the_readme_training_block_is_what_the_install_test_runs():
    commands = [line for line in readme_commands().splitlines() if line.strip()]
    assert commands[0].startswith("echo-rl sft") and commands[-1].startswith("echo-rl report")
    assert all(line.startswith("echo-rl ") and "..." not in line for line in commands)
