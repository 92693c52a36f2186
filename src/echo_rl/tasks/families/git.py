"""Development-tooling families over small git repositories: find a commit by ticket, switch to a
ticket's branch.

Repositories are built by the setup script with a fixed author and fixed dates, so their commit hashes
are known at generation time (:func:`commit_hashes` computes them the way git does) and can appear as
literals in the reference solution and the checks.
"""

from __future__ import annotations

import hashlib
import shlex

from echo_rl.tasks.families.base import Rng, Spec, call, family, lines

AUTHOR = "dev <dev@example.com>"
EPOCH = 1_700_000_000
VERBS = ("fix", "add", "update", "remove", "refactor", "document")


def _object(kind: str, body: bytes) -> bytes:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body).digest()


def commit_hashes(commits: list[tuple[str, str, str]]) -> list[str]:
    """Hex ids of the commits :func:`repo_setup` makes from (message, file name, content) triples."""
    blobs: dict[str, bytes] = {}
    parent, ids = None, []
    for i, (message, name, content) in enumerate(commits):
        blobs[name] = _object("blob", content.encode())
        tree = _object("tree", b"".join(b"100644 " + n.encode() + b"\0" + blobs[n] for n in sorted(blobs)))
        stamp = f"{AUTHOR} {EPOCH + 60 * i} +0000"
        head = f"tree {tree.hex()}\n" + (f"parent {parent}\n" if parent else "")
        parent = _object("commit", f"{head}author {stamp}\ncommitter {stamp}\n\n{message}\n".encode()).hex()
        ids.append(parent)
    return ids


def repo_setup(repo: str, commits: list[tuple[str, str, str]], branches: list[str] = ()) -> list[str]:
    """Setup lines creating ``repo`` on branch main with one commit per (message, file name, content),
    each file at the top level, plus ``branches`` at the last commit."""
    name, email = AUTHOR[:-1].split(" <")
    out = [f"git init -q -b main {repo}", f"git -C {repo} config user.name {name}",
           f"git -C {repo} config user.email {email}"]
    for i, (message, file_name, content) in enumerate(commits):
        date = f"@{EPOCH + 60 * i} +0000"
        out += [
            f"printf '%s' {shlex.quote(content)} > {repo}/{file_name}",
            f"git -C {repo} add {file_name}",
            f"GIT_AUTHOR_DATE='{date}' GIT_COMMITTER_DATE='{date}' git -C {repo} commit -q -m {shlex.quote(message)}",
        ]
    return out + [f"git -C {repo} branch {branch}" for branch in branches]


def _commits(rng: Rng, count: int) -> tuple[list[str], list[tuple[str, str, str]]]:
    tickets = list(dict.fromkeys(rng.ticket() for _ in range(count * 2)))[:count]
    words = rng.words(count)
    commits = [(f"{rng.choice(VERBS)} {word} ({ticket})", f"{word}.txt", lines(f"{word} {rng.code(3)}"))
               for word, ticket in zip(words, tickets)]
    return tickets, commits


@family("git_log_find", "dev", "find the commit for a ticket and write its short hash")
def git_log_find(rng: Rng) -> Spec:
    level = rng.level()
    tickets, commits = _commits(rng, 3 + level)
    pick = rng.randrange(len(commits))
    full = commit_hashes(commits)[pick]
    return Spec(
        instruction=f"Find the commit for ticket {tickets[pick]} in the repository project/ and write its short "
        "hash to hash.txt.",
        files={},
        setup=repo_setup("project", commits),
        commands=["git -C project log --oneline", f"echo {full[:7]} > hash.txt"],
        checks=[call("expect_abbrev", "hash.txt", full, 7)],
        level=level,
    )


@family("git_branch", "dev", "switch a repository to the branch of a ticket")
def git_branch(rng: Rng) -> Spec:
    level = rng.level()
    tickets, commits = _commits(rng, 2 + level)
    branches = [f"feature/{ticket}-{word}" for ticket, word in zip(tickets, rng.words(len(tickets)))]
    pick = rng.randrange(len(branches))
    return Spec(
        instruction=f"Switch the repository in app/ to the branch for ticket {tickets[pick]}.",
        files={},
        setup=repo_setup("app", commits[:1], branches),
        commands=["cd app", "git branch", f"git checkout -q {branches[pick]}", "git branch --show-current"],
        checks=[call("expect_text", "app/.git/HEAD", f"ref: refs/heads/{branches[pick]}")],
        level=level,
    )
