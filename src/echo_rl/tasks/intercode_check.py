"""InterCode-Bash verifier. Runs INSIDE the sandbox as ``/tests/check.py`` (standard library only).

    python3 -I -B -S /tests/check.py     # reward 1 or 0 into /logs/verifier/reward.json

InterCode scores an episode by running the gold command in a second, pristine copy of the file system
and comparing three things (``BashEnv.get_reward``): the file-system diffs against the initial state
(``git status`` paths with their status), the content hashes of the files both changed, and the command
outputs (equal, or TF-IDF cosine similarity that rounds 0.33·sim to 0.33). Reward 1 needs all three.
Here, in the agent's own sandbox:

1. snapshot the agent's final state: every path under ``/`` outside :data:`EXCLUDED` with its kind, md5
   and executable bit; its answer is ``/tmp/answer.txt`` (absent: empty output);
2. restore the initial state: remove those paths and copy back the copy the set-up kept in
   :data:`INITIAL_COPY` (modification times included);
3. run the gold command there from ``/`` with ``bash -c`` (the agent's shell), stdout and stderr
   together, and snapshot again;
4. reward 1 iff the agent's diff equals the gold's (path, status) set, every path both added or modified
   has the same content, and the outputs match as above.

Differences from InterCode, all forced by a verifier that sees only the final state: the output compared
is the answer file's (InterCode takes the agent's last command's output, which a Harbor verifier cannot
see); directories count as paths (git ignores empty ones, so InterCode cannot tell ``mkdir`` from doing
nothing); ``/tmp`` (scratch, holds the answer) and the Harbor folders ``/tests``, ``/logs``, ``/solution``
are outside the diff; "same command as gold" is not a shortcut (the verifier does not see commands).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections import Counter

EXCLUDED = frozenset(
    "bin boot dev etc home lib lib32 lib64 libx32 media opt proc root run sbin srv sys usr var .dockerenv "
    "tmp tests logs solution lost+found .containerenv".split()
)
ANSWER = "/tmp/answer.txt"
INITIAL_COPY = "/var/lib/echo-rl/intercode-initial"
GOLD_TIMEOUT_S = 60
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn TfidfVectorizer's default token pattern


def snapshot(root: str = "/") -> dict[str, tuple]:
    """Path → ("d",) | ("l", target) | ("f", md5, executable) for every path outside EXCLUDED."""
    state: dict[str, tuple] = {}

    def visit(path: str) -> None:
        try:
            info = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(info.st_mode):
            state[path] = ("l", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            state[path] = ("d",)
            try:
                names = sorted(os.listdir(path))
            except OSError:
                return
            for name in names:
                visit(os.path.join(path, name))
        elif stat.S_ISREG(info.st_mode):
            try:
                with open(path, "rb") as handle:
                    digest = hashlib.md5(handle.read()).hexdigest()
            except OSError:
                digest = "unreadable"
            state[path] = ("f", digest, bool(info.st_mode & 0o111))
        else:
            state[path] = ("other", stat.S_IFMT(info.st_mode))

    for name in sorted(os.listdir(root)):
        if name not in EXCLUDED:
            visit(os.path.join(root, name))
    return state


def diff(initial: dict[str, tuple], final: dict[str, tuple]) -> set[tuple[str, str]]:
    """(path, status) for every path added (A), deleted (D) or modified (M) from ``initial`` to ``final``."""
    changes = set()
    for path in initial.keys() | final.keys():
        if path not in initial:
            changes.add((path, "A"))
        elif path not in final:
            changes.add((path, "D"))
        elif initial[path] != final[path]:
            changes.add((path, "M"))
    return changes


def tfidf_similarity(a: str, b: str) -> float:
    """Cosine similarity of the TF-IDF vectors of ``a`` and ``b`` fitted on the two of them, as scikit-learn's
    ``TfidfVectorizer()`` defaults compute it (lower-cased tokens, smooth idf ln((1+n)/(1+df))+1, l2 norm);
    with no token in either text, 1 when the texts are equal and 0 otherwise (InterCode's fallback)."""
    docs = [Counter(TOKEN.findall(text.lower())) for text in (a, b)]
    vocabulary = docs[0].keys() | docs[1].keys()
    if not vocabulary:
        return 1.0 if a == b else 0.0
    idf = {term: math.log(3 / (1 + sum(term in doc for doc in docs))) + 1 for term in vocabulary}
    vectors = [{term: count * idf[term] for term, count in doc.items()} for doc in docs]
    norms = [math.sqrt(sum(v * v for v in vector.values())) for vector in vectors]
    if not all(norms):
        return 0.0
    dot = sum(vectors[0][term] * vectors[1].get(term, 0.0) for term in vectors[0])
    return dot / (norms[0] * norms[1])


def outputs_match(agent: str, gold: str) -> bool:
    """InterCode's output part at full marks: equal, or round(0.33 · similarity, 2) == 0.33."""
    return agent == gold or round(0.33 * tfidf_similarity(agent, gold), 2) == 0.33


def _make_removable(function, path, _exc) -> None:  # noqa: ANN001 - shutil.rmtree's onerror signature
    os.chmod(os.path.dirname(path), 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
    function(path)


def restore_initial_state() -> None:
    """Remove every path outside EXCLUDED under ``/`` and copy the kept initial state back."""
    for name in os.listdir("/"):
        path = os.path.join("/", name)
        if name in EXCLUDED:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=_make_removable)
        else:
            os.unlink(path)
    subprocess.run(["cp", "-a", f"{INITIAL_COPY}/.", "/"], check=True)


def gold_environment() -> dict[str, str]:
    """The variables an agent's shell has: PATH, HOME and USER of the account running the check."""
    account = pwd.getpwuid(os.getuid())
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": account.pw_dir, "USER": account.pw_name,
            "LOGNAME": account.pw_name, "LC_ALL": "C.UTF-8"}


def run_gold(command: str) -> str:
    """The gold command's stdout and stderr together, run from ``/`` (empty on timeout)."""
    try:
        done = subprocess.run(["bash", "-c", command], cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=GOLD_TIMEOUT_S, env=gold_environment())
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout.decode("utf-8", errors="replace")


def main() -> None:
    with open("/tests/gold.json") as handle:
        spec = json.load(handle)
    agent_state = snapshot()
    try:
        with open(ANSWER, "rb") as handle:
            agent_output = handle.read().decode("utf-8", errors="replace")
    except OSError:
        agent_output = ""
    restore_initial_state()
    initial = snapshot()
    gold_output = run_gold(spec["gold"])
    gold_state = snapshot()
    agent_diff, gold_diff = diff(initial, agent_state), diff(initial, gold_state)
    same = [path for path, status in agent_diff & gold_diff if status in ("A", "M")]
    checks = {
        "file_diff": float(agent_diff == gold_diff),
        "file_changes": float(all(agent_state[path] == gold_state[path] for path in same)),
        "answer_similarity": float(outputs_match(agent_output, gold_output)),
    }
    checks["reward"] = float(all(checks.values()))
    for path, status in sorted(agent_diff ^ gold_diff)[:5]:
        print(f"diff {'extra' if (path, status) in agent_diff else 'missing'}: {status} {path}")
    if not checks["answer_similarity"]:
        print(f"output differs: agent {agent_output[:80]!r} vs gold {gold_output[:80]!r}")
    os.makedirs("/logs/verifier", exist_ok=True)
    with open("/logs/verifier/reward.json", "w") as handle:
        json.dump(checks, handle)
    print(json.dumps(checks))


if __name__ == "__main__":
    main()
