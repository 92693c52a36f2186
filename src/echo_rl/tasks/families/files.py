"""System-operations families over files: find and move, permissions, archives, disk usage."""

from __future__ import annotations

from echo_rl.tasks.families.base import Rng, Spec, call, family, lines


@family("find_move", "sysops", "find the message that mentions a project and move it into a folder")
def find_move(rng: Rng) -> Spec:
    level = rng.level()
    projects = rng.words(3 + 2 * level)
    numbers = rng.codes(len(projects), digits=2)
    names = [f"inbox/msg_{n}.txt" for n in numbers]
    files = {name: lines(f"about {project}") for name, project in zip(names, projects)}
    dest = rng.choice(("review", "todo", "keep", "urgent"))
    moved = f"{dest}/msg_{numbers[0]}.txt"
    checks = [call("expect_text", moved, f"about {projects[0]}"), call("expect_missing", names[0])]
    checks += [call("expect_exists", name) for name in names[1:]]
    return Spec(
        instruction=f"Move the message in inbox/ that is about {projects[0]} into the folder {dest}/ "
        "(create it if needed).",
        files=dict(sorted(files.items())),
        commands=["ls inbox", f"grep -l {projects[0]} inbox/*", f"mkdir -p {dest} && mv {names[0]} {dest}/",
                  f"ls {dest}"],
        checks=checks,
        level=level,
    )


MODES = (0o600, 0o640, 0o700, 0o750)


@family("permissions", "sysops", "make the one world-readable key file private")
def permissions(rng: Rng) -> Spec:
    level = rng.level()
    names = [f"keys/{word}.pem" for word in rng.words(3 + level)]
    modes = [rng.choice(MODES) for _ in names]
    leaked = rng.randrange(len(names))
    modes[leaked] = 0o644
    files = {name: lines(f"key {rng.code(6)}") for name in names}
    return Spec(
        instruction="One file in keys/ is readable by every user. Make it readable and writable by its owner "
        "only (mode 600); leave the other files as they are.",
        files=files,
        setup=[f"chmod {mode:o} {name}" for name, mode in zip(names, modes)],
        commands=["stat -c '%a %n' keys/*", f"chmod 600 {names[leaked]}", f"stat -c '%a %n' {names[leaked]}"],
        checks=[call("expect_mode", name, 0o600 if i == leaked else mode) for i, (name, mode) in
                enumerate(zip(names, modes))],
        level=level,
    )


@family("archive_extract", "sysops", "restore one config file from a tar.gz backup")
def archive_extract(rng: Rng) -> Spec:
    level = rng.level()
    words = rng.words(3 + level)
    conf = f"site/conf/{words[0]}.conf"
    members = {conf: lines(f"port={rng.code(4)}")}
    members |= {f"site/data/{word}.txt": lines(f"row {rng.code(3)}") for word in words[1:]}
    archive = f"backups/site_{rng.code(2)}.tar.gz"
    staged = {f"stage/{path}": content for path, content in members.items()}
    return Spec(
        instruction="Restore only the .conf file from the archive in backups/ into restore/, keeping its "
        "path inside the archive.",
        files=staged,
        setup=["mkdir -p backups", f"tar --sort=name -czf {archive} -C stage site", "rm -r stage"],
        commands=["ls backups", f"tar -tzf {archive}", f"mkdir -p restore && tar -xzf {archive} -C restore {conf}",
                  "find restore -type f"],
        checks=[call("expect_files", "restore", [conf]), call("expect_text", f"restore/{conf}",
                                                              members[conf].strip())],
        level=level,
    )


@family("disk_usage", "sysops", "delete the largest cache directory")
def disk_usage(rng: Rng) -> Spec:
    level = rng.level()
    dirs = [f"cache/{word}" for word in rng.words(3 + level)]
    sizes = [20_000 * k + rng.randrange(1000) for k in rng.sample(range(1, 10), len(dirs))]
    largest = dirs[sizes.index(max(sizes))]
    checks = [call("expect_missing", largest)] + [call("expect_exists", d) for d in dirs if d != largest]
    return Spec(
        instruction="The cache/ folder is too big. Delete its largest subdirectory and keep the others.",
        files={},
        setup=[f"mkdir -p {d} && head -c {size} /dev/zero > {d}/blob" for d, size in zip(dirs, sizes)],
        commands=["ls cache", "du -sb cache/*", f"rm -r {largest}", "ls cache"],
        checks=checks,
        level=level,
    )
