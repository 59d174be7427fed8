"""scripts/outside_bench.py (the measurements made the way a user would, sharing no
code with the harness) runs end to end at its smallest sizes and reports every
figure docs/performance.md quotes from it. A behaviour check: it measures nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_outside_bench_reports_every_figure(tmp_path):
    missing = [t for t in ("bindfs", "nginx", "curl", "fusermount3") if not shutil.which(t)
               and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        pytest.skip(f"not installed: {missing} (the harness installs them: logfs bench)")
    out = tmp_path / "out.json"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "outside_bench.py"), "--quick", "--json", str(out),
                        "--dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    for k in ("W2_logfs_over_bindfs", "W3_logfs_over_bindfs", "logfs_W2_best", "bindfs_W3_best"):
        assert res["w2"][k] > 0, (k, res["w2"])
    for rate in (1, 10, 100, 1000):
        assert 0 <= res["w5"][f"rate_{rate}_p50_ms"] <= res["w5"][f"rate_{rate}_p99_ms"] < 1000, res["w5"]
    assert len(res["w5"]["quiet_all_ms"]) == 3
    for key in ("10MiB", "256MiB", "100x10MiB"):
        for figure in ("throughput", "median_throughput"):
            assert res["w6"][f"{key}_{figure}_logfs_over_nginx"] > 0, res["w6"]
        for figure in ("cpu", "median_cpu"):  # (a quick run's CPU can be 0 ticks)
            assert res["w6"][f"{key}_{figure}_logfs_over_nginx"] >= 0, res["w6"]
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(tmp_path) in line], "a mount was left behind"
    assert not list(tmp_path.glob("logfs-outside-*")), "the working directory was left behind"
