"""``?group=G`` (issue 12, part 1): the exporter starts at a consumer group's
committed position, through the same store `logfs consume` and `logfs groups` use,
and never commits. A position the group lacks, or one retention removed, starts by
``reset`` (earliest by default) and says so in a ``Logfs-Note`` header."""

from __future__ import annotations

import os
import subprocess

from exporter_helpers import StreamReader, segment_bytes
from logfs.core import GroupStore


def _fill(store, n=300, topic="orders", name="eu"):
    if topic not in store.topics():
        store.create_topic(topic)
    log = store.create_log(topic, name)
    starts = [log.append(f"record {i:04d} {'z' * (i % 29)}\n".encode()) for i in range(n)]
    return log, starts


def test_group_starts_at_the_committed_position_and_is_never_written(store, exporter, data_dir):
    log, starts = _fill(store)
    data = segment_bytes(data_dir, "orders", "eu")
    groups = GroupStore(str(data_dir))
    groups.group("billing").commit({("orders", "eu"): (120, starts[120])})
    before = os.stat(groups.group("billing").path)
    status, headers, body = exporter.get("/orders/eu?group=billing")
    assert status == 200 and body == data[starts[120]:]
    assert headers["logfs-offset"] == str(starts[120]) and "logfs-note" not in headers
    # with until and with follow (curl -N), from the same position
    status, _h, body = exporter.get("/orders/eu?group=billing&until=1h")
    assert status == 200 and body == data[starts[120]:]
    after = os.stat(groups.group("billing").path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert groups.names() == ["billing"]


def test_follow_from_a_group_position(store, exporter, processes, data_dir):
    log, starts = _fill(store, n=50)
    GroupStore(str(data_dir)).group("g").commit({("orders", "eu"): (45, starts[45])})
    proc = subprocess.Popen(["curl", "-sSN", f"{exporter.url}/orders/eu?group=g&follow=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    processes.append(proc)
    reader = StreamReader(proc.stdout.read1)
    reader.wait_for(b"record 0049", 5)
    log.append(b"after the group\n")
    reader.wait_for(b"after the group\n", 2)
    assert reader.data.startswith(b"record 0045 ")


def test_a_group_without_a_position_starts_by_reset(store, exporter, data_dir):
    log, starts = _fill(store, n=40)
    data = segment_bytes(data_dir, "orders", "eu")
    status, headers, body = exporter.get("/orders/eu?group=new")
    assert status == 200 and body == data
    assert "no committed position" in headers["logfs-note"] and "earliest" in headers["logfs-note"]
    status, headers, body = exporter.get("/orders/eu?group=new&reset=latest&follow=0")
    assert status == 200 and body == b"" and headers["logfs-offset"] == str(log.end_offset)
    assert "latest" in headers["logfs-note"]
    # reading never creates the group
    assert GroupStore(str(data_dir)).names() == []


def test_a_position_retention_removed_is_reported_and_reset(store, exporter, data_dir):
    store.create_topic("orders")
    log = store.create_log("orders", "eu")
    store.set_log_config("orders", "eu", {"segment.bytes": "1000", "retention.bytes": "3000"})
    GroupStore(str(data_dir)).group("slow").commit({("orders", "eu"): (0, 0)})
    for i in range(400):
        log.append(f"line {i:04d}\n".encode())
    store.run_maintenance()
    assert log.start_offset > 0
    status, headers, body = exporter.get("/orders/eu?group=slow")
    assert status == 200 and "removed by retention" in headers["logfs-note"]
    first = log.record_position(log.start_record)
    assert headers["logfs-offset"] == str(first) and body == segment_bytes(data_dir, "orders", "eu")[
        first - log.start_offset:]


def test_group_refusals_are_400(store, exporter):
    _fill(store, n=5)
    for query in ("group=", "group=a%09b", "group=" + "x" * 250, "group=g&offset=0",
                  "group=g&reset=middle", "reset=latest", "group=g&group=h"):
        status, _h, body = exporter.get(f"/orders/eu?{query}")
        assert status == 400, (query, body)
