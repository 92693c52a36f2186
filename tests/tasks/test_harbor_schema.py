"""Exported task.toml files against Harbor's own task model (``harbor`` 0.25.0 in the Python 3.12 venv that
scripts/install.sh makes), through scripts/harbor_check_tasks.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from echo_rl.tasks.families import FAMILIES
from echo_rl.tasks.families.build import generate
from echo_rl.tasks.harbor import write_task

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "harbor_check_tasks.py"
VENV = Path(os.environ.get("ECHO_RL_HARBOR_VENV", Path.home() / ".cache" / "echo-rl" / "harbor-venv"))


def harbor_check(paths: list[Path]) -> dict[str, str | None]:
    python = VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no Harbor environment at {VENV} (scripts/install.sh makes it where python3.12 exists)")
    proc = subprocess.run([str(python), str(SCRIPT), *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_every_family_exports_a_task_toml_harbor_accepts(tmp_path):
    paths = [write_task(generate(name, 0), tmp_path / name) / "task.toml" for name in sorted(FAMILIES)]
    assert harbor_check(paths) == {str(p): None for p in paths}


def test_the_check_rejects_a_wrong_type_and_a_key_harbor_does_not_know(tmp_path):
    wrong, unknown = tmp_path / "wrong.toml", tmp_path / "unknown.toml"
    wrong.write_text('schema_version = "1.1"\n[verifier]\ntimeout_sec = "long"\n')
    unknown.write_text('schema_version = "1.1"\n[environment]\ncpu = 1\n')
    result = harbor_check([wrong, unknown])
    assert result[str(wrong)].startswith("verifier.timeout_sec:")
    assert result[str(unknown)] == "unknown to Harbor: environment.cpu"
