"""Retention (docs/spec.md §6): whole sealed segments, oldest first, never the active
one; applied whenever a segment rolls and at least once a minute otherwise, so
retention.bytes holds within one segment of its value while data flows."""

from __future__ import annotations

import pytest

from logfs.core import ManualClock, OffsetOutOfRange, open_log_store

from storekit import read_all

T0 = 1_700_000_000_000


@pytest.fixture
def store(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(T0)
    s = open_log_store(str(data), defaults={"segment.bytes": "100", "index.interval.bytes": "20"},
                       clock=clock)
    s.create_topic("t")
    s.create_log("t", "l")
    yield s
    s.close()


def test_retention_bytes_is_applied_when_a_segment_rolls(store):
    """No run_maintenance here: the rolls alone must keep the log near its limit."""
    log = store.log("t", "l")
    store.set_log_config("t", "l", {"retention.bytes": "1000"})
    worst = 0
    for i in range(400):
        log.append(b"%049d\n" % i)  # 50 bytes
        worst = max(worst, log.end_offset - log.start_offset)
    assert worst <= 1000 + 100, (
        f"the log grew to {worst} bytes with retention.bytes 1000 and segment.bytes 100 "
        f"(retention must run when a segment rolls)")


def test_retention_ms_uses_the_newest_data_of_a_segment(store):
    log = store.log("t", "l")
    store.set_log_config("t", "l", {"retention.ms": "10000", "segment.bytes": "1000"})
    log.append(b"old\n")                  # segment 0 starts at T0 ...
    store.clock.advance(9_000)
    log.append(b"x" * 995 + b"\n")        # ... and is last written at T0 + 9000 (1000 bytes)
    log.append(b"next segment\n")         # rolls
    assert log.segment_count == 2
    store.clock.set(T0 + 9_000 + 10_000)  # exactly retention.ms after the newest data
    store.run_maintenance()
    assert log.start_offset == 0, "deleted a segment whose newest data is not older than retention.ms"
    store.clock.advance(1)
    store.run_maintenance()
    assert log.start_offset == 1000, "kept a segment whose newest data is older than retention.ms"
    with pytest.raises(OffsetOutOfRange):
        log.read(0, 1)
    assert read_all(log) == b"next segment\n"


def test_retention_never_deletes_the_active_segment(store):
    log = store.log("t", "l")
    store.set_log_config("t", "l", {"retention.ms": "0", "retention.bytes": "0"})
    for i in range(10):
        log.append(b"%019d\n" % i)
    store.clock.advance(1_000)
    store.run_maintenance()
    assert log.segment_count == 1
    active_start = log.start_offset
    assert read_all(log) == b"".join(b"%019d\n" % i for i in range(10))[active_start:]
    assert log.end_offset == 200 and log.records == 10
    log.append(b"after\n")
    assert log.read(200, 6) == b"after\n"


def test_last_append_time_outlives_the_segments_that_held_it(store):
    """segment.ms rolls the active segment, retention.ms then deletes it: the log is
    empty but it was appended to, and describe must still say when."""
    log = store.log("t", "l")
    store.set_log_config("t", "l", {"segment.ms": "1000", "retention.ms": "1000"})
    log.append(b"once\n")
    store.clock.advance(5_000)
    store.run_maintenance()  # rolls (segment.ms)
    store.run_maintenance()  # and deletes the sealed segment (retention.ms)
    assert log.start_offset == log.end_offset == 5
    assert log.last_append_ms == T0, f"last_append_ms {log.last_append_ms}, the append was at {T0}"
    assert log.describe()["last_append_ms"] == T0


def test_retention_inherited_from_the_topic_and_the_defaults(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(T0)
    with open_log_store(str(data), defaults={"segment.bytes": "100", "retention.ms": "60000"},
                        clock=clock) as store:
        store.create_topic("bytes")
        store.create_topic("time")
        store.set_topic_config("bytes", {"retention.bytes": "500", "retention.ms": "-1"})
        a = store.create_log("bytes", "a")
        b = store.create_log("time", "b")
        for i in range(50):
            a.append(b"%049d\n" % i)
            b.append(b"%049d\n" % i)
        clock.advance(60_001)
        b.append(b"now\n")  # rolls; everything before is older than retention.ms
        store.run_maintenance()
        assert 500 - 100 <= a.end_offset - a.start_offset <= 500 + 100, "topic retention.bytes not applied"
        assert b.start_offset == 2500, "store-wide retention.ms not applied"
        assert read_all(b) == b"now\n"
