"""Bounded resources: a store of many logs and segments opens without opening or
mapping them all, and using every one of them keeps descriptors bounded (the
store's LRU), counted in /proc/self/fd and /proc/self/maps.

"Bounded" is checked as: once the store's caches are warm, touching more logs
must not cost more descriptors — a descriptor (or a mapping, which in CPython holds
a dup of its descriptor) kept per log grows without bound with the number of logs
and ends in EMFILE at 1,024 logs under the default ulimit.
"""

from __future__ import annotations

import os
import time

import pytest

from logfs.core import ManualClock, open_log_store

from storekit import fd_count, read_all

TOPICS, LOGS_PER_TOPIC, SEGMENTS = 10, 30, 4
RECORD = b"record %06d\n"  # 14 bytes


def maps_under(path) -> int:
    prefix = os.path.realpath(path)
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if prefix in line)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    data = tmp_path_factory.mktemp("many") / "data"
    data.mkdir()
    with open_log_store(str(data), defaults={"segment.bytes": "14", "index.interval.bytes": "8"},
                        clock=ManualClock(1)) as store:
        for t in range(TOPICS):
            store.create_topic(f"topic{t}")
            for n in range(LOGS_PER_TOPIC):
                log = store.create_log(f"topic{t}", f"log{n}")
                for i in range(SEGMENTS):
                    log.append(RECORD % i)  # one segment each
                assert log.segment_count == SEGMENTS
    return data


def _touch_all(store, data, write: bool) -> list[int]:
    """Read, seek (and append to) every log; fd count after each log."""
    expected = b"".join(RECORD % i for i in range(SEGMENTS))
    counts = []
    for topic in store.topics():
        for name in store.logs(topic):
            log = store.log(topic, name)
            assert read_all(log)[:len(expected)] == expected
            assert log.record_position(SEGMENTS // 2) == 14 * (SEGMENTS // 2)
            log.time_position(1)
            if write:
                log.append(b"more\n")
            counts.append(fd_count())
    assert len(counts) == TOPICS * LOGS_PER_TOPIC
    return counts


def _assert_bounded(counts: list[int], fds0: int, who: str) -> None:
    half = len(counts) // 2
    growth = max(counts[half:]) - counts[half]
    assert growth < 30, (
        f"{who}: descriptors grow with the number of logs used: {counts[half] - fds0} after "
        f"{half} logs, {max(counts[half:]) - fds0} after {len(counts)}")
    assert max(counts) - fds0 < 600, f"{who}: {max(counts) - fds0} descriptors open"


def test_reader_of_many_logs_is_bounded(many):
    fds0 = fd_count()
    with open_log_store(str(many), readonly=True) as reader:
        assert fd_count() - fds0 <= 5
        counts = _touch_all(reader, many, write=False)
    _assert_bounded(counts, fds0, "reader")
    assert fd_count() <= fds0 + 1, "close left descriptors open"


def test_writer_opens_lazily_and_stays_bounded(many):
    fds0, maps0 = fd_count(), maps_under(many)
    t0 = time.monotonic()
    with open_log_store(str(many)) as store:
        opened_in = time.monotonic() - t0
        assert store.was_clean
        assert fd_count() - fds0 <= 5, f"opening opened {fd_count() - fds0} descriptors"
        assert maps_under(many) - maps0 == 0, "opening mapped files"
        total = TOPICS * LOGS_PER_TOPIC * SEGMENTS
        assert opened_in < 2.0, f"a clean open of {total} segments took {opened_in:.2f}s"
        counts = _touch_all(store, many, write=True)
        assert maps_under(many) - maps0 < 600, "mappings not bounded"
    _assert_bounded(counts, fds0, "writer")
    assert fd_count() <= fds0 + 1, "close left descriptors open"
    assert maps_under(many) == maps0, "close left files mapped"


def test_recovery_of_many_logs_keeps_descriptors_bounded(many):
    """After a crash every log is verified; that must not leave every log open."""
    from storekit import abandon
    store = open_log_store(str(many))
    for topic in store.topics()[:3]:
        for name in store.logs(topic)[:5]:
            store.log(topic, name).append(b"before the crash\n")
    abandon(store, many)
    fds0 = fd_count()
    t0 = time.monotonic()
    with open_log_store(str(many)) as store:
        took = time.monotonic() - t0
        assert not store.was_clean
        held = fd_count() - fds0
        assert held < 600, f"recovery of {TOPICS * LOGS_PER_TOPIC} logs left {held} descriptors open"
        assert took < 20, f"recovery of {TOPICS * LOGS_PER_TOPIC * SEGMENTS} segments took {took:.1f}s"
        assert list(many.rglob("*quarantine*")) == [], "recovery after kill -9 cut data"
        log = store.log(store.topics()[0], store.logs(store.topics()[0])[0])
        assert log.read(log.end_offset - 17, 17) == b"before the crash\n"


@pytest.mark.parametrize("capacity", [4, 5, 8])
def test_a_read_over_more_segments_than_the_cache_holds(tmp_path, capacity):
    """One read_range spanning more segments than the store's resource cache holds
    must not hand out a descriptor that the cache closes (and the next open reuses)
    before the call returns: the bytes read through every range are the log's."""
    data = tmp_path / "data"
    data.mkdir()
    content = b"".join(b"line %04d\n" % i for i in range(400))  # 10-byte lines
    with open_log_store(str(data), defaults={"segment.bytes": "100"}, clock=ManualClock(1),
                        cache_capacity=capacity) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        for i in range(0, len(content), 50):
            log.append(content[i:i + 50])
        assert log.segment_count >= 3 * capacity
        assert log.read(0, len(content)) == content
        assert read_all(log) == content
        for a in (7, 95, 333, 1234):
            assert log.read(a, 2 * capacity * 100) == content[a:a + 2 * capacity * 100]
    with open_log_store(str(data), readonly=True, cache_capacity=capacity) as reader:
        log = reader.log("t", "l")
        assert log.read(0, len(content)) == content
        assert read_all(log) == content
