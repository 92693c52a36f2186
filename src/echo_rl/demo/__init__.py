"""``echo-rl demo``: the main job — a tiny end-to-end reproduction of ECHO on a laptop CPU (issue 8).

    report = run_demo(("run.train.steps=40",), Path("runs/demo"), quick=False)

See :mod:`echo_rl.demo.pipeline` for the stages and :data:`echo_rl.demo.config.DEFAULT_CONFIG` for the default config.
"""

from __future__ import annotations

from pathlib import Path


def run_demo(config_args: tuple[str, ...], out: Path, *, quick: bool = False, seeds: int | None = None,
             model: str | None = None, until: str | None = None) -> Path:
    """Run the demo into ``out``; return the path of its report (see :func:`echo_rl.demo.pipeline.run`)."""
    from echo_rl.demo.pipeline import run

    return run(config_args, out, quick=quick, seeds=seeds, model=model, until=until)


__all__ = ["run_demo"]
