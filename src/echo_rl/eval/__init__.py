"""Evaluation: pass@k with intervals per split, mode and family; held-out env CE; efficiency.

    stats.py     pass@k (unbiased), Wilson and bootstrap intervals
    summary.py   episodes -> scores with infra exclusions, efficiency figures
    evaluate.py  the Evaluator (runs the episodes);  heldout.py  fixed off-policy transcripts, env CE
    results.py   the result's JSON shape and metrics line;  command.py  ``echo-rl eval``
"""
