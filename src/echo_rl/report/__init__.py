"""Reports: plots and side-by-side tables of runs (``echo-rl report``)."""

from echo_rl.report.build import build_report

__all__ = ["build_report"]
