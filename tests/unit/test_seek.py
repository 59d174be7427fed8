"""Seeks by record and by time across many segments, with a ManualClock.

Also: a seek costs a binary search plus a short scan, never a scan of the log —
measured as the bytes the process reads (/proc/self/io rchar) per seek.
"""

from __future__ import annotations

import random

import pytest

from logfs.core import ManualClock, OffsetOutOfRange, open_log_store

from storekit import check_records, check_time_end_position, check_time_position, record_starts

TOPIC, LOG = "metrics", "cpu"
T0 = 1_700_000_000_000


def build(data, segment_bytes=1_000, interval=64, lines=3_000, seed=3):
    """A log of *lines* lines of varying length, appended whole, in pieces and in
    batches, at times that advance in bursts. Returns (store, content, appends)."""
    rnd = random.Random(seed)
    data.mkdir(exist_ok=True)
    clock = ManualClock(T0)
    store = open_log_store(str(data), defaults={"segment.bytes": str(segment_bytes),
                                                "index.interval.bytes": str(interval)}, clock=clock)
    store.create_topic(TOPIC)
    log = store.create_log(TOPIC, LOG)
    content = bytearray()
    appends = []

    def put(b: bytes) -> None:
        at = log.append(b)
        assert at == len(content)
        appends.append((at, len(b), clock.now_ms()))
        content.extend(b)

    i = 0
    while i < lines:
        kind = rnd.random()
        text = f"{i} {'x' * rnd.randrange(0, 120)}\n".encode()
        if kind < 0.6:
            put(text)
            i += 1
        elif kind < 0.8:  # a line in two appends, possibly at different times
            cut = rnd.randrange(1, len(text))
            put(text[:cut])
            if rnd.random() < 0.5:
                clock.advance(1)
            put(text[cut:])
            i += 1
        else:  # a batch of lines in one append
            batch = b"".join(f"{i + k} batch\n".encode() for k in range(rnd.randrange(2, 20)))
            put(batch)
            i += batch.count(b"\n")
        r = rnd.random()
        clock.advance(0 if r < 0.5 else 1 if r < 0.9 else rnd.randrange(100, 5_000))
    return store, bytes(content), appends


def test_record_and_time_seeks_across_many_segments(tmp_path):
    store, content, appends = build(tmp_path / "data")
    with store:
        log = store.log(TOPIC, LOG)
        assert log.segment_count > 50
        check_records(log, content, sample=10**6)
        times = sorted({a[2] for a in appends})
        for t in [T0 - 1] + times + [t + 1 for t in times[::5]] + [times[-1] + 10**6]:
            check_time_position(log, content, appends, t, 64)
            check_time_end_position(log, content, appends, t, 64)
        # the same answers from a reader in another process' role
        with open_log_store(str(tmp_path / "data"), readonly=True) as reader:
            rlog = reader.log(TOPIC, LOG)
            for n in range(0, log.records + 2, 13):
                assert rlog.record_position(n) == log.record_position(n)
            for t in times[::7]:
                assert rlog.time_position(t) == log.time_position(t)
    # and after a reopen
    with open_log_store(str(tmp_path / "data"), clock=ManualClock(times[-1] + 1)) as store:
        log = store.log(TOPIC, LOG)
        check_records(log, content, sample=500)
        for t in times[::11]:
            check_time_position(log, content, appends, t, 64)


def test_seeks_after_retention(tmp_path):
    store, content, appends = build(tmp_path / "data", lines=1_500)
    with store:
        log = store.log(TOPIC, LOG)
        store.set_log_config(TOPIC, LOG, {"retention.bytes": "20000"})
        store.run_maintenance()
        start = log.start_offset
        assert start > 0, "retention.bytes deleted nothing"
        starts = record_starts(content)
        below = content.count(b"\n", 0, start)
        first = below if content[start - 1] == 0x0A else below + 1
        assert log.start_record == first
        for n in (0, first - 1):
            with pytest.raises(OffsetOutOfRange):
                log.record_position(n)
        for n in range(first, log.records + 1, 3):
            assert log.record_position(n) == starts[n]
        # a time before everything retained gives the first retained byte or record
        pos = log.time_position(T0)
        assert pos in (start, starts[first])
        for t in sorted({a[2] for a in appends if a[0] >= start})[::3]:
            check_time_position(log, content, appends, t, 64)


