"""The exporter's modules import each other without cycles (imports under
TYPE_CHECKING count too), and the adapter imports no private module of h11 or trio."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import logfs.exporter

PACKAGE = "logfs.exporter"
ROOT = Path(logfs.exporter.__file__).parent


def module_graph(package: str, root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (anywhere in the file)."""
    modules = {p.stem for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name in modules:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = package + ("." + base if base else "")
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                if t.startswith(package + "."):
                    sub = t[len(package) + 1:].split(".")[0]
                    if sub in modules and sub != name:
                        graph[name].add(sub)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles():
    graph = module_graph(PACKAGE, ROOT)
    assert "connection" in graph and graph["connection"], graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


PRIVATE = re.compile(r"\b(?:pyfuse3|h11|trio)\._[^_]")  # h11._events, not pyfuse3.__file__


def test_no_private_names_of_dependencies():
    for path in ROOT.glob("*.py"):
        used = PRIVATE.findall(path.read_text())
        assert not used, f"{path.name} uses private names of a dependency: {used}"
