"""Log.time_end_position (the exporter's ?until=) against an exact model, across
many segments, for the writer and for a reader in the same process."""

from __future__ import annotations

import random

import pytest

from logfs.core import ManualClock, open_log_store

T0 = 1_700_000_000_000
INTERVAL = 64


@pytest.fixture
def written(tmp_path):
    clock = ManualClock(T0)
    store = open_log_store(str(tmp_path), clock=clock,
                           defaults={"segment.bytes": "700", "index.interval.bytes": str(INTERVAL)})
    store.create_topic("t")
    log = store.create_log("t", "l")
    rng = random.Random(7)
    ends = []  # (append time, log offset after that append's last newline)
    content = bytearray()
    for i in range(400):
        line = b"r%d %s\n" % (i, b"x" * rng.randrange(0, 40))
        log.append(line)
        content += line
        ends.append((clock.now_ms(), len(content)))
        clock.advance(rng.choice([0, 1, 1, 5, 30]))
    yield store, log, ends, bytes(content)
    store.close()


def exact_end(ends, t_ms):
    """The end of the last record appended at or before t_ms (0 if none)."""
    best = 0
    for t, end in ends:
        if t <= t_ms:
            best = end
    return best


@pytest.mark.parametrize("view", ["writer", "reader"])
def test_until_never_drops_a_record_and_ends_on_a_boundary(written, tmp_path, view):
    store, log, ends, content = written
    assert log.segment_count > 10
    subject = log
    reader = None
    if view == "reader":
        reader = open_log_store(str(tmp_path), readonly=True)
        subject = reader.log("t", "l")
    try:
        biggest_line = max(len(x) + 1 for x in content.split(b"\n"))
        for t_ms in range(T0 - 5, ends[-1][0] + 10, 7):
            pos = subject.time_end_position(t_ms)
            want = exact_end(ends, t_ms)
            assert pos >= want, f"until={t_ms}: ends at {pos}, drops records up to {want}"
            assert pos == 0 or content[pos - 1:pos] == b"\n", f"until={t_ms}: {pos} is not a record end"
            assert pos - want <= INTERVAL + 2 * biggest_line, f"until={t_ms}: {pos - want} bytes too many"
    finally:
        if reader is not None:
            reader.close()


def test_until_after_the_last_append_is_the_end_of_the_last_record(written):
    _store, log, ends, content = written
    assert log.time_end_position(ends[-1][0] + 1_000) == len(content)
