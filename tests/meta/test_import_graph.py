"""No import cycles between logfs's modules, TYPE_CHECKING imports included, and no
use of a dependency's private names (``h11._events``, ``from trio._core import``).

Reads every module under logfs/ with ast (nothing is imported), builds the graph of
"module A imports module B" for imports inside the package (absolute and relative,
at any depth: functions, TYPE_CHECKING blocks), and looks for strongly connected
components with more than one module. A package's __init__ re-exporting its
submodules is an edge like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "logfs"
# underscored names that are documented API: os._exit (the os module's docs) and
# logging._srcfile (the logging HOWTO's "Optimization": set it to None to skip the
# caller lookup of every record)
PUBLIC_UNDERSCORED = {"os._exit", "logging._srcfile"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(modules of the package imported by *path*, private names of other packages)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    private: set[str] = set()
    aliases: dict[str, str] = {}  # a name bound to a module of another package
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not a.name.startswith("logfs"):
                    aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__"):
            private.add(f"{aliases[node.value.id]}.{node.attr}")
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names]
            # `from pkg import submodule` depends on the submodule; `from pkg import
            # name` on pkg (its __init__) itself
            targets = subs + ([mod] if any(t not in modules for t in subs) else [])
        for t in targets:
            if t.startswith("logfs"):
                # the deepest module of the package that the name denotes
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    found.add(t)
            elif any(part.startswith("_") and not part.startswith("__") for part in t.split(".")):
                private.add(t)
    return found, private


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    paths = {module_name(p): p for p in PKG.rglob("*.py")}
    # the C extensions (setup.py builds logfs/x/_name.c as logfs.x._name) import nothing of ours
    modules = set(paths) | {module_name(p) for p in PKG.rglob("*.c")}
    edges, privates = {}, {}
    for name, path in paths.items():
        edges[name], privates[name] = imports_of(path, modules)
    return edges, privates


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_logfs():
    edges, _ = graph()
    assert len(edges) > 20, "the checker found too few modules"
    found = cycles(edges)
    assert found == [], f"import cycles: {found}"


def test_no_private_names_of_dependencies():
    _, privates = graph()
    bad = {m: sorted(p - PUBLIC_UNDERSCORED) for m, p in privates.items() if p - PUBLIC_UNDERSCORED}
    assert bad == {}, f"modules importing private names of other packages: {bad}"
