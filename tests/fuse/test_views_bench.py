"""logfs/bench/views_bench.py runs end to end at a tiny size (a behaviour check: it
measures nothing here): the function the harness calls on a mount, and the standalone
command, which builds, mounts and unmounts by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fuse_helpers import REPO, mounted, require_fuse
from logfs.bench.views_bench import KINDS, measure_view_open
from logfs.core import GroupStore

pytestmark = pytest.mark.fuse


def test_measure_view_open_reports_every_kind(mnt):
    with open(mnt.p("t", "web"), "ab") as f:
        f.write(b"".join(f"{i:09d} ".encode() + b"x" * 89 + b"\n" for i in range(3000)))
    got = measure_view_open(str(mnt.mnt), "t", "web", 5)
    assert got["records"] == 3000 and got["samples"] == 5
    for kind in KINDS:
        assert 0 < got[f"{kind}_p50_ms"] <= got[f"{kind}_p99_ms"] <= got[f"{kind}_max_ms"], kind
    assert isinstance(got["within_target"], bool)
    assert GroupStore(str(mnt.data)).names() == []  # its group is removed afterwards


def test_views_bench_runs_standalone(tmp_path):
    require_fuse()
    r = subprocess.run([sys.executable, "-m", "logfs.bench.views_bench", "--records", "20000",
                        "--samples", "3", "--workdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode in (0, 2), r.stderr  # 2: over the target on a loaded machine
    got = json.loads(r.stdout)
    assert got["records"] == 20000 and all(f"{k}_p99_ms" in got for k in KINDS)
    left = [p for p in tmp_path.rglob("*") if p.is_dir() and mounted(str(p))]
    assert left == [] and os.listdir(tmp_path) == []
