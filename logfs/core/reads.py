"""Reads: a log's bytes as slices of its segment files.

As Kafka's ``LogSegment.read`` returns a slice of the file rather than bytes, a read
here returns :class:`FileRange` values (segment file, descriptor, position, length)
that the mount turns into ``pread`` and the exporter into ``os.sendfile``, so the
data never has to pass through Python.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .errors import DataGap, OffsetOutOfRange, StorageIOError
from .segments import LogSegments

MAX_RANGES_PER_READ = 32


def ranges_per_read(cache_capacity: int) -> int:
    """How many ranges (descriptors) one read may hand out: no more than the
    store's resource cache holds, or opening the last would close the first before
    the call returns, and the number could be reused by another file."""
    return min(MAX_RANGES_PER_READ, cache_capacity)


@dataclass(frozen=True)
class FileRange:
    """``length`` bytes at ``position`` of segment file ``path`` are the log's bytes
    ``[log_offset, log_offset + length)``. ``fd`` is valid until the next call into
    the store from this thread: ``os.dup`` it to keep it."""

    path: str
    fd: int
    position: int
    length: int
    log_offset: int


def file_ranges(segments: LogSegments, a: int, b: int, limit: int, topic: str, log: str) -> list[FileRange]:
    """File slices holding the bytes ``[a, min(b, end))`` of the log *topic*/*log*
    whose segments are *segments*; fewer than asked when the range spans more than
    *limit* segments (:func:`ranges_per_read`).

    Raises OffsetOutOfRange below the first segment, DataGap in a missing segment,
    FileNotFoundError if the first segment's file is gone (retention, in another
    process), StorageIOError. Blocks only on opening a file."""
    items = segments.items
    if not items:
        return []
    end = items[-1].base + items[-1].size
    if b > end:
        b = end
    if a >= b:
        return []
    if a < items[0].base:
        raise OffsetOutOfRange(f"offset {a} of {topic}/{log} is below the log start "
                               f"{items[0].base} (removed by retention)")
    i = bisect.bisect_right(segments.bases, a) - 1
    ranges: list[FileRange] = []
    while a < b and i < len(items) and len(ranges) < limit:
        seg = items[i]
        seg_end = seg.base + seg.size
        if a >= seg_end or a < seg.base:  # past this segment, or in a gap before it
            if ranges:
                break
            resumes = seg.base if a < seg.base else (items[i + 1].base if i + 1 < len(items) else end)
            raise DataGap(f"offset {a} of {topic}/{log} falls in a missing segment "
                          f"(data resumes at {resumes})")
        n = min(b, seg_end) - a
        if seg.remote:  # slices of cached chunks (remote.py), fetched now if not yet
            got = seg.ranges(a - seg.base, n, limit - len(ranges))
            ranges.extend(got)
            a += sum(r.length for r in got)
            if a < min(b, seg_end):
                break
            i += 1
            continue
        try:
            fd = seg.fd()
        except FileNotFoundError:
            if ranges:
                break
            raise
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"open {seg.path}") from None
        ranges.append(FileRange(seg.path, fd, a - seg.base, n, a))
        a += n
        i += 1
    return ranges
