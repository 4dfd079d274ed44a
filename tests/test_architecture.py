"""The architecture DESIGN.md promises, read from the source with `ast`.

* The debugger sees the simulator only through `Target`, the control surface and the layouts:
  no module of commands/ imports another simulator module.
* Only commands registered as acting on the machine use the target's control surface, and no
  command reads the target's address space behind `Target`'s back.
* No import cycles in kdsim/, commands/, pooltag/ (every import statement counts, those inside
  functions too; type-only imports under `if TYPE_CHECKING:` do not).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable, Iterator

from commands.dispatch import load_commands
from commands.registry import all_commands
from tests.support import ROOT

PACKAGES = ("kdsim", "commands", "pooltag")
SIMULATOR = "kdsim"
ALLOWED = ("kdsim.control", "kdsim.target", "kdsim.arch", "kdsim.layouts")
# Layout tables the layouts profile package (kdsim/layouts/) takes over from the simulator
# modules: allowed until then, and each entry must still be in use (drop it when it is not).
def _modules() -> dict[str, Path]:
    """Every module of the three packages by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(nodes: Iterable[ast.AST],
                  with_type_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements among `nodes` and inside them, with or without those under
    `if TYPE_CHECKING:`."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _type_checking(node) and not with_type_only:
            yield from _import_nodes(node.orelse, with_type_only)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), with_type_only)


def _imported(name: str, path: Path, with_type_only: bool) -> set[str]:
    """The dotted names a module imports (for `from X import y`: X.y when that is a module
    of ours, else X)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes([tree], with_type_only):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}"
            names.add(full if full in MODULES else module)
    return names


def _ours(name: str) -> str | None:
    """The module of ours that importing `name` executes last (a package for a name in it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        targets = {_ours(n) for n in _imported(name, path, with_type_only=False)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c), c[0]) for c in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """A shortest path from `start` back to itself inside the component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def _command_modules() -> Iterator[tuple[str, Path]]:
    for name, path in MODULES.items():
        if name.split(".")[0] == "commands":
            yield name, path


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_commands_import_only_the_targets_interface_from_the_simulator() -> None:
    bad: list[str] = []
    for name, path in _command_modules():
        where = path.relative_to(ROOT).as_posix()
        for imported in sorted(_imported(name, path, with_type_only=True)):
            module = _ours(imported)
            if module is None or module.split(".")[0] != SIMULATOR:
                continue
            if any(module == a or module.startswith(a + ".") for a in ALLOWED):
                continue
            bad.append(f"{where} imports {module}")
    assert not bad, "\n".join(bad)


def _attributes(path: Path, attr: str) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == attr]


def test_only_acting_commands_use_the_control_surface() -> None:
    load_commands()
    acting: dict[str, bool] = {}
    for cmd in all_commands():
        module = cmd.func.__module__
        acting[module] = acting.get(module, True) and cmd.acts
    bad = [f"{path.relative_to(ROOT).as_posix()}:{line} uses .control"
           for name, path in _command_modules() if not acting.get(name, False)
           for line in _attributes(path, "control")]
    assert not bad, ("only modules whose commands are all registered as acting "
                     "(target_action or action_forms) may use the target's control:\n"
                     + "\n".join(bad))
    assert acting["commands.target_cmds"] and acting["commands.ext.verifier"]


def test_commands_read_memory_only_through_the_target() -> None:
    bad = [f"{path.relative_to(ROOT).as_posix()}:{line} uses .memory"
           for _, path in _command_modules() for line in _attributes(path, "memory")]
    assert not bad, "\n".join(bad)
