"""The import graph of the core and the first-party strategies has no cycle.

Every import statement counts: module level, inside functions (lazy imports) and under
`TYPE_CHECKING`. A cycle means two modules that cannot be read, tested or moved apart; the
layout (contract, runtime, envs, data, nn, promotion, cli, testing) exists to avoid them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [
    ROOT / "townlet_core" / "src",
    ROOT / "townlet_strategies_bc" / "src",
    ROOT / "townlet_strategies_ppo" / "src",
    ROOT / "townlet_strategies_anneal" / "src",
]


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for source_root in SOURCE_ROOTS:
        for path in source_root.rglob("*.py"):
            parts = path.relative_to(source_root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of ours that `path` imports anywhere (a `from a import b` of a submodule
    `a.b` counts as importing `a.b`, else as importing `a`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return {name for name in found if name in modules}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    modules = _modules()
    assert "townlet_core.runtime.orchestrator" in modules, "source layout not found"
    graph = {name: _imported(path, modules) - {name} for name, path in modules.items()}
    assert find_cycles(graph) == []


def test_the_orchestrator_stays_a_facade() -> None:
    module = ROOT / "townlet_core" / "src" / "townlet_core" / "runtime" / "orchestrator.py"
    lines = module.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"{module} has {len(lines)} lines; move jobs out of it"
