"""``echo-rl demo``: the config, the checkpoint selection, the report's statistics, and the whole --quick
pipeline run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import yaml

from echo_rl.config import RunConfig
from echo_rl.cpu_kernels import MKL_PINNING_VENDOR, cpu_vendor
from echo_rl.demo.config import (
    DEFAULT_CONFIG, DemoConfig, Selection, active_methods, load_demo_config, method_run, method_seeds,
)
from echo_rl.demo.prepare import Prepared, prepare_key
from echo_rl.demo.runs import run_key
from echo_rl.demo.sft import is_eligible, rank, sft_config, sft_key
from echo_rl.errors import UserError
from echo_rl.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


# -- config ---------------------------------------------------------------------------------------------------

def test_shipped_demo_config_is_the_embedded_default():
    assert yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()) == yaml.safe_load(DEFAULT_CONFIG.read_text())


def test_default_config_resolves_every_method():
    cfg = load_demo_config()
    assert isinstance(cfg, DemoConfig) and len(cfg.seeds) >= 2
    runs = {m.name: method_run(cfg, m, cfg.seeds[0]) for m in cfg.methods}
    assert {"grpo", "echo", "echo-paper", "env-only"} <= set(runs)
    assert all(isinstance(r, RunConfig) for r in runs.values())
    assert runs["grpo"].objective.algorithm == "grpo" and runs["grpo"].objective.env.lam == 0.0
    assert runs["echo-paper"].objective.env.lam == 0.05
    assert runs["echo-paper"].objective.env.balance.mode == "none"
    assert runs["echo"].objective.algorithm == "echo" and runs["echo"].objective.env.balance.mode == "adaptive"
    assert runs["env-only"].objective.algorithm == "env_only"
    # same starting point and seeds for every method: only the objective differs
    strip = lambda r: {k: v for k, v in r.model_dump().items() if k not in ("objective", "name")}
    assert all(strip(r) == strip(runs["grpo"]) for r in runs.values())
    # GRPO and ECHO by default; the paper's λ and env-only with --all-methods (all_methods=true)
    assert [m.name for m in active_methods(cfg)] == ["grpo", "echo"]
    assert [m.name for m in active_methods(load_demo_config(("all_methods=true",)))] == list(runs)
    seeds = {m.name: method_seeds(cfg, m) for m in cfg.methods}
    assert seeds["grpo"] == seeds["echo"] == seeds["env-only"] == cfg.seeds  # at least 2 seeds each
    assert seeds["echo-paper"] == cfg.seeds[: len(seeds["echo-paper"])]


@pytest.mark.parametrize("threads, workers, per_run", [(2, 2, 1), (4, 2, 2), (1, 2, 1), (2, 1, 2)])
def test_rl_runs_share_out_the_threads(threads, workers, per_run):
    """Runs trained side by side split the demo's threads: never more threads at once than ``threads``
    (two 2-thread runs on 2 cores oversubscribe them), at least one each."""
    cfg = load_demo_config((f"threads={threads}", f"rl_workers={workers}"))
    assert {method_run(cfg, m, 0).policy.threads for m in cfg.methods} == {per_run}


def test_the_rl_step_count_is_not_part_of_the_sft_stage():
    """Changing the RL runs' steps reuses SFT (cached by its run config): the stage's config holds its own
    step count, not the RL runs'."""
    from echo_rl.demo.prepare import Prepared
    from echo_rl.demo.sft import sft_config

    prepared = Prepared(Path("/nowhere"), {})
    default, fewer = (sft_config(load_demo_config(args), prepared, 300) for args in ((), ("run.train.steps=7",)))
    assert default == fewer and default.train.steps == load_demo_config().sft.max_steps


def test_the_sft_loop_stages_have_their_own_micro_batch_size():
    """Pre-training and SFT cut their batches into micro-batches of their own size (like-length rows, less
    padding), not the RL update's."""
    from echo_rl.demo.prepare import Prepared
    from echo_rl.demo.pretrain import pretrain_config
    from echo_rl.demo.sft import sft_config

    cfg = load_demo_config(("pretrain.micro_batch_size=2", "sft.micro_batch_size=8", "run.train.micro_batch_size=16"))
    assert pretrain_config(cfg, Path("/nowhere"), Path("/nowhere/sessions.jsonl"), 10).train.micro_batch_size == 2
    assert sft_config(cfg, Prepared(Path("/nowhere"), {}), 300).train.micro_batch_size == 8
    assert method_run(cfg, cfg.methods[0], 0).train.micro_batch_size == 16


