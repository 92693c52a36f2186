"""Arms across seeds in ``echo-rl report``: grouping, seed spread, paired comparisons with the multiplicity
note, and figures as data (ln|V| on env-CE panels, one legend entry per arm, no colour twice)."""

import math

from echo_rl.config import RunConfig
from echo_rl.eval.results import EnvCE, EvalResult, write_result
from echo_rl.eval.summary import summarize_episodes
from echo_rl.report.arms import compare, group_runs, reference_arm
from echo_rl.report.figures import colours, curve_figures
from echo_rl.report.runs import load_runs
from echo_rl.rollout.trajectory import Trajectory, Turn
from echo_rl.roles import Role
from echo_rl.rundir import RunDir


def _episodes(solved_tasks: set[int], tasks: int = 10) -> list[Trajectory]:
    return [Trajectory(task_id=f"t{i}", token_ids=[1, 2, 3], roles=[Role.PROMPT, Role.ACTION, Role.ENV],
                       logprobs=[0.0, -1.0, 0.0], turns=[Turn(action_span=(1, 2), action_text="x", command="ls")],
                       outcome="solved" if i in solved_tasks else "failed", family="f")
            for i in range(tasks) for _ in range(2)]


def _run(root, algorithm, seed, solved):
    run = RunDir.create(root)
    run.write_config(RunConfig(name=f"{algorithm}-seed{seed}", seed=seed,
                               objective={"algorithm": algorithm, "env": {"lam": 0.05 if algorithm == "echo" else 0.0}}))
    for step in (1, 2):
        run.log_metrics({"kind": "train", "step": step, "update/env_ce": 8.0 - step - seed,
                         "rollout/pass_rate": 0.1 * step})
    for step, tasks in ((0, {0, 1}), (2, solved)):
        scores = {"validation": {"sampled": summarize_episodes(_episodes(tasks), [1])}}
        write_result(run, EvalResult(step, scores, EnvCE(7.0 - step, 50, 4, vocab_size=993)))
    return root


def _arms(tmp_path, echo_solved=({0, 1, 2, 3, 4, 5, 6}, {0, 1, 2, 3, 4, 5, 6, 7})):
    paths = [_run(tmp_path / f"grpo{s}", "grpo", s, {0, 1, 2, 3}) for s in (0, 1)]
    paths += [_run(tmp_path / f"echo{s}", "echo", s, solved) for s, solved in zip((0, 1), echo_solved)]
    return paths, group_runs(load_runs(paths))


def test_runs_differing_only_in_seed_are_one_arm_with_its_seed_spread(tmp_path):
    _, arms = _arms(tmp_path)
    assert [(a.name, a.seeds) for a in arms] == [("grpo", [0, 1]), ("echo", [0, 1])]
    score = arms[1].score("validation", "sampled")
    assert score.value == 0.75 and score.per_seed == (0.7, 0.8) and score.seeds == 2
    comparisons = compare(arms, reference_arm(arms), ["validation"])
    (item,) = comparisons.items
    assert item.arm is arms[1] and abs(item.diff.value - 0.35) < 1e-9 and item.diff.low > 0
    assert item.adjusted.low <= item.diff.low and comparisons.count == 1


def test_figures_mark_the_uniform_guess_and_keep_one_legend_entry_per_arm(tmp_path):
    _, arms = _arms(tmp_path)
    figures = {f.name: f for f in curve_figures(arms)}
    env = figures["env_ce"]
    for panel in env.panels:  # held-out and train-rollout env CE, each against ln|V|
        assert any(ref.value == math.log(993) and "ln|V|" in ref.label for ref in panel.references), panel.title
    for figure in figures.values():
        assert len(figure.legend) <= len(arms)
    (train,) = [p for p in env.panels if p.title == "train rollouts"]
    echo = next(line for line in train.lines if line.label == arms[1].label)
    assert echo.mean == [6.5, 5.5] and echo.low == [6.0, 5.0] and echo.high == [7.0, 6.0]  # seed mean, range band
    grpo = next(line for line in train.lines if line.label == arms[0].label)
    assert grpo.strong and grpo.colour == "black" and not echo.strong


def test_colours_never_repeat_even_for_a_sweep(tmp_path):
    _, arms = _arms(tmp_path)
    many = [type(arms[1])(f"arm{i}", f"arm {i}", [], arms[1].runs, "echo") for i in range(25)]
    palette = colours([arms[0], *many])
    assert len(set(palette.values())) == 26


def test_the_report_shows_seeds_comparisons_and_multiplicity(cli, tmp_path):
    paths, _ = _arms(tmp_path)
    out = tmp_path / "report"
    result = cli("report", *map(str, paths), "--out", str(out))
    assert result.code == 0, result.stderr
    md = (out / "report.md").read_text()
    assert "| metric | base | grpo (GRPO) | echo (ECHO λ=0.05) |" in md
    assert "75.0 [" in md and "(seeds 70.0, 80.0; sd 7.1)" in md
    assert "1 arm compared with grpo (GRPO)" in md and "Bonferroni-adjusted" in md
    assert "| echo (ECHO λ=0.05) | +35.0 [" in md
    assert (out / "final_pass.png").stat().st_size > 1000 and (out / "env_ce.png").stat().st_size > 1000
