"""The package's import structure: no import cycles between modules, and no package importing one above it.

Every import counts, including those inside functions (a lazy import is still a dependency); only imports under
``if TYPE_CHECKING:`` are left out. ``from echo_rl.pkg import sub`` where ``sub`` is a module counts as an import of
``echo_rl.pkg.sub``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top; a package may import its own layer's modules and those below it.
LAYERS = [
    # echo_rl: its __init__
    {"echo_rl", "errors", "futures", "sequences", "roles", "seeding", "cpu_kernels", "loss", "distributed"},
    {"config", "configfile", "rundir", "cache"},
    {"sandbox"},
    {"tasks"},
    {"harness"},
    {"models"},
    {"rollout"},
    {"objective"},
    {"eval"},
    {"train"},
    {"report", "integrations"},
    {"demo"},
    {"cli"},
    {"__main__"},
]
# The config schema's validators check task family names against the registry (tasks imports config for its types).
ALLOWED_UPWARD = {("config", "tasks")}


def module_names() -> dict[str, Path]:
    names = {}
    for path in (SRC / "echo_rl").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The echo_rl modules ``path`` imports (see the module docstring)."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level or not node.module:
                return
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
            if len(submodules) < len(node.names):
                found.add(node.module)
            found.update(submodules)

    Visitor().visit(ast.parse(path.read_text()))
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "echo_rl"


def layer_of(package: str) -> int:
    return next(level for level, members in enumerate(LAYERS) if package in members)


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_finder_sees_a_lazy_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_every_package_has_a_layer():
    packages = {package_of(name) for name in module_names()}
    assert packages <= set().union(*LAYERS)


def test_no_package_imports_one_above_it():
    upward = set()
    for module, targets in import_graph().items():
        source = package_of(module)
        for target in targets:
            pair = (source, package_of(target))
            if layer_of(pair[1]) > layer_of(pair[0]) and pair not in ALLOWED_UPWARD:
                upward.add(f"{module} -> {target}")
    assert sorted(upward) == []
