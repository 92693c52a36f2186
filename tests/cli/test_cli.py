from echo_rl import __version__

SUBCOMMANDS = ("sandbox", "tasks", "rollout", "train", "sft", "eval", "demo", "report")


def test_help_lists_subcommands(cli):
    result = cli("--help")
    assert result.code == 0
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.stdout


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and __version__ in result.stdout


def test_unknown_option_is_one_line_exit_2(cli):
    result = cli("train", "--bogus")
    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert "No such option '--bogus'" in result.stderr and "Traceback" not in result.stderr


def test_missing_config_file_is_one_line_exit_2(cli, tmp_path):
    result = cli("train", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "run"))
    assert result.code == 2
    assert result.stderr.strip() == f"echo-rl: error: {tmp_path / 'nope.yaml'}: no such config file"
    assert not (tmp_path / "run").exists(), "nothing may be written for a bad config"


def test_invalid_config_field_names_file_and_field(cli, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("objective:\n  env:\n    lam: -0.5\n")
    result = cli("train", str(config), "--out", str(tmp_path / "run"))
    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert f"{config}: objective.env.lam: Input should be greater than or equal to 0" in result.stderr
    assert not (tmp_path / "run").exists()


def test_debug_shows_traceback(cli, tmp_path):
    result = cli("--debug", "train", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "run"))
    assert result.code != 0 and "Traceback" in result.stderr
