"""Data-processing families over small text files: copying a value, following a pointer, counting log
lines, sorting and de-duplicating a list."""

from __future__ import annotations

from echo_rl.tasks.families.base import Rng, Spec, call, family, lines


@family("key_copy", "data", "copy an access code from the one key file among notes")
def key_copy(rng: Rng) -> Spec:
    level = rng.level()
    words = rng.words(3 + 2 * level)
    codes = rng.codes(len(words))
    key = f"key_{words[0]}.txt"
    files = {key: lines(f"code: {codes[0]}")}
    for word, code in zip(words[1:], codes[1:]):
        files[f"{word}.txt"] = lines(f"ref: {code}")
    files = dict(sorted(files.items()))
    return Spec(
        instruction="One file in this folder is a key file. Write the code it holds (digits only) to answer.txt.",
        files=files,
        commands=["ls", f"cat {key}", f"echo {codes[0]} > answer.txt"],
        checks=[call("expect_text", "answer.txt", codes[0])],
        level=level,
    )


@family("pointer_chase", "data", "follow a pointer file to the file that holds a code")
def pointer_chase(rng: Rng) -> Spec:
    level = rng.level()
    words = rng.words(2 + 2 * level)
    codes = rng.codes(len(words))
    target = f"notes/{words[0]}.txt"
    files = {"start.txt": lines(f"The code is in {target}")}
    files |= {f"notes/{word}.txt": lines(f"code {code}") for word, code in zip(words, codes)}
    return Spec(
        instruction="start.txt says where a code is kept. Write that code to answer.txt.",
        files=files,
        commands=["cat start.txt", f"cat {target}", f"echo {codes[0]} > answer.txt"],
        checks=[call("expect_text", "answer.txt", codes[0])],
        level=level,
    )


LEVELS = ("INFO", "WARN", "ERROR", "DEBUG")


@family("log_count", "data", "count the lines of one level in a log file")
def log_count(rng: Rng) -> Spec:
    level = rng.level()
    wanted = rng.choice(("ERROR", "WARN"))
    name = f"logs/{rng.choice(('app', 'worker', 'api', 'db'))}_{rng.code(2)}.log"
    events = rng.words(12)
    rows = [f"{rng.choice(LEVELS)} {event} done" for event in events[: 5 + 2 * level]]
    rows[rng.randrange(len(rows))] = f"{wanted} {events[-1]} failed"
    count = sum(row.startswith(wanted + " ") for row in rows)
    return Spec(
        instruction=f"Count the {wanted} lines in the log file under logs/ and write the number to count.txt.",
        files={name: lines(*rows)},
        commands=["ls logs", f"grep -c '^{wanted} ' {name}", f"echo {count} > count.txt"],
        checks=[call("expect_text", "count.txt", str(count))],
        level=level,
    )


@family("sort_dedup", "data", "sort a name list and drop duplicate lines")
def sort_dedup(rng: Rng) -> Spec:
    level = rng.level()
    names = rng.names(3 + level)
    rows = names + rng.choices(names, k=2 + level)
    rng.shuffle(rows)
    path = f"lists/{rng.choice(('team', 'guests', 'crew', 'club'))}_{rng.code(2)}.txt"
    return Spec(
        instruction="The list in lists/ has repeated names. Write its names sorted, each once, to unique.txt.",
        files={path: lines(*rows)},
        commands=["ls lists", f"cat {path}", f"sort -u {path} > unique.txt", "cat unique.txt"],
        checks=[call("expect_lines", "unique.txt", sorted(set(names)))],
        level=level,
    )
