"""Shell sessions: random commands over random file trees, a pre-training corpus independent of the task families.

    tasks = session_tasks(3000, seed=0)          # list[Task]: a file tree, an instruction, the session's commands

A *session* is a random folder (2-4 sub-folders, 3-8 files of words, numbers, CSV rows, key=value lines
or log lines) and 4-10 commands drawn from a wide grammar (:data:`COMMANDS`: ls, cat, head, tail, wc,
grep, sort, uniq, cut, find, echo, printf, mkdir, cp, mv, rm, touch, python3 -c, awk, sed, tr, seq, nl,
rev, paste, diff, basename, pwd, shell variables and arithmetic), with pipes, redirections and, about one
command in eight, a mistake (a missing file, a bad option, an unknown command). Arguments are chosen from
a model of the tree that follows the session's own changes (a file written by ``echo … >`` is later
read, a variable set is later echoed), so many outputs are derivable from earlier context — the copy
and lookup circuits acting needs. The outputs themselves are never predicted here: each session is a
:class:`~echo_rl.tasks.task.Task` without tests whose reference solution is its commands, so replaying
it in the sandbox (:func:`echo_rl.rollout.expert.record_expert_transcripts`) records the real terminal,
as an expert transcript in the harness's chat format (an ``unverified`` outcome: there is nothing to
solve).

Independence from the task families: the words, file names and instructions are this module's own (it
imports no family), and nothing here knows what a family asks. Deterministic: the same (index, seed)
always gives the same session (``random.Random`` seeded from a string).
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from echo_rl.tasks.families.base import Spec
from echo_rl.tasks.families.build import WORKDIR, setup_script
from echo_rl.tasks.task import SETUP_SCRIPT, SOLUTION_SCRIPT, Task, solve_script

FAMILY = "shell_session"
# The session vocabulary: none of these words is one a task family draws.
VOCAB = (
    "apple bread chair cloud dance eagle fable grape house island jelly kite lamp mango night ocean piano "
    "queen river stone tiger umbrella valley wagon yarn zebra anchor basket candle desert engine forest "
    "garden hammer jungle ladder mirror needle orange pillow rabbit saddle tunnel window bottle castle "
    "dragon feather guitar helmet jacket kettle lemonade meadow noodle pepperoni rocket sunset turtle"
).split()
FOLDERS = "docs data src tmp notes archive build misc reports inbox".split()
EXTENSIONS = ("txt", "csv", "cfg", "log", "md", "dat")
INSTRUCTIONS = (
    "Look around this folder with shell commands.",
    "Explore the files here: list them, read them, count and search them.",
    "Try some commands on the files in this folder.",
    "Inspect the folder and work with its files in the terminal.",
    "Use the shell to look at and change the files in this folder.",
)
MISTAKE_RATE = 0.12


@dataclass
class Tree:
    """What the generator believes the workdir holds (files with their text, folders), updated by the
    commands it emits; only used to pick arguments, never to predict outputs."""

    files: dict[str, str] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    variables: dict[str, str] = field(default_factory=dict)

    def new_name(self, rng: random.Random, ext: str | None = None) -> str:
        """A path not in the tree yet, in the top folder or one of its sub-folders."""
        while True:
            folder = rng.choice(["", "", *sorted(self.folders)])
            word = rng.choice(VOCAB)
            name = f"{word}{rng.randrange(10) if rng.random() < 0.3 else ''}.{ext or rng.choice(EXTENSIONS)}"
            path = f"{folder}/{name}" if folder else name
            if path not in self.files and path not in self.folders:
                return path


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def _content(rng: random.Random, path: str) -> str:
    """Lines whose kind follows the extension: CSV rows, key=value, log lines, numbers or words."""
    n = rng.randint(2, 9)
    ext = path.rsplit(".", 1)[-1]
    if ext == "csv":
        rows = [f"{rng.choice(VOCAB)},{rng.randrange(100)},{rng.choice(VOCAB)}" for _ in range(n)]
        return "\n".join(["name,qty,kind", *rows]) + "\n"
    if ext == "cfg":
        return "".join(f"{rng.choice(VOCAB)}={rng.choice([str(rng.randrange(1000)), rng.choice(VOCAB)])}\n"
                       for _ in range(n))
    if ext == "log":
        return "".join(f"{rng.randrange(24):02d}:{rng.randrange(60):02d} {rng.choice(('ok', 'fail', 'skip'))} "
                       f"{rng.choice(VOCAB)}\n" for _ in range(n))
    if ext == "dat":
        return "".join(f"{rng.randrange(1000)}\n" for _ in range(n))
    return "".join(_words(rng, rng.randint(1, 5)) + "\n" for _ in range(n))


def random_tree(rng: random.Random) -> Tree:
    tree = Tree(folders=set(rng.sample(FOLDERS, rng.randint(1, 3))))
    if rng.random() < 0.4:
        parent = rng.choice(sorted(tree.folders))
        tree.folders.add(f"{parent}/{rng.choice(FOLDERS)}")
    for _ in range(rng.randint(3, 8)):
        path = tree.new_name(rng)
        tree.files[path] = _content(rng, path)
    return tree


# --- the grammar: each entry draws one command from (rng, tree) and updates the tree -------------------------

Draw = Callable[[random.Random, Tree], str]


def _file(rng: random.Random, tree: Tree, ext: str | None = None) -> str:
    choices = sorted(p for p in tree.files if ext is None or p.endswith("." + ext)) or sorted(tree.files)
    return rng.choice(choices) if choices else tree.new_name(rng)


def _word_in(rng: random.Random, tree: Tree, path: str) -> str:
    words = tree.files.get(path, "").replace(",", " ").replace("=", " ").split()
    return rng.choice(words) if words and rng.random() < 0.8 else rng.choice(VOCAB)


def _q(text: str) -> str:
    return shlex.quote(text)


def _ls(rng: random.Random, tree: Tree) -> str:
    return rng.choice(["ls", "ls -1", "ls -a", "ls -R", *(f"ls {f}" for f in sorted(tree.folders))])


def _cat(rng: random.Random, tree: Tree) -> str:
    return f"cat {'-n ' if rng.random() < 0.2 else ''}{_file(rng, tree)}"


def _head_tail(rng: random.Random, tree: Tree) -> str:
    return f"{rng.choice(('head', 'tail'))} -n {rng.randint(1, 4)} {_file(rng, tree)}"


def _wc(rng: random.Random, tree: Tree) -> str:
    return f"wc {rng.choice(('-l', '-w', '-c', ''))} {_file(rng, tree)}".replace("  ", " ")


def _grep(rng: random.Random, tree: Tree) -> str:
    if rng.random() < 0.2:
        return f"grep -r {_q(rng.choice(VOCAB))} ."
    path = _file(rng, tree)
    return f"grep {rng.choice(('', '-c ', '-n ', '-v ', '-i '))}{_q(_word_in(rng, tree, path))} {path}"


def _sort_uniq(rng: random.Random, tree: Tree) -> str:
    path = _file(rng, tree, rng.choice(("dat", "txt", None)))
    return rng.choice([f"sort {path}", f"sort -r {path}", f"sort -n {path}", f"sort -u {path}",
                       f"sort {path} | uniq -c", f"sort {path} | uniq", f"sort -n {path} | tail -n 1"])


def _cut(rng: random.Random, tree: Tree) -> str:
    path = _file(rng, tree, "csv")
    return f"cut -d, -f{rng.randint(1, 3)} {path}"


def _find(rng: random.Random, tree: Tree) -> str:
    return rng.choice([f"find . -name '*.{rng.choice(EXTENSIONS)}'", "find . -type d", "find . -type f",
                       f"find {rng.choice(sorted(tree.folders))} -type f"])


def _echo(rng: random.Random, tree: Tree) -> str:
    text = _words(rng, rng.randint(1, 4))
    if rng.random() < 0.5:
        return f"echo {text}"
    path = tree.new_name(rng, "txt") if rng.random() < 0.6 else _file(rng, tree)
    append = path in tree.files and rng.random() < 0.5
    tree.files[path] = (tree.files.get(path, "") if append else "") + text + "\n"
    return f"echo {text} {'>>' if append else '>'} {path}"


def _printf(rng: random.Random, tree: Tree) -> str:
    items = [rng.choice(VOCAB) for _ in range(rng.randint(2, 4))]
    return rng.choice([f"printf '%s\\n' {' '.join(items)}", f"printf '%s-%s\\n' {' '.join(items[:2])}",
                       f"printf '%d items\\n' {rng.randrange(100)}"])


def _mkdir(rng: random.Random, tree: Tree) -> str:
    name = f"{rng.choice(VOCAB)}{rng.randrange(10)}"
    if rng.random() < 0.3:
        nested = f"{name}/{rng.choice(FOLDERS)}"
        tree.folders |= {name, nested}
        return f"mkdir -p {nested}"
    tree.folders.add(name)
    return f"mkdir {name}"


def _copy_move(rng: random.Random, tree: Tree) -> str:
    source, target = _file(rng, tree), tree.new_name(rng, None)
    verb = rng.choice(("cp", "mv"))
    if source in tree.files:
        tree.files[target] = tree.files[source]
        if verb == "mv":
            del tree.files[source]
    return f"{verb} {source} {target}"


def _rm_touch(rng: random.Random, tree: Tree) -> str:
    if rng.random() < 0.5 and len(tree.files) > 2:
        path = _file(rng, tree)
        tree.files.pop(path, None)
        return f"rm {path}"
    path = tree.new_name(rng, "txt")
    tree.files[path] = ""
    return f"touch {path}"


def _python(rng: random.Random, tree: Tree) -> str:
    a, b = rng.randrange(100), rng.randrange(1, 50)
    word = rng.choice(VOCAB)
    return rng.choice([
        f"python3 -c 'print({a} + {b})'", f"python3 -c 'print({a} * {b})'", f"python3 -c 'print({a} // {b})'",
        f"python3 -c 'print(\"{word}\".upper())'", f"python3 -c 'print(len(\"{word}\"))'",
        f"python3 -c 'print(sorted(\"{word}\"))'",
        f"python3 -c 'print(len(open(\"{_file(rng, tree)}\").read().split()))'",
    ])


def _awk(rng: random.Random, tree: Tree) -> str:
    if rng.random() < 0.5:
        return f"awk -F, 'NR>1 {{s+=$2}} END {{print s}}' {_file(rng, tree, 'csv')}"
    return f"awk '{{print ${rng.randint(1, 3)}}}' {_file(rng, tree)}"


def _sed(rng: random.Random, tree: Tree) -> str:
    path = _file(rng, tree)
    if rng.random() < 0.4:
        return f"sed -n '{rng.randint(1, 4)}p' {path}"
    return f"sed 's/{_word_in(rng, tree, path)}/{rng.choice(VOCAB)}/' {path}"


def _tr(rng: random.Random, tree: Tree) -> str:
    path = _file(rng, tree)
    return rng.choice([f"tr a-z A-Z < {path}", f"tr -d aeiou < {path}", f"cat {path} | tr ' ' '\\n'"])


def _seq(rng: random.Random, tree: Tree) -> str:
    n = rng.randint(2, 8)
    return rng.choice([f"seq {n}", f"seq {rng.randint(1, 5)} {n + 5}", f"seq {n} | paste -sd+",
                       f"seq {n} | tac"])


def _misc(rng: random.Random, tree: Tree) -> str:
    path = _file(rng, tree)
    other = _file(rng, tree)
    return rng.choice([f"nl {path}", f"rev {path}", f"paste {path} {other}", f"diff {path} {other}",
                       f"basename {path}", f"dirname {path}", "pwd", f"cat {path} | wc -l",
                       f"head -n 2 {path} | tail -n 1"])


def _variable(rng: random.Random, tree: Tree) -> str:
    if tree.variables and rng.random() < 0.6:
        name = rng.choice(sorted(tree.variables))
        return rng.choice([f"echo ${name}", f"echo \"value: ${name}\"", f"echo ${{#{name}}}"])
    name = rng.choice(("X", "N", "NAME", "ITEM", "COUNT"))
    value = rng.choice([str(rng.randrange(1000)), rng.choice(VOCAB)])
    tree.variables[name] = value
    return f"{name}={value}; echo ${name}"


def _arithmetic(rng: random.Random, tree: Tree) -> str:
    a, b = rng.randrange(50), rng.randrange(1, 20)
    return rng.choice([f"echo $(({a} + {b}))", f"echo $(({a} * {b}))", f"expr {a} - {b}",
                       f"echo $(( {a} % {b} ))"])


COMMANDS: dict[str, Draw] = {
    "ls": _ls, "cat": _cat, "head/tail": _head_tail, "wc": _wc, "grep": _grep, "sort/uniq": _sort_uniq,
    "cut": _cut, "find": _find, "echo": _echo, "printf": _printf, "mkdir": _mkdir, "cp/mv": _copy_move,
    "rm/touch": _rm_touch, "python3": _python, "awk": _awk, "sed": _sed, "tr": _tr, "seq": _seq,
    "misc": _misc, "variable": _variable, "arithmetic": _arithmetic,
}
# how often each entry is drawn, relative to 1: reading and writing files most (their outputs are copies)
WEIGHTS = {"cat": 3, "head/tail": 2, "wc": 2, "grep": 2, "echo": 3, "variable": 2, "sort/uniq": 2}
# entries whose output may be saved to a new file (``CMD > new.txt``), which a later ``cat`` shows again
SAVABLE = ("cat", "head/tail", "grep", "sort/uniq", "cut", "awk", "sed", "tr", "seq", "printf")
SAVE_RATE = 0.2
# the program names the grammar can emit (tests check every one appears in a corpus of sessions)
PROGRAMS = ("ls cat head tail wc grep sort uniq cut find echo printf mkdir cp mv rm touch python3 awk sed tr seq "
            "nl rev paste diff basename dirname pwd expr tac").split()


def _mistake(rng: random.Random, tree: Tree) -> str:
    """A command that fails: a missing file, a bad option, a mistyped program."""
    path = _file(rng, tree)
    return rng.choice([f"cat missing_{rng.choice(VOCAB)}.txt", f"head -n {path}", f"wc --lines-only {path}",
                       f"grep {rng.choice(VOCAB)} nowhere/{path}", f"{rng.choice(('cta', 'sl', 'gerp', 'wcc'))} {path}",
                       f"cd {rng.choice(VOCAB)}_dir", f"rm {rng.choice(VOCAB)}.none"])


def session_commands(rng: random.Random, tree: Tree) -> list[str]:
    """4-10 commands for ``tree``, updating it; starting with a listing most of the time."""
    commands = [_ls(rng, tree)] if rng.random() < 0.7 else []
    names = sorted(COMMANDS)
    weights = [WEIGHTS.get(name, 1) for name in names]
    while len(commands) < rng.randint(4, 10):
        if rng.random() < MISTAKE_RATE:
            commands.append(_mistake(rng, tree))
            continue
        name = rng.choices(names, weights)[0]
        command = COMMANDS[name](rng, tree)
        if name in SAVABLE and ">" not in command and rng.random() < SAVE_RATE:
            target = tree.new_name(rng, "txt")
            tree.files[target] = ""  # what the command prints: unknown here, shown by the sandbox when read back
            command = f"{command} > {target}"
        commands.append(command)
    return commands


def session_task(index: int, seed: int = 0) -> Task:
    """Session ``index`` of ``seed`` as a Harbor task without tests (see the module docstring)."""
    rng = random.Random(f"{FAMILY}:{seed}:{index}")
    tree = random_tree(rng)
    files = dict(sorted(tree.files.items()))
    spec = Spec(instruction=rng.choice(INSTRUCTIONS), files=files, commands=[], checks=[], level=0,
                setup=[f"mkdir -p {' '.join(sorted(tree.folders))}"])
    commands = session_commands(rng, tree)
    config = {
        "schema_version": "1.1",
        "task": {"name": f"echo-rl/{FAMILY}-{seed}-{index}", "description": "a random shell session"},
        "metadata": {"family": FAMILY, "seed": seed, "generator": "echo-rl"},
        "environment": {"cpus": 1, "memory_mb": 1024, "allow_internet": False, "workdir": WORKDIR},
    }
    task_files = {SETUP_SCRIPT: setup_script(spec).encode(), SOLUTION_SCRIPT: solve_script(commands, WORKDIR).encode()}
    return Task(f"{FAMILY}-{seed}-{index}", spec.instruction + "\n", config, task_files,
                frozenset({SETUP_SCRIPT, SOLUTION_SCRIPT}))


def session_tasks(count: int, seed: int = 0) -> list[Task]:
    """Sessions 0 … ``count``-1 of ``seed``."""
    return [session_task(index, seed) for index in range(count)]
