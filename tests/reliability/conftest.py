"""Fixtures of the reliability suite (issue 5): real mounts, real exporters, a tmpfs.

Everything a test starts is stopped at teardown, whatever the test did: mounts are
unmounted (`logfs umount`, then `fusermount3 -u -z`), daemons and exporters SIGKILLed
if still alive, tmpfs filesystems unmounted (lazily as a last resort).

Each test records the figures docs/reliability.md reports (trials, bytes checked,
fd and RSS peaks, mount times) with the ``figures`` fixture; they are printed at the
end of the run ("reliability figures").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for sub in ("fuse", "exporter", "unit"):
    p = str(HERE.parent / sub)
    if p not in sys.path:
        sys.path.append(p)

from fuse_helpers import Mount, mounted, new_mount, require_fuse, tear_down  # noqa: E402

FIGURES: dict[str, dict] = {}


@pytest.fixture
def figures(request):
    """A dict for this test's figures. Numbers are summed over a parametrized test's
    cases (``runs`` counts them); other values keep the last one. Printed at the end."""
    d: dict = {}
    yield d
    total = FIGURES.setdefault(request.node.originalname, {"runs": 0})
    total["runs"] += 1
    for k, v in d.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("max_"):
            total[k] = total.get(k, 0) + v
        elif k.startswith("max_"):
            total[k] = max(total.get(k, v), v)
        else:
            total[k] = v


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, d in FIGURES.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items()))


@pytest.fixture
def mount_factory(tmp_path):
    """``make(data, mnt, *options)`` -> a :class:`Mount` (not yet mounted unless
    ``do_mount``); all are torn down, and a daemon that logged an ERROR fails the test."""
    require_fuse()
    made: list[Mount] = []

    def make(data: Path, mnt: Path, *options: str, do_mount: bool = True) -> Mount:
        return new_mount(made, data, mnt, options, do_mount)

    yield make
    tear_down(made)


@pytest.fixture
def tmpfs(tmp_path):
    """``make(size_bytes)`` -> a directory on a fresh tmpfs of that size (root only)."""
    made: list[str] = []

    def make(size: int, name: str = "tmpfs") -> Path:
        if os.geteuid() != 0:
            if os.environ.get("CI") == "true":
                pytest.fail("CI=true but not root: cannot mount a tmpfs")
            pytest.skip("mounting a tmpfs needs root")
        d = tmp_path / name
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(d)],
                       check=True, capture_output=True, timeout=30)
        made.append(str(d))
        return d

    yield make
    for d in reversed(made):
        r = subprocess.run(["umount", d], capture_output=True, timeout=30)
        if r.returncode != 0 and mounted(d):
            subprocess.run(["umount", "-l", d], capture_output=True, timeout=30)
