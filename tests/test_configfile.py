"""The one config-file machinery, over any pydantic model: extends, overrides, one-line errors naming file and field."""

import pytest
from pydantic import Field

from echo_rl.config import Section
from echo_rl.configfile import load_model, read_extending_yaml, read_yaml, split_args
from echo_rl.demo.config import load_demo_config
from echo_rl.errors import UserError


class Inner(Section):
    steps: int = Field(1, ge=1)


class Outer(Section):
    name: str = "x"
    inner: Inner = Inner()


def test_any_model_loads_with_overrides_and_a_bad_field_is_one_line_naming_file_and_field(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("name: a\ninner: {steps: 2}\n")
    cfg = load_model(Outer, read_yaml(path), ["inner.steps=5"], str(path))
    assert (cfg.name, cfg.inner.steps) == ("a", 5)
    with pytest.raises(UserError) as err:
        load_model(Outer, read_yaml(path), ["inner.steps=0"], str(path))
    assert str(err.value).startswith(f"{path} (with overrides): inner.steps: ") and "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"o.yaml: inner.stepz: no such field$"):
        load_model(Outer, {"inner": {"stepz": 1}}, [], str(path))


def test_extends_merges_over_a_builtin_or_a_file_and_drops_anchor_keys(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: base\n_anchors: {k: 1}\ninner: {steps: 3}\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    data = read_extending_yaml(tmp_path / "b.yaml", {"base": lambda: {"name": "base", "inner": {"steps": 1}}})
    assert data == {"name": "b", "inner": {"steps": 3}}
    (tmp_path / "c.yaml").write_text("extends: c.yaml\n")
    with pytest.raises(UserError, match="cannot extend itself"):
        read_extending_yaml(tmp_path / "c.yaml", {})


def test_split_args_takes_a_leading_path_and_refuses_a_stray_word():
    assert split_args(["c.yaml", "a.b=1"]) == ("c.yaml", ["a.b=1"])
    assert split_args(["a.b=1"]) == (None, ["a.b=1"])
    with pytest.raises(UserError, match="unexpected argument 'oops'"):
        split_args(["c.yaml", "oops"])


def test_the_demo_config_errors_name_the_file_and_the_field(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("extends: demo\nsft: {max_stepz: 3}\n")
    with pytest.raises(UserError) as err:
        load_demo_config((str(path),))
    assert str(err.value) == f"{path}: sft.max_stepz: no such field"
    with pytest.raises(UserError) as err:
        load_demo_config((str(path), "sft.max_stepz=null"), quick=True)
    assert str(err.value).startswith(f"{path} (--quick) (with overrides): sft.max_stepz")
