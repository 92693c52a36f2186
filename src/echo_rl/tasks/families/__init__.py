"""Procedural task families (no LLM): each draws a Harbor task from a seed.

    from echo_rl.tasks.families import FAMILIES, generate
    task = generate("csv_lookup", 7)          # same (family, seed) -> same task

Families by domain — data: key_copy, pointer_chase, log_count, sort_dedup, csv_lookup, csv_aggregate,
json_field; sysops: proc_top, find_move, permissions, archive_extract, disk_usage, config_edit, cron_edit;
dev: git_log_find, git_branch, python_fix, make_target, script_run.
"""

from echo_rl.tasks.families import code, config, files, git, tables, text  # noqa: F401 (registers them)
from echo_rl.tasks.families.base import FAMILIES, Family, Spec
from echo_rl.tasks.families.build import DEFAULT_BASE_IMAGE, WORKDIR, generate

__all__ = ["DEFAULT_BASE_IMAGE", "FAMILIES", "WORKDIR", "Family", "Spec", "generate"]
