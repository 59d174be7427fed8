"""Seeks: the byte offset of a record number or of an append time.

Each is a binary search over the segments (their base records, or their time
indexes' first and last entries), then one in a segment's index, then a scan of at
most one index interval (segment.py). These functions take the log's segments, as
the log has just listed (or refreshed) them: the first one's base is the log's
start, the last one's end the log's end. The log checks the bounds first (log.py),
so here every answer lies inside the retained data.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from .errors import CorruptIndex
from .index import newest_before
from .segment import Segment


def _end(segments: Sequence[Segment]) -> int:
    last = segments[-1]
    return last.base + last.size


def record_position(segments: Sequence[Segment], n: int) -> int:
    """Offset where record *n* starts (record *n* follows the *n*-th newline), for a
    record after the first retained one and up to the last; the end if no segment
    holds its newline."""
    if not segments:  # a reader of a log whose first segment is being created
        return 0
    first = segments[0]
    if n == first.base_record and first.starts_at_record_boundary:
        return first.base
    m = n - 1  # the newline that ends record n-1
    lo, hi = 0, len(segments)
    while lo < hi:  # last segment with base_record <= m
        mid = (lo + hi) // 2
        if segments[mid].base_record <= m:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1
    if i >= 0:
        seg = segments[i]
        pos = seg.find_newline(m - seg.base_record)
        if pos >= 0:
            return seg.base + pos
    return _end(segments)


def records_before(segments: Sequence[Segment], offset: int) -> int:
    """How many newlines lie before byte *offset* of the log: the number of the record
    that starts there, if one does. The inverse of :func:`record_position`: the
    segment holding *offset*, the last offset-index entry at or before it, then a
    count of the newlines of at most one index interval."""
    if not segments:
        return 0
    i = max(0, bisect.bisect_right(segments, offset, key=lambda seg: seg.base) - 1)
    seg = segments[i]
    rel = max(0, min(offset - seg.base, seg.size))
    oindex = seg.offset_index()
    k = oindex.bisect_right(lambda e: e[1], rel)  # entries at or before rel
    records, pos = (oindex.get(k - 1)[:2]) if k else (0, 0)
    return seg.base_record + records + seg.count_newlines(pos, rel)


def time_position(segments: Sequence[Segment], t_ms: int) -> int:
    """Offset of the first record appended at or after *t_ms*, for a *t_ms* not after
    the last append: the last time-index entry all bytes before which are older than
    *t_ms* (index.py: newest time before), back to the start of its record."""
    lo, hi = 0, len(segments)
    while lo < hi:  # last segment whose first entry has everything before it < t_ms
        mid = (lo + hi) // 2
        first = _first_newest_before(segments[mid])
        if first is not None and first < t_ms:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1
    if i < 0:
        return segments[0].base if segments else 0
    seg = segments[i]
    rel = seg.find_time(t_ms)
    if rel is None:  # pragma: no cover - the bisection guarantees an entry
        return segments[0].base
    return record_start_at_or_before(segments, seg.base + rel, i)


def time_end_limit(segments: Sequence[Segment], t_ms: int) -> int | None:
    """End of the records appended at or before *t_ms* (``?until=``): the first
    time-index entry later than *t_ms*, cut back to a record boundary; None if no
    entry is later (the caller answers the end of the last complete record)."""
    n = len(segments)
    if n and _last_entry_timestamp(segments[-1]) is None:
        n -= 1  # an empty active segment has no entries yet
    lo, hi = 0, n
    while lo < hi:  # the first segment holding an entry later than t_ms
        mid = (lo + hi) // 2
        last = _last_entry_timestamp(segments[mid])
        if last is not None and last > t_ms:
            hi = mid
        else:
            lo = mid + 1
    if lo < n:
        seg = segments[lo]
        tindex = seg.time_index()
        k = tindex.bisect_right(lambda e: e[0], t_ms)
        if k < tindex.count:
            limit = seg.base + tindex.get(k)[1]
            if limit < _end(segments):
                return max(segments[0].base, record_start_at_or_before(segments, limit, lo))
    return None


def time_marks(segments: Sequence[Segment], a: int, b: int) -> list[tuple[int, int]]:
    """(offset, timestamp_ms) of the time-index entries that cover [a, b): the last
    one at or before *a* (reported at *a*), then every later one before *b*. Bytes
    from a mark's offset up to the next mark were appended at or after its time. The
    segments holding [a, b) are found by bisection; their entries by bisection too."""
    out: list[tuple[int, int]] = []
    lo, hi = 0, len(segments)
    while lo < hi:  # the segment holding a
        mid = (lo + hi) // 2
        if segments[mid].base <= a:
            lo = mid + 1
        else:
            hi = mid
    for seg in segments[max(lo - 1, 0):]:
        if seg.base >= b:
            break
        tindex = seg.time_index()
        k = 0
        if seg.base <= a:  # the segment holding a: its last entry at or before a
            k = tindex.bisect_right(lambda e: e[1], a - seg.base)
            if k and not out:
                out.append((a, tindex.get(k - 1)[0]))
        for i in range(k, tindex.count):
            ts, rel = tindex.get(i)[:2]
            pos = seg.base + rel
            if pos >= b:
                break
            if out and out[-1][0] == pos:  # a seal's entry, then the next segment's first
                out[-1] = (pos, ts)
            elif pos > a:
                out.append((pos, ts))
            elif not out:
                out.append((a, ts))
    return out


def record_start_at_or_before(segments: Sequence[Segment], pos: int, i: int) -> int:
    """The start of the record holding offset *pos*, which lies in segment *i*
    (scanning back into earlier segments while no newline is found)."""
    end = _end(segments)
    if pos >= end:
        return end
    while i >= 0:
        seg = segments[i]
        at = seg.last_newline_before(pos - seg.base)
        if at >= 0:
            return seg.base + at
        if seg.starts_at_record_boundary or i == 0:
            return seg.base
        i -= 1
        pos = segments[i].base + segments[i].size
    return segments[0].base


def _first_newest_before(seg: Segment) -> int | None:
    """The newest time before a segment's first time-index entry (None: no entry)."""
    try:
        tindex = seg.time_index()
        if not seg.writable:
            tindex.refresh_count()
        first = tindex.get(0) if tindex.count else None
    except (OSError, CorruptIndex):
        return None
    return newest_before(first) if first else None


def _last_entry_timestamp(seg: Segment) -> int | None:
    try:
        last = seg.time_index().last()
    except (OSError, CorruptIndex):
        return None
    return last[0] if last else None
