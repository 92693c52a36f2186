from pathlib import Path

import pytest
import yaml

from echo_rl.configfile import load_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
# demo configs (echo-rl demo CONFIG) hold a list of methods or extend one that does: see test_demo.py
DEMO_CONFIGS = [path for path in CONFIGS if {"methods", "extends"} & set(yaml.safe_load(path.read_text()))]
CONFIGS = [path for path in CONFIGS if path not in DEMO_CONFIGS]


def test_a_tiny_config_exists():
    assert any("tiny" in path.name for path in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    load_config(path)


@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_demo_config_validates(path):
    from echo_rl.demo.config import load_demo_config

    load_demo_config([str(path)])