def test_equal_timestamps_give_the_first_record_of_the_millisecond(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(T0)
    with open_log_store(str(data), defaults={"segment.bytes": "500", "index.interval.bytes": "50"},
                        clock=clock) as store:
        store.create_topic(TOPIC)
        log = store.create_log(TOPIC, LOG)
        for _ in range(200):
            log.append(b"early record\n")
        clock.advance(1)
        first_late = log.end_offset
        for _ in range(200):
            log.append(b"late record\n")
        pos = log.time_position(T0 + 1)
        assert pos <= first_late, "skipped late records"
        assert first_late - pos <= 50 + 13, f"time_position {pos} is far before {first_late}"
        assert pos == 0 or log.read(pos - 1, 1) == b"\n", "not a record start"
        after_all = log.time_position(T0 + 2)  # nothing appended since: the end, or a little before
        assert log.end_offset - after_all <= 50 + 13 and log.read(after_all - 1, 1) == b"\n"


def _rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_seek_is_a_binary_search_plus_a_short_scan(tmp_path):
    """8 MiB in one segment, index.interval.bytes 4096: a seek may read about one
    interval of data (plus index pages), never megabytes."""
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(T0)
    line = b"y" * 99 + b"\n"
    with open_log_store(str(data), clock=clock) as store:  # defaults: 1 GiB segments, 4096 interval
        store.create_topic(TOPIC)
        log = store.create_log(TOPIC, LOG)
        block = line * 40
        for _ in range(8 * 1024 * 1024 // len(block)):
            log.append(block)
            clock.advance(1)
        rnd = random.Random(5)
        worst_record = worst_time = 0
        for _ in range(200):
            n = rnd.randrange(log.records)
            before = _rchar()
            assert log.record_position(n) == n * 100
            worst_record = max(worst_record, _rchar() - before)
            t = T0 + rnd.randrange(8 * 1024 * 1024 // len(block))
            before = _rchar()
            log.time_position(t)
            worst_time = max(worst_time, _rchar() - before)
    limit = 64 * 1024
    assert worst_record <= limit, f"a record seek read {worst_record} bytes (interval 4096)"
    assert worst_time <= limit, f"a time seek read {worst_time} bytes (interval 4096)"


def test_time_end_position_when_the_start_is_inside_the_last_record(tmp_path):
    """Retention left the log starting inside a record that has no newline yet
    (start_record > records): ?until= must still answer, not raise."""
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(T0)
    with open_log_store(str(data), defaults={"segment.bytes": "14", "retention.ms": "0"}, clock=clock) as store:
        store.create_topic(TOPIC)
        log = store.create_log(TOPIC, LOG)
        log.append(b"x")
        clock.advance(1)
        log.append(b" " * 500)  # rolls; retention.ms 0 deletes the first segment
        assert (log.start_offset, log.records) == (1, 0)
        for t in (T0 - 1, T0, T0 + 1, T0 + 10):
            pos = log.time_end_position(t)
            assert pos == log.start_offset, f"time_end_position({t}) = {pos}: no record has ended"
        assert log.time_position(T0 + 1) == log.start_offset


def test_seeks_when_the_clock_steps_back(tmp_path):
    """The wall clock can step back (NTP). Append times are then taken as the running
    maximum, as Kafka's time index does: seeks must still never skip (since) or drop
    (until) a record, across segment rolls too, and move forward with T."""
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(T0)
    with open_log_store(str(data), defaults={"segment.bytes": "300", "index.interval.bytes": "50"},
                        clock=clock) as store:
        store.create_topic(TOPIC)
        log = store.create_log(TOPIC, LOG)
        content = bytearray()
        appends = []
        effective = 0
        rnd = random.Random(9)
        for i in range(400):
            line = b"%d %s\n" % (i, b"z" * rnd.randrange(0, 60))
            now = clock.now_ms()
            effective = max(effective, now)
            appends.append((len(content), len(line), effective))
            assert log.append(line) == len(content)
            content += line
            step = rnd.choice([0, 1, 1, 2, 5, -3, -50, -1000])  # now and then, back in time
            clock.set(max(T0 - 5_000, clock.now_ms() + step))
        content = bytes(content)
        assert log.segment_count > 10
        times = sorted({a[2] for a in appends})
        last_since = last_until = 0
        for t in [times[0] - 1] + times + [times[-1] + 1]:
            since = check_time_position(log, content, appends, t, 50 + 60)
            until = check_time_end_position(log, content, appends, t, 50 + 60)
            assert since >= last_since and until >= last_until, f"seeks moved backwards at {t}"
            last_since, last_until = since, until
        assert log.last_append_ms == effective


def test_record_at_is_the_inverse_of_record_position(tmp_path):
    """Log.record_at(offset) counts the newlines before an offset through the offset
    index; at every record start it gives back the record's number."""
    store, content, _appends = build(tmp_path / "data", lines=1_500)
    with store:
        log = store.log(TOPIC, LOG)
        starts = record_starts(content)
        for n in list(range(0, len(starts), 7)) + [len(starts) - 1]:
            assert log.record_at(starts[n]) == n
        for off in range(0, len(content), 97):  # inside records too
            assert log.record_at(off) == content.count(b"\n", 0, off)
        assert log.record_at(len(content) + 100) == content.count(b"\n")
        with open_log_store(str(tmp_path / "data"), readonly=True) as reader:
            assert reader.log(TOPIC, LOG).record_at(starts[500]) == 500


@pytest.mark.parametrize("interval", [64, 4096])
def test_newline_window_holds_every_byte_a_record_seek_reads(tmp_path, interval, monkeypatch):
    """A seek to a record in a remote segment is prepared by fetching the bytes
    Segment.newline_window names (tier/task.py): every pread of find_newline must fall
    inside it, for every newline of every segment."""
    from logfs.core.segment import Segment
    store, content, _ = build(tmp_path / "d", segment_bytes=20_000, interval=interval, lines=2_000)
    log = store.log(TOPIC, LOG)
    reads = []
    real = Segment.pread

    def spy(self, n, pos):
        reads.append((pos, pos + n))
        return real(self, n, pos)
    monkeypatch.setattr(Segment, "pread", spy)
    checked = 0
    for seg in log.segments()[:-1]:
        for m in range(seg.records):
            reads.clear()
            at = seg.find_newline(m)
            a, b = seg.newline_window(m)
            assert at > 0 and content[seg.base + at - 1:seg.base + at] == b"\n"
            assert reads and all(a <= lo and hi <= b for lo, hi in reads), (m, reads, (a, b))
            assert a < at <= b
            checked += 1
    assert checked > 1_000
    store.close()
