"""Validate task.toml files against Harbor's own task model (``harbor.models.task.config.TaskConfig``).

Runs in the Python 3.12 environment that scripts/install.sh makes for the ``harbor`` package (it does not
import echo-rl):

    ~/.cache/echo-rl/harbor-venv/bin/python scripts/harbor_check_tasks.py out/tasks/*/task.toml

Prints one JSON object ``{path: null | "error"}``; exits 1 when any file fails. A file fails when Harbor's
model rejects it or when it holds a key Harbor's model does not know (Harbor ignores those silently, so
a misspelt field would otherwise pass). ``metadata`` is free-form in Harbor and is not checked.
"""

from __future__ import annotations

import json
import sys
import tomllib
from typing import Any

from harbor.models.task.config import TaskConfig
from pydantic import BaseModel, ValidationError

FREE_FORM = {"metadata"}


def unknown_keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the keys of ``data`` that ``model`` (recursively, through sub-models) has no field for."""
    found = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            found.append(prefix + key)
            continue
        sub = field.annotation
        nested = next((t for t in getattr(sub, "__args__", (sub,)) if isinstance(t, type) and issubclass(t, BaseModel)),
                      None)
        if key not in FREE_FORM and nested is not None and isinstance(value, dict):
            found += unknown_keys(nested, value, f"{prefix}{key}.")
    return found


def check(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        TaskConfig.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError) as err:
        return str(err)
    except ValidationError as err:
        first = err.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    unknown = unknown_keys(TaskConfig, data)
    return f"unknown to Harbor: {', '.join(unknown)}" if unknown else None


def main(paths: list[str]) -> int:
    results = {path: check(path) for path in paths}
    print(json.dumps(results))
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
