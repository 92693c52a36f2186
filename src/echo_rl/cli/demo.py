"""``echo-rl demo``: the main job — a tiny end-to-end reproduction of the paper on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

import click

from echo_rl.cli.common import config_arguments, out_option


@click.command()
@config_arguments
@out_option(default="runs/demo")
@click.option("--quick", is_flag=True, help="A smaller version of the same pipeline (under 3 minutes).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Run every method on seeds 0 … N-1 (default: the config's seeds, 2).")
@click.option("--model", type=click.Choice(["tiny", "smollm2-135m"]), default="tiny", show_default=True,
              help="tiny: the full study on a locally built tiny Qwen3; smollm2-135m: evaluate SmolLM2-135M-Instruct "
                   "on validation tasks and run a few ECHO steps (a real chat model end to end on CPU).")
@click.option("--all-methods", is_flag=True,
              help="Also run the methods the config marks extra (the default: the paper's λ = 0.05 and env-only).")
@click.option("--methods", "method_names", default=None, metavar="NAME,NAME",
              help="Run only these of the config's methods, extra ones included (e.g. a sweep in parts into one "
                   "--out: the whole sweep there reuses every part's runs).")
@click.option("--until", type=click.Choice(["sft"]), default=None,
              help="Stop after this stage (sft: the SFT curve per family, in OUT/sft/selection.json).")
def demo(config_args: tuple[str, ...], out: Path, quick: bool, seeds: int | None, model: str, all_methods: bool,
         method_names: str | None, until: str | None) -> None:
    """Run the whole study at small scale and write a report.

    Builds a task corpus, records reference transcripts in the sandbox, trains a BPE tokenizer and a tiny
    Qwen3, fine-tunes it on the transcripts (checkpoint chosen on validation success), then runs
    GRPO and ECHO (with --all-methods also the paper's ECHO and env-only) from that checkpoint on the same
    seeds, evaluates everything and writes
    OUT/report/ (report.md, report.html, summary.json, plots). CONFIG is a demo config (default:
    configs/demo.yaml, embedded); overrides look like run.train.steps=40 or sft.max_steps=300. Re-running
    with the same config reuses what is already in OUT.
    """
    from echo_rl.demo.pipeline import run

    if all_methods:
        config_args = (*config_args, "all_methods=true")
    methods = None if method_names is None else [name.strip() for name in method_names.split(",") if name.strip()]
    written = run(config_args, out, quick=quick, seeds=seeds, model=None if model == "tiny" else model,
                  until=until, methods=methods)
    click.echo(f"{'SFT curve' if until else 'report'} written to {written}", err=True)
