"""Log.time_marks: the append times over a byte range (Kafka's Fetch cuts its batches
at them, so each batch carries its records' append time)."""

from __future__ import annotations

from pathlib import Path

from logfs.core import ManualClock, open_log_store

T0 = 1_700_000_000_000


def _store(data: Path, clock: ManualClock, **defaults: str):
    data.mkdir(exist_ok=True)
    return open_log_store(str(data), defaults=defaults, clock=clock)


def test_marks_give_each_append_its_time_across_segments(tmp_path):
    clock = ManualClock(T0)
    with _store(tmp_path / "d", clock, **{"index.interval.bytes": "100",
                                          "segment.bytes": "1000"}) as store:
        store.create_topic("t")
        lg = store.create_log("t", "l")
        starts = []
        for i in range(30):  # 30 writes of 200 B, 10 ms apart: each begins an interval
            starts.append((lg.end_offset, clock.now_ms()))
            lg.append(b"%0199d\n" % i)
            clock.advance(10)
        end = lg.end_offset
        assert lg.segment_count > 3
        marks = lg.time_marks(0, end)
        # every write begins a mark with its own time (a segment's seal may add one)
        for pos, ts in starts:
            assert (pos, ts) in marks, (pos, ts)
        assert [p for p, _ in marks] == sorted(p for p, _ in marks)
        assert all(0 <= p < end for p, _ in marks)
        # a range starting inside a write reports that write's time at its start
        pos, ts = starts[7]
        inside = lg.time_marks(pos + 50, pos + 60)
        assert inside == [(pos + 50, ts)]
        # and a later range holds only its own marks
        sub = lg.time_marks(starts[10][0], starts[12][0])
        assert sub[0] == starts[10] and starts[11] in sub and starts[12] not in sub


def test_no_marks_for_an_empty_log(tmp_path):
    with _store(tmp_path / "d", ManualClock(T0)) as store:
        store.create_topic("t")
        lg = store.create_log("t", "l")
        assert lg.time_marks(0, 0) == []
