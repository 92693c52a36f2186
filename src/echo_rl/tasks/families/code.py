"""Development-tooling families over small programs: fix a one-character bug so a test passes, run the
right make target, run a script with an argument read from a file."""

from __future__ import annotations

import operator
import string

from echo_rl.tasks.families.base import Rng, Spec, call, family, lines

OPERATORS = {"total": "+", "difference": "-", "product": "*", "quotient": "//", "remainder": "%"}
APPLY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "%": operator.mod}
MODULES = ("calc", "mathops", "arith", "numbers_util", "ops")


def _module_call(module: str, function: str, a: int, b: int) -> list[str]:
    """argv printing ``function(a, b)`` from the SOURCE of the workdir's ``module``.py (never a cached
    ``.pyc``: an edit that keeps the file's size within the same second would not invalidate it)."""
    code = f"ns = {{}}; exec(open('{module}.py').read(), ns); print(ns['{function}']({a}, {b}))"
    return ["python3", "-I", "-B", "-c", code]


@family("python_fix", "dev", "fix a wrong operator in a Python function so its test passes")
def python_fix(rng: Rng) -> Spec:
    level = rng.level()
    module = rng.choice(MODULES)
    functions = rng.sample(sorted(OPERATORS), 1 + level)
    buggy = functions[0]
    wrong = rng.choice([op for op in APPLY if op != OPERATORS[buggy]])
    rng.shuffle(functions)
    source = []
    for function in functions:
        op = wrong if function == buggy else OPERATORS[function]
        source += [f"def {function}(a, b):", f"    return a {op} b", ""]
    line = 2 + 3 * functions.index(buggy)
    right = OPERATORS[buggy]
    pairs = []
    while len(pairs) < 2:  # inputs on which the bug shows: a visible one for the test, a hidden one
        x, y = rng.randrange(2, 100), rng.randrange(2, 100)
        if APPLY[right](x, y) != APPLY[wrong](x, y):
            pairs.append((x, y))
    (a, b), _ = pairs
    # The fix keeps the file's size: without dont_write_bytecode a stale .pyc could be run after it.
    test = lines("import sys", "sys.dont_write_bytecode = True", f"from {module} import {buggy}",
                 f"assert {buggy}({a}, {b}) == {APPLY[right](a, b)}", 'print("ok")')
    pattern = f"a {wrong} b".replace("*", "\\*")
    return Spec(
        instruction=f"python3 test_{module}.py fails. Fix the bug in {module}.py so that the test passes; do not "
        "edit the test.",
        files={f"{module}.py": lines(*source[:-1]), f"test_{module}.py": test},
        commands=[f"python3 test_{module}.py", f"cat -n {module}.py",
                  f"sed -i '{line}s|{pattern}|a {right} b|' {module}.py", f"python3 test_{module}.py"],
        checks=[call("expect_output", _module_call(module, buggy, x, y), str(APPLY[right](x, y))) for x, y in pairs],
        level=level,
    )


@family("make_target", "dev", "run the one make target that builds a given file")
def make_target(rng: Rng) -> Spec:
    level = rng.level()
    words = rng.words(2 + level)
    targets = [f"job-{code}" for code in rng.codes(len(words), digits=3)]
    contents = [f"{word} {rng.code(4)}" for word in words]
    makefile = []
    for target, word, content in zip(targets, words, contents):
        makefile += [f".PHONY: {target}", f"{target}:", f"\tmkdir -p out && echo '{content}' > out/{word}.txt", ""]
    pick = rng.randrange(len(words))
    return Spec(
        instruction=f"Use the Makefile to build out/{words[pick]}.txt. Run only the target that makes it.",
        files={"Makefile": lines(*makefile[:-1])},
        commands=["cat Makefile", f"make {targets[pick]}", f"cat out/{words[pick]}.txt"],
        checks=[call("expect_files", "out", [f"{words[pick]}.txt"]),
                call("expect_text", f"out/{words[pick]}.txt", contents[pick])],
        level=level,
    )


TRANSFORMS = {
    "upper": ("print(sys.argv[1].upper())", str.upper),
    "reverse": ("print(sys.argv[1][::-1])", lambda s: s[::-1]),
    "double": ("print(sys.argv[1] * 2)", lambda s: s * 2),
}


@family("script_run", "dev", "run a script with the code from a file and save its output")
def script_run(rng: Rng) -> Spec:
    level = rng.level()
    name = rng.choice(sorted(TRANSFORMS))
    source, transform = TRANSFORMS[name]
    code = "".join(rng.choices(string.ascii_lowercase + string.digits, k=4 + level))
    return Spec(
        instruction="Run tool.py with the code from code.txt as its only argument and save what it prints to "
        "result.txt.",
        files={"tool.py": lines("import sys", "", source), "code.txt": lines(code)},
        commands=["ls", "cat code.txt", f"python3 tool.py {code} > result.txt", "cat result.txt"],
        checks=[call("expect_text", "result.txt", transform(code))],
        level=level,
    )