def test_lr_decay_ends_at_the_stages_last_step():
    """``lr_decay`` (pre-training's default) makes a stage's LR fall to 0 at its own last step
    (``optim.decay_steps``); off (SFT's default), it stays."""
    from echo_rl.demo.prepare import Prepared
    from echo_rl.demo.pretrain import pretrain_config
    from echo_rl.demo.sft import sft_config

    cfg = load_demo_config(("pretrain.steps=120",))
    assert pretrain_config(cfg, Path("/nowhere"), Path("/nowhere/sessions.jsonl"), 10).optim.decay_steps == 120
    assert sft_config(cfg, Prepared(Path("/nowhere"), {}), 300).optim.decay_steps == 0


def test_overrides_quick_and_seeds():
    cfg = load_demo_config(("run.train.steps=7", "sft.max_steps=11"), quick=True, seeds=3)
    assert cfg.run.train.steps == 7 and cfg.sft.max_steps == 11
    assert cfg.seeds == [0, 1, 2]
    assert cfg.run.tasks.num_train == load_demo_config(quick=True).run.tasks.num_train
    assert load_demo_config(quick=True).budget_s <= 180


def test_the_echo_sweep_extends_the_demo_with_the_full_grid_against_grpo():
    cfg, demo = load_demo_config((str(ROOT / "configs" / "echo-sweep.yaml"),)), load_demo_config()
    assert cfg.run.sandbox == demo.run.sandbox and cfg.model == demo.model
    # from the demo's own start (pre-training, rehearsing SFT, its checkpoint selection), steps and workers
    assert cfg.pretrain == demo.pretrain and cfg.sft == demo.sft and cfg.rl_workers == demo.rl_workers
    assert cfg.run.optim == demo.run.optim and cfg.run.tasks == demo.run.tasks
    # the demo's RL steps too: the grid chooses the demo's ECHO arm for the demo's run length
    assert cfg.run.train == demo.run.train
    assert len(cfg.seeds) >= 3
    runs = {m.name: method_run(cfg, m, 0).objective for m in cfg.methods}
    assert runs.pop("grpo").algorithm == "grpo"
    grid = {(o.env.lam, o.env.balance.mode) for o in runs.values()}
    assert grid == {(lam, b) for lam in (0.005, 0.01, 0.05, 0.1) for b in ("none", "adaptive")}
    assert all(o.algorithm == "echo" for o in runs.values()) and not any(m.seeds for m in cfg.methods)
    assert all(o.grad_probe_every == 2 for o in runs.values())  # the mechanism, in every ECHO arm
    # the demo's ECHO default is the sweep's best non-collapsing arm (docs/echo-sweep/), the paper's beside it
    # (which the demo runs without the gradient probe)
    demo_runs = {m.name: method_run(demo, m, 0).objective for m in demo.methods}
    assert demo_runs["echo"] == runs["l0.005-b"]
    assert demo_runs["echo-paper"] == runs["l0.05"].model_copy(update={"grad_probe_every": 0})


def test_the_sweep_reuses_the_demos_start_and_runs_in_parts_whose_runs_the_whole_sweep_reuses(tmp_path):
    sweep_path = str(ROOT / "configs" / "echo-sweep.yaml")
    sweep, demo = load_demo_config((sweep_path,)), load_demo_config()
    part = load_demo_config((sweep_path,), methods=["l0.05", "grpo"])
    assert sweep.name != demo.name
    # the same --out as a finished demo: its pre-training and its SFT checkpoint, not a second copy of each
    assert prepare_key(sweep) == prepare_key(part) == prepare_key(demo)
    prepared = Prepared(tmp_path, {})

    def key(cfg: DemoConfig, demos: int = 300) -> str:
        return sft_key(cfg, prepared, sft_config(cfg, prepared, demos))

    assert key(sweep) == key(part) == key(demo) and key(sweep) != key(demo, 299)
    # a part runs the named methods in the config's order, and each of its runs is the whole sweep's run
    assert [m.name for m in active_methods(part)] == ["grpo", "l0.05"]
    whole = {m.name: m for m in sweep.methods}
    for method in part.methods:
        for seed in part.seeds:
            assert run_key(part, method_run(part, method, seed), "k") == run_key(
                sweep, method_run(sweep, whole[method.name], seed), "k")
    assert method_run(sweep, whole["grpo"], 0).objective.grad_probe_every == 0  # GRPO has no env term to probe


