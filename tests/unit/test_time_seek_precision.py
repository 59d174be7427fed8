"""Time seeks are exact across quiet spells (issue 9, item 3), and time indexes of
version 1 keep working.

Each time-index entry records the newest append time before its position, so a time
T that falls between two appends starts at the first record appended after T, not
one whole write earlier; in general a seek is early by less than one index interval
whatever the write sizes (storekit.check_time_position holds the bound).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logfs.core import ManualClock, open_log_store
from logfs.core.index import HEADER, TIME_MAGIC, TIME_MAGIC_V1

from storekit import check_time_position

T0 = 1_700_000_000_000
RECORD = b"%063d\n"


def _open(data: Path, clock: ManualClock, **defaults: str):
    data.mkdir(exist_ok=True)
    return open_log_store(str(data), defaults=defaults, clock=clock)


def test_since_in_a_quiet_gap_starts_at_the_first_record_after_it(tmp_path):
    """The issue's case, scaled: writes of 1,000 64-byte records; T 1.2 s after the
    first half; the second half 0.2 s after T. The seek lands on record 20,000,
    not on the first record of the last write before T (19,000)."""
    clock = ManualClock(T0)
    with _open(tmp_path / "data", clock, **{"segment.bytes": str(1 << 20)}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        write = b"".join(RECORD % i for i in range(1000))
        for _ in range(20):
            log.append(write)
            clock.advance(3)
        t = clock.now_ms() + 1200
        clock.set(t + 200)
        half = log.end_offset
        for _ in range(20):
            log.append(write)
            clock.advance(3)
        assert log.segment_count > 1, "the test should cross a roll"
        assert log.time_position(t) == half == log.record_position(20_000)
        # a time inside the first half (between two writes) is exact too
        assert log.time_position(T0 + 3 * 7 + 1) == log.record_position(8_000)
        # and a reader in another process gets the same answers
        with open_log_store(str(tmp_path / "data"), readonly=True) as reader:
            assert reader.log("t", "l").time_position(t) == half


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(appends=st.lists(st.tuples(st.integers(1, 3000), st.sampled_from([0, 0, 1, 7, 500, 90_000])),
                        min_size=1, max_size=80),
       interval=st.sampled_from([64, 512, 4096]),
       segment_bytes=st.sampled_from([2000, 20_000, 1 << 20]))
def test_a_seek_is_early_by_less_than_one_interval_whatever_the_write_sizes(
        tmp_path_factory, appends, interval, segment_bytes):
    data = tmp_path_factory.mktemp("data")
    clock = ManualClock(T0)
    content = bytearray()
    model = []
    with _open(data, clock, **{"segment.bytes": str(segment_bytes),
                               "index.interval.bytes": str(interval)}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        for n, (size, gap) in enumerate(appends):
            clock.advance(gap)
            line = (b"%d " % n).ljust(max(size - 1, 0), b"x")[:max(size - 1, 0)] + b"\n"
            at = log.append(line)
            assert at == len(content)
            model.append((at, len(line), clock.now_ms()))
            content += line
        times = sorted({m[2] for m in model})
        probes = {T0 - 1, times[-1] + 1} | set(times) | {t + 1 for t in times} | {t - 1 for t in times}
        for t in sorted(probes):
            check_time_position(log, bytes(content), model, t, interval)


def _rewrite_as_version_1(path: Path) -> None:
    """What an earlier logfs left: the same entries, 12 bytes each, no gap."""
    raw = path.read_bytes()
    magic, base, base_record, flags, _crc = HEADER.unpack_from(raw, 0)
    assert magic == TIME_MAGIC
    head = struct.pack("<8sQQI", TIME_MAGIC_V1, base, base_record, flags)
    body = b"".join(struct.pack("<qI", *struct.unpack_from("<qIII", raw, at)[:2])
                    for at in range(32, len(raw), 20))
    path.write_bytes(head + struct.pack("<I", zlib.crc32(head)) + body)


def test_time_indexes_of_version_1_keep_working(tmp_path):
    data = tmp_path / "data"
    clock = ManualClock(T0)
    content = bytearray()
    model = []

    def put(log, line: bytes) -> None:
        at = log.append(line)
        model.append((at, len(line), clock.now_ms()))
        content.extend(line)

    config = {"segment.bytes": "3000", "index.interval.bytes": "256"}
    with _open(data, clock, **config) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        for i in range(400):
            put(log, b"record %05d %s\n" % (i, b"y" * (i % 40)))
            clock.advance(1 if i % 50 else 5000)
    tindexes = sorted((data / "t" / "l").glob("*.timeindex"))
    assert len(tindexes) > 3
    for p in tindexes:
        _rewrite_as_version_1(p)
    with _open(data, clock, **config) as store:
        log = store.log("t", "l")
        times = sorted({m[2] for m in model})
        for t in times[::3] + [t + 1 for t in times[::7]]:
            check_time_position(log, bytes(content), model, t, 256, v1_index=True)
        # the active segment's index was converted (it gets new entries), sealed ones not
        magics = [p.read_bytes()[:8] for p in tindexes]
        assert magics[-1] == TIME_MAGIC and set(magics[:-1]) == {TIME_MAGIC_V1}
        with open_log_store(str(data), readonly=True) as reader:
            rlog = reader.log("t", "l")
            assert [rlog.time_position(t) for t in times[::5]] == [log.time_position(t) for t in times[::5]]
        clock.advance(60_000)
        for i in range(400, 500):  # appends go on, into the converted index and new segments
            put(log, b"record %05d\n" % i)
            clock.advance(3)
        for t in [m[2] for m in model[380:]]:
            check_time_position(log, bytes(content), model, t, 256, v1_index=True)
    assert os.path.exists(tindexes[0])


def test_small_appends_after_a_quiet_spell_seek_exactly(tmp_path):
    """Appends far smaller than index.interval.bytes: a time in a quiet spell of 50 ms
    or more starts at the first record appended after it (the append after the spell
    begins a time-index entry), not at the interval's first record."""
    clock = ManualClock(T0)
    with _open(tmp_path / "data", clock) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        for i in range(3):
            log.append(RECORD % i)
            clock.advance(1)
        t = clock.now_ms() + 50
        clock.set(t + 50)  # 100 ms of quiet, T in the middle
        after = log.end_offset
        for i in range(3, 5):
            log.append(RECORD % i)
            clock.advance(1)
        assert log.time_position(t) == after
        assert log.record_at(log.time_position(t)) == 3
        # appends closer together than 50 ms share the interval's entry, as before:
        # the seek never skips the record, and starts at the interval's first byte
        t2 = clock.now_ms() + 10
        clock.set(t2 + 10)
        log.append(RECORD % 5)
        assert log.time_position(t2) == after
