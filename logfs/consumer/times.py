"""The append time ``--format json`` gives each record: the best bound the sparse
time index holds.

A time-index entry (docs/format.md) says that every byte from its position on was
appended at or after its timestamp. So for a record starting at byte ``p``, the
entry at or before ``p`` gives a lower bound: the record was appended *at or after*
that time. It is exact for a record that begins an index interval (the append that
wrote it made the entry), and otherwise earlier than the true time by at most the
time between that entry's append and the record's (on a busy log, milliseconds; on a
log that gets a line a minute, up to the time it took to fill an index interval).
Nothing in the index gives a record its own time, as Kafka's records carry theirs.

The lookups go through the reader's segments and their mapped time indexes (a binary
search per batch, then a walk in step with the records); they block briefly on the
disk.
"""

from __future__ import annotations

from logfs.core import Log

__all__ = ["BatchTimes"]


class BatchTimes:
    """Time bounds for the records of one batch ``[start, end)`` of a log, asked for
    in increasing offsets (:meth:`at`). Build it inside ``log.pinned()``."""

    def __init__(self, log: Log, start: int, end: int) -> None:
        self._points: list[tuple[int, int]] = []  # (absolute position, timestamp), ascending
        self._i = 0
        self._before: int | None = None  # the bound for offsets before the first point
        segments = log.segments()
        for k, seg in enumerate(segments):
            seg_end = segments[k + 1].base if k + 1 < len(segments) else end
            if seg_end <= start and k + 1 < len(segments):
                continue
            if seg.base >= end:
                break
            tindex = seg.time_index()
            n = tindex.count
            if not n:
                continue
            first = tindex.bisect_right(lambda e: e[1], max(0, start - seg.base)) - 1
            if first < 0:
                first = 0
                if self._before is None and not self._points:
                    self._before = _last_time_before(segments, k)
            for i in range(first, n):
                entry = tindex.get(i)
                pos = seg.base + entry[1]
                if pos >= end:
                    break
                self._points.append((pos, entry[0]))

    def at(self, offset: int) -> int | None:
        """The time (epoch ms) the record at *offset* was appended at or after, or None
        if the index holds nothing before it."""
        points, i = self._points, self._i
        while i + 1 < len(points) and points[i + 1][0] <= offset:
            i += 1
        self._i = i
        if points and points[i][0] <= offset:
            return points[i][1]
        return self._before


def _last_time_before(segments: list, k: int) -> int | None:
    """The last time-index timestamp of the segments before segment *k*."""
    for seg in reversed(segments[:k]):
        last = seg.time_index().last()
        if last is not None:
            return last[0]
    return None
