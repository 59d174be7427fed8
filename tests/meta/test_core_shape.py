"""The storage core stays readable (issue 10): no function in logfs/core longer than
60 lines, and the core imports nothing of FUSE, trio, h11 or sockets."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "logfs" / "core"
MAX_LINES = 60
FORBIDDEN = {"pyfuse3", "trio", "h11", "socket"}


def _trees():
    for path in sorted(CORE.glob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def test_no_long_functions_in_the_core():
    long = [f"{p.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for p, t in _trees()
            for n in ast.walk(t) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_LINES]
    assert long == [], f"functions over {MAX_LINES} lines: {long}"


def test_the_core_imports_no_adapter_library():
    bad = []
    for p, t in _trees():
        for n in ast.walk(t):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module or ""] if isinstance(n, ast.ImportFrom) and not n.level else []
            bad += [f"{p.name}: {m}" for m in names if m.split(".")[0] in FORBIDDEN]
    assert bad == [], bad
