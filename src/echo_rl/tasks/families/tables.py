"""Data-processing families over small tables: CSV lookup and aggregation, a JSON field, a process
snapshot."""

from __future__ import annotations

import json

from echo_rl.tasks.families.base import Rng, Spec, call, family, lines


def _csv(header: str, rows: list[tuple[object, ...]]) -> str:
    return lines(header, *(",".join(str(cell) for cell in row) for row in rows))


@family("csv_lookup", "data", "look up one item's quantity in a CSV inventory")
def csv_lookup(rng: Rng) -> Spec:
    level = rng.level()
    items = rng.words(3 + 2 * level)
    qtys = [rng.randrange(2, 99) for _ in items]
    pick = rng.randrange(len(items))
    return Spec(
        instruction=f"How many {items[pick]} units are in stock per inventory.csv? Write the number to answer.txt.",
        files={"inventory.csv": _csv("item,qty", list(zip(items, qtys)))},
        commands=["ls", "cat inventory.csv", f"echo {qtys[pick]} > answer.txt"],
        checks=[call("expect_text", "answer.txt", str(qtys[pick]))],
        level=level,
    )


REGIONS = ("north", "south", "east", "west")


@family("csv_aggregate", "data", "sum the amounts of one region in a sales CSV")
def csv_aggregate(rng: Rng) -> Spec:
    level = rng.level()
    region = rng.choice(REGIONS)
    rows = [(rng.choice(REGIONS), rng.randrange(5, 60)) for _ in range(4 + 2 * level)]
    rows[rng.randrange(len(rows))] = (region, rng.randrange(5, 60))
    total = sum(amount for where, amount in rows if where == region)
    return Spec(
        instruction=f"Write the total amount sold in the {region} region, per sales.csv, to total.txt.",
        files={"sales.csv": _csv("region,amount", rows)},
        commands=[
            "head -3 sales.csv",
            f"awk -F, '$1==\"{region}\" {{s+=$2}} END {{print s}}' sales.csv",
            f"echo {total} > total.txt",
        ],
        checks=[call("expect_text", "total.txt", str(total))],
        level=level,
    )


@family("json_field", "data", "read one service's port from a JSON file")
def json_field(rng: Rng) -> Spec:
    level = rng.level()
    names = rng.words(2 + level)
    ports = [int(code) for code in rng.codes(len(names))]
    pick = rng.randrange(len(names))
    services = [{"name": name, "port": port} for name, port in zip(names, ports)]
    text = "[\n" + ",\n".join("  " + json.dumps(s) for s in services) + "\n]\n"
    return Spec(
        instruction=f"Which port does the {names[pick]} service use according to services.json? "
        "Write the port to port.txt.",
        files={"services.json": text},
        commands=["ls", "cat services.json", f"echo {ports[pick]} > port.txt"],
        checks=[call("expect_text", "port.txt", str(ports[pick]))],
        level=level,
    )


@family("proc_top", "sysops", "find the process using the most memory in a ps snapshot")
def proc_top(rng: Rng) -> Spec:
    level = rng.level()
    commands = rng.words(4 + 2 * level)
    pids = sorted(int(pid) for pid in rng.codes(len(commands)))
    mems = rng.sample(range(1, 60), len(commands))
    rows = [f"{pid} {rng.choice(('root', 'app', 'www'))} {mem}.{rng.randrange(10)} {command}"
            for pid, mem, command in zip(pids, mems, commands)]
    top = pids[mems.index(max(mems))]
    return Spec(
        instruction="ps.txt is a snapshot of ps output. Write the PID of the process using the most memory "
        "to pid.txt.",
        files={"ps.txt": lines("PID USER %MEM COMMAND", *rows)},
        commands=["head -3 ps.txt", "sort -k3 -n -r ps.txt | head -2", f"echo {top} > pid.txt"],
        checks=[call("expect_text", "pid.txt", str(top))],
        level=level,
    )
