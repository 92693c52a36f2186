"""Config files and command-line overrides, for any pydantic model (the run config, the demo config).

    cfg = load_model(RunConfig, read_yaml("configs/tiny.yaml"), ["train.steps=3"], "configs/tiny.yaml")

A config is a YAML mapping; ``key.sub=value`` overrides change it (the value parsed as YAML: ``1e-6``,
``true``, ``[1,2]``) before it is validated. Every problem is a one-line :class:`~echo_rl.errors.UserError`
naming the file (``source``) and the field: ``configs/x.yaml (with overrides): train.steps: Input should be
greater than or equal to 1``; an unknown key reads ``no such field``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from echo_rl.config import RunConfig
from echo_rl.errors import UserError

Model = TypeVar("Model", bound=BaseModel)


def format_validation_error(err: ValidationError, source: str) -> str:
    """``SOURCE: dotted.field: message`` for the first error (an unknown key: ``no such field``)."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<root>"
    message = "no such field" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{source}: {field}: {message}"


def validate(model: type[Model], data: dict[str, Any], source: str) -> Model:
    """``data`` validated into ``model``; a problem is a one-line :class:`UserError` naming ``source`` and the
    field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, source)) from None


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``dotted.key=value`` override to a nested dict, parsing the value as YAML."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override {override!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"override {override!r}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Apply a mapping ``{"dotted.key": value}`` of overrides (as written in a YAML file) to ``data``."""
    for key, value in overrides.items():
        apply_override(data, f"{key}={json.dumps(value)}")


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in changes.items():
        both_maps = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both_maps else value
    return merged


def with_changes(model: Model, changes: dict[str, Any]) -> Model:
    """``model`` with ``changes`` laid over its fields (:func:`merge`: sections merge key by key), validated
    again (a pydantic ``ValidationError`` when the result is not valid)."""
    return type(model).model_validate(merge(model.model_dump(mode="json"), changes))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for a missing file or bad YAML."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such config file", where=str(path))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise UserError(f"{line}invalid YAML ({getattr(err, 'problem', err)})", where=str(path)) from None
    if not isinstance(data, dict):
        raise UserError("top level must be a mapping", where=str(path))
    return data


def read_extending_yaml(path: str | Path, builtins: Mapping[str, Callable[[], dict[str, Any]]]) -> dict[str, Any]:
    """A YAML mapping that may hold only what differs from a base: ``extends: NAME`` (a key of ``builtins``,
    whose function gives the base) or ``extends: OTHER.yaml`` (relative to this file, itself read this way);
    the file is merged over its base (:func:`merge`). Top-level keys starting with ``_`` only hold YAML
    anchors for the rest of the file and are dropped."""
    data = {key: value for key, value in read_yaml(path).items() if not key.startswith("_")}
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        names = " or ".join(repr(name) for name in builtins)
        raise UserError(f"extends: must be {names} or the path of another config", where=str(path))
    if parent in builtins:
        return merge(builtins[parent](), data)
    target = Path(path).parent / parent
    if target.resolve() == Path(path).resolve():
        raise UserError("extends: a config cannot extend itself", where=str(path))
    return merge(read_extending_yaml(target, builtins), data)


def split_args(args: Iterable[str]) -> tuple[str | None, list[str]]:
    """Command-line ``[CONFIG] [key.sub=value …]`` as (the CONFIG path or None, the overrides)."""
    overrides = list(args)
    path = overrides.pop(0) if overrides and "=" not in overrides[0] else None
    stray = [arg for arg in overrides if "=" not in arg]
    if stray:
        raise UserError(f"unexpected argument {stray[0]!r}: overrides look like key.sub=value")
    return path, overrides


def load_model(model: type[Model], data: dict[str, Any], overrides: Iterable[str], source: str) -> Model:
    """``data`` (read from ``source``) with ``overrides`` applied, validated into ``model``; errors name
    ``source`` (``… (with overrides)`` when there are some) and the field."""
    overrides = list(overrides)
    for override in overrides:
        apply_override(data, override)
    return validate(model, data, source + (" (with overrides)" if overrides else ""))


def dump_config(cfg: BaseModel) -> str:
    """The config as YAML, every field written out (what a run directory stores next to its outputs; the demo's
    ``OUT/demo.yaml``); non-ASCII text (``λ`` in a label) is written as itself."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a plain dict into a :class:`~echo_rl.config.RunConfig`; errors name ``source`` and the field."""
    return validate(RunConfig, data, source)


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> RunConfig:
    """Load a run config file (or the defaults when ``path`` is None) and apply ``key.sub=value`` overrides."""
    data = read_yaml(path) if path is not None else {}
    return load_model(RunConfig, data, overrides, str(path) if path is not None else "<defaults>")


def load_config_args(args: Iterable[str], base: dict[str, Any] | None = None) -> RunConfig:
    """Resolve command-line style ``[CONFIG] [key.sub=value …]``: the first argument without ``=`` is a
    YAML file; without one, ``base`` (or the defaults) is the starting point."""
    path, overrides = split_args(args)
    if path is not None or base is None:
        return load_config(path, overrides)
    return load_model(RunConfig, dict(base), overrides, "<defaults>")
