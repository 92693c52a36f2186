"""System-operations families over configuration files: a key=value edit asked for in a ticket, and
disabling a cron job."""

from __future__ import annotations

from echo_rl.tasks.families.base import Rng, Spec, call, family, lines

KEYS = ("max_workers", "timeout", "port", "retries", "cache_mb", "log_level", "pool_size", "batch")


@family("config_edit", "sysops", "apply the setting a ticket asks for to a config file")
def config_edit(rng: Rng) -> Spec:
    level = rng.level()
    keys = rng.sample(KEYS, 3 + level)
    values = [rng.randrange(2, 90) for _ in keys]
    pick = rng.randrange(len(keys))
    new = rng.choice([v for v in range(2, 90) if v != values[pick]])
    before = [f"{key}={value}" for key, value in zip(keys, values)]
    after = [f"{key}={new if i == pick else value}" for i, (key, value) in enumerate(zip(keys, values))]
    return Spec(
        instruction="Apply the change requested in request.txt to app.conf.",
        files={"request.txt": lines(f"Please set {keys[pick]} to {new} in app.conf."), "app.conf": lines(*before)},
        commands=["cat request.txt", "cat app.conf", f"sed -i 's/^{keys[pick]}=.*/{keys[pick]}={new}/' app.conf",
                  "cat app.conf"],
        checks=[call("expect_lines", "app.conf", after)],
        level=level,
    )


@family("cron_edit", "sysops", "comment out the cron job that runs every minute")
def cron_edit(rng: Rng) -> Spec:
    level = rng.level()
    jobs = rng.words(3 + level)
    rows = [f"{rng.randrange(60)} {rng.randrange(24)} * * * /opt/jobs/{job}.sh" for job in jobs]
    pick = rng.randrange(len(rows))
    rows[pick] = f"* * * * * /opt/jobs/{jobs[pick]}.sh"
    return Spec(
        instruction="One job in jobs.cron runs every minute. Disable it by commenting out its line; keep the "
        "other jobs.",
        files={"jobs.cron": lines(*rows)},
        commands=["cat jobs.cron", "grep -n '^[*] [*] [*] [*] [*]' jobs.cron", f"sed -i '{pick + 1}s/^/# /' jobs.cron",
                  "cat jobs.cron"],
        checks=[call("expect_commented_out", "jobs.cron", rows, pick)],
        level=level,
    )
