"""The core benchmark (python -m logfs.bench.core) runs and reports every figure
(a tiny size: this checks the script, it measures nothing)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_core_benchmark_runs_and_reports(tmp_path):
    out = subprocess.run([sys.executable, "-m", "logfs.bench.core", "--size-mib", "2", "--seeks", "200",
                          "--json", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("plain_lines", "logfs_lines", "plain_chunks", "logfs_chunks", "plain_read", "logfs_read",
                "plain_seek", "logfs_seek", "logfs_time_seek"):
        assert r[key]["MB_s"] > 0 and r[key]["records_s"] > 0, key
    assert set(r["ratio"]) == {"append_lines", "append_chunks", "read", "seek_records"}
    assert "logfs: append 100 B lines" in out.stderr, "no progress on stderr"
    assert list(tmp_path.iterdir()) == [], "the benchmark left its working directory behind"