def test_methods_picks_extra_ones_too_and_an_unknown_name_is_one_line_naming_the_config():
    assert [m.name for m in active_methods(load_demo_config(methods=["echo-paper", "grpo"]))] == ["grpo", "echo-paper"]
    with pytest.raises(UserError, match=r"<demo default>: --methods: the config has no method 'ecoh' \(its methods: "
                                        r"grpo, echo, echo-paper, env-only\)"):
        load_demo_config(methods=["grpo", "ecoh"])
    with pytest.raises(UserError, match="names no method"):
        load_demo_config(methods=[])


def test_a_config_extends_another_and_a_bad_extends_is_one_line(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: demo\nseeds: [4]\nrun: {train: {steps: 3}}\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    cfg = load_demo_config((str(tmp_path / "b.yaml"),))
    assert (cfg.name, cfg.seeds, cfg.run.train.steps) == ("b", [4], 3)
    assert cfg.run.train.tasks_per_step == load_demo_config().run.train.tasks_per_step  # merged, not replaced
    (tmp_path / "c.yaml").write_text("extends: [demo]\n")
    with pytest.raises(UserError, match="c.yaml: extends"):
        load_demo_config((str(tmp_path / "c.yaml"),))


@pytest.mark.parametrize("args, field", [
    (("run.train.stepz=3",), "run.train.stepz"),
    (("sft.select.low=0.9", "sft.select.high=0.1"), "sft.select"),
    (("methods=[]",), "methods"),
    (("sft.max_steps=100",), "eval_from"),  # sft.eval_from is 150: no evaluation would choose the checkpoint
    (("pretrain.sessions=0", "sft.rehearsal=1.0"), "sft.rehearsal"),  # nothing to rehearse
    (("rl_workers=0",), "rl_workers"),
])
def test_bad_config_is_one_line_user_error(args, field):
    with pytest.raises(UserError) as err:
        load_demo_config(args)
    assert field in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("section, key", [("sft", "lr"), ("pretrain", None), ("model", "copy_warmup")])
def test_the_embedded_default_alone_sets_the_values(tmp_path, section, key):
    """A demo config that neither extends the default nor sets a value is refused, naming the field: no
    second set of defaults in the code to disagree with the embedded one."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    del (data[section] if key else data)[key or section]
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as err:
        load_demo_config((str(tmp_path / "own.yaml"),))
    assert str(err.value).endswith(f"own.yaml: {section}{'.' + key if key else ''}: Field required")


def test_the_smollm2_path_is_the_shared_run_with_the_smol_changes():
    from echo_rl.demo.config import smol_run

    cfg = load_demo_config(("smol.train.steps=3",))
    run = smol_run(cfg, "smollm2-135m")
    assert (run.policy.model, run.harness.action_format, run.objective.algorithm, run.objective.env.lam) == (
        "smollm2-135m", "qwen_xml", "echo", 0.05)
    assert (run.train.steps, run.train.tasks_per_step, run.optim.lr, run.eval.max_tasks) == (3, 2, 1e-6, 8)
    assert run.sandbox == cfg.run.sandbox and run.sampling == cfg.run.sampling  # merged, not replaced
    with pytest.raises(UserError, match="smol: train.stepz"):
        load_demo_config(("smol.train.stepz=3",))


def test_bad_method_override_names_the_method():
    with pytest.raises(UserError, match="grpo"):
        load_demo_config(('methods=[{"name": "grpo", "label": "GRPO", "overrides": {"objective.algorithm": "nope"}}]',))


# -- SFT checkpoint selection -----------------------------------------------------------------------------------

def test_selection_prefers_in_band_checkpoints_with_every_family_learned():
    select = Selection(low=0.2, high=0.6, min_family=0.1, patience=1)
    points = [
        {"step": 50, "pass": 0.10, "worst_family": 0.0},   # below the band
        {"step": 100, "pass": 0.35, "worst_family": 0.0},  # in band, one family at zero
        {"step": 150, "pass": 0.45, "worst_family": 0.2},  # eligible
        {"step": 175, "pass": 0.55, "worst_family": 0.2},  # eligible, same worst family, less room
        {"step": 200, "pass": 0.80, "worst_family": 0.5},  # above the ceiling
    ]
    assert [is_eligible(p, select) for p in points] == [False, False, True, True, False]
    assert max(points, key=lambda p: rank(p, select))["step"] == 150
    fallback = [points[0], points[4]]
    assert max(fallback, key=lambda p: rank(p, select))["step"] == 50  # closer to the band


# -- the whole pipeline ------------------------------------------------------------------------------------------

def _sane_score(cell: dict | None) -> None:
    assert cell is not None
    assert 0.0 <= cell["low"] <= cell["value"] <= cell["high"] <= 1.0


def _same_runs_one_after_another(out: Path, sequential: Path, runs: list[dict]) -> None:
    """The demo trained ``runs`` two at a time, in worker processes with one torch thread each; trained
    again one after another in this process, with one thread and the same config (threads 1, rl_workers 1:
    the same run configs and keys), they end with the same losses, scores and weights."""
    from rich.console import Console

    from echo_rl.demo.console import Clock
    from echo_rl.demo.prepare import prepare
    from echo_rl.demo.runs import CurveEvaluations, run_one, run_config
    from echo_rl.demo.sft import SFTResult

    side_by_side = load_demo_config(quick=True)
    one_by_one = side_by_side.model_copy(update={"threads": 1, "rl_workers": 1})
    prepared = prepare(side_by_side, out / "cache", print)  # reused: the demo made it
    sft = SFTResult.from_json(json.loads((out / "sft" / "selection.json").read_text()))
    methods = {m.name: m for m in side_by_side.methods}
    for run in runs:
        method = methods[run["method"]]
        assert run_config(one_by_one, method, run["seed"], prepared, sft.checkpoint) == \
            run_config(side_by_side, method, run["seed"], prepared, sft.checkpoint)
        again = run_one(one_by_one, method, run["seed"], prepared, sft.checkpoint, sft.key,
                        sequential / Path(run["path"]).name, CurveEvaluations(), Clock(Console(quiet=True)))
        assert not again.reused
        first = json.loads((Path(run["path"]) / "final" / "final.json").read_text())
        assert again.final["scores"] == first["scores"] and again.final["env_ce"] == first["env_ce"]
        losses = [[r["update/loss"] for r in map(json.loads, (path / "metrics.jsonl").read_text().splitlines())
                   if r.get("kind") == "train"] for path in (Path(run["path"]), again.path)]
        assert losses[0] == losses[1] and losses[0]
        weights = [(sorted((path / "checkpoints").iterdir())[-1] / "model.safetensors").read_bytes()
                   for path in (Path(run["path"]), again.path)]
        assert weights[0] == weights[1]


def test_demo_quick_end_to_end(cli, tmp_path):
    out = tmp_path / "demo"
    start = time.monotonic()
    result = cli("demo", "--quick", "--all-methods", "--out", str(out), timeout=900)
    first = time.monotonic() - start
    assert result.code == 0, result.stderr[-3000:]
    report = out / "report"
    text = (report / "report.md").read_text()
    for needle in ("base (SFT)", "GRPO", "ECHO (stable)", "ECHO (paper", "env-only", "Did ECHO beat GRPO?",
                   "held-out env CE", "Wall time", "pass@1"):
        assert needle in text, needle
    assert (report / "report.html").is_file()
    pngs = sorted(p.name for p in report.rglob("*.png"))
    assert "final_pass.png" in pngs and "sft.png" in pngs, pngs
    assert all((report / p).stat().st_size > 1000 for p in ("final_pass.png", "sft.png"))

    summary = json.loads((report / "summary.json").read_text())
    arms = summary["arms"]
    assert list(arms)[:3] == ["base", "grpo", "echo"]
    for name, arm in arms.items():
        # reported on the test split and held-out families; the validation tasks chose the SFT checkpoint
        for key in ("test/sampled", "test/greedy", "heldout/sampled", "heldout/greedy"):
            _sane_score(arm["scores"][key])
        assert not any(key.startswith("validation/") for key in arm["scores"])  # --quick: no curve evaluations
        for key in ("env_ce_heldout", "env_ce_validation"):
            assert len(arm[key]) == 1 and math.isfinite(arm[key][0]) and 0 < arm[key][0] < 20
        assert arm["efficiency"]["turns_mean"] >= 1 and arm["efficiency"]["tokens_mean"] > 0
        assert 0 <= arm["efficiency"]["timeout_rate"] <= 1
    assert {c["arm"] for c in summary["comparisons"]} == {"echo", "echo-paper", "env-only"}
    assert summary["comparison_count"] == 3 * 4  # three arms against GRPO on four split/mode cells
    assert summary["verdicts"]["echo"] and "Bonferroni" in summary["verdicts"]["echo"]
    # and whether the paper's result was reproduced, for the ECHO arms only
    assert "The paper's result for ECHO (stable): " in summary["verdicts"]["echo"]
    assert "The paper's result" not in summary["verdicts"]["env-only"]
    assert "Training dynamics (the mechanism)" in text and len(summary["dynamics"]["grpo"]["env_ce_own"]) == 2
    assert "12 comparisons" in text and "Bonferroni-adjusted" in text
    kept = arms["env-only"]["rollouts_kept"]  # the verifier-free arm says what its filter kept
    assert len(kept) == 1 and 0 <= kept[0] <= 1 and arms["grpo"]["rollouts_kept"] == [None]
    assert "rollouts kept by the env filter" in text and "clean tool call" in text
    assert summary["sft"]["step"] >= 1
    assert "| metric | base (SFT) | GRPO | ECHO (stable)" in summary["table_markdown"]
    assert len(summary["runs"]) == len(arms) - 1  # one seed each under --quick
    for run in summary["runs"]:
        assert (Path(run["path"]) / "final" / "final.json").is_file()
        assert (Path(run["path"]) / "config.yaml").is_file()
    timings = json.loads((out / "timings.json").read_text())
    assert timings["total_s"] > 0 and timings["stages"]
    assert "RL runs and their final evaluations, 2 at a time" in timings["stages"]  # rl_workers: 2
    kernels = timings["machine"]["kernels"]  # what computed the start: its CPU class, pinned (echo_rl.cpu_kernels)
    pinned = cpu_vendor() == MKL_PINNING_VENDOR and kernels["class"] is not None
    assert kernels["mkl"] in ((kernels["class"], None) if pinned else ("auto (not pinned)", None))
    assert f"Kernels: {kernels['cpu']}" in text
    assert ("MKL was not pinned" in text) == (not kernels["class"] or kernels["mkl"] != kernels["class"])
    assert "demo finished in" in result.stderr
    _same_runs_one_after_another(out, tmp_path / "sequential", summary["runs"][:2])

    # a re-run with the same config reuses every stage
    start = time.monotonic()
    again = cli("demo", "--quick", "--all-methods", "--out", str(out), timeout=600)
    assert again.code == 0, again.stderr[-3000:]
    assert again.stderr.count("reusing") >= 3
    assert time.monotonic() - start < first
    assert json.loads((report / "summary.json").read_text())["arms"] == summary["arms"]

    # --until sft stops after SFT and shows the per-family curve (stored in sft/selection.json)
    until = cli("demo", "--quick", "--all-methods", "--until", "sft", "--out", str(out), timeout=600)
    assert until.code == 0, until.stderr[-3000:]
    assert "SFT curve" in until.stderr and "step" in until.stderr
    assert f"SFT curve written to {out / 'sft' / 'selection.json'}" in until.stderr.replace("\n", "")
    assert json.loads((out / "sft" / "selection.json").read_text())["curve"]

    # a run whose final evaluation is missing (a crash, a broken evaluation) is evaluated again, not retrained
    run_dir = Path(summary["runs"][0]["path"])
    (run_dir / "final" / "final.json").unlink()
    checkpoint = sorted((run_dir / "checkpoints").iterdir())[-1]
    before = (checkpoint / "model.safetensors").stat().st_mtime_ns
    redo = cli("demo", "--quick", "--all-methods", "--out", str(out), timeout=600)
    assert redo.code == 0, redo.stderr[-3000:]
    assert f"reusing the training of {run_dir.name}" in redo.stderr.replace("\n", " ")
    assert (checkpoint / "model.safetensors").stat().st_mtime_ns == before
    assert json.loads((run_dir / "final" / "final.json").read_text())["scores"]


def test_demo_pretraining_measures_heldout_env_ce_before_and_after_and_sft_rehearses_it(cli, tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--quick", "--until", "sft", "--out", str(out), "pretrain.sessions=12", "sft.max_steps=2",
                 "sft.eval_every=2", "sft.rehearsal=0.5", timeout=600)
    assert result.code == 0, result.stderr[-3000:]
    (stats,) = [json.loads(p.read_text())["pretrain"] for p in (out / "cache").glob("*/prepare.json")]
    assert stats["steps"] == 30 and stats["sessions"] == 12
    before, after = stats["env_ce_heldout_before"], stats["env_ce_heldout_after"]
    assert math.isfinite(before) and math.isfinite(after) and after < before  # it learnt something of the terminal
    assert all(math.isfinite(stats[f"env_ce_heldout_copyable_{when}"]) for when in ("before", "after"))
    assert "pre-training: 30 steps on 12 shell sessions" in result.stderr.replace("\n", " ")
    steps = [r for r in RunDir(out / "sft").read_metrics() if r["kind"] == "sft"]
    assert len(steps) == 2 and all(r["update/rehearsal_tokens"] > 0 for r in steps)
    assert all(r["update/loss"] == pytest.approx(r["update/action_nll"] + 0.5 * r["update/rehearsal_nll"], abs=1e-4)
               for r in steps)


def test_demo_bad_override_is_one_line(cli, tmp_path):
    result = cli("demo", "--quick", "--out", str(tmp_path / "x"), "run.train.steps=0")
    assert result.code == 2
    assert result.stderr.startswith("echo-rl: error:") and "run.train.steps" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_sft_figure_shows_every_family_and_marks_the_selected_step():
    from echo_rl.demo.report import sft_figure

    curve = [{"step": 10, "pass": 0.1, "families": {"a": 0.0, "b": 0.2}, "env_ce_heldout": 3.0},
             {"step": 20, "pass": 0.3, "families": {"a": 0.4}, "env_ce_heldout": None}]
    figure = sft_figure({"sft": {"step": 20, "curve": curve}, "prepare": {"vocab_size": 1024}})
    passes, env = figure.panels
    assert [line.label for line in passes.lines] == ["validation (all)", "a", "b"] and passes.lines[0].alarms == (20,)
    assert passes.lines[2].steps == [10] and env.lines[0].steps == [10] and round(env.references[0].value, 2) == 6.93
    assert sft_figure({"sft": {"step": 0, "curve": []}}) is None


def test_the_machines_shares_count_its_own_work_apart_from_what_the_hypervisor_stole():
    from echo_rl.demo.console import MachineTicks
    from echo_rl.demo.report import _stolen

    assert MachineTicks(30.0, 5.0, 60.0).shares_since(MachineTicks(10.0, 1.0, 20.0)) == {"busy": 0.5, "stolen": 0.1}
    before = MachineTicks.now()
    if before is None:
        pytest.skip("no /proc/stat")
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # one core busy
        pass
    shares = MachineTicks.now().shares_since(before)
    assert 0.5 / (os.cpu_count() or 1) <= shares["busy"] <= 1 and 0 <= shares["stolen"] <= 1 - shares["busy"] + 1e-6
    assert "hypervisor took 31%" in _stolen({"cpu_shares": {"stolen": 0.31}}) and _stolen({}) == ""
