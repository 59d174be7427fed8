"""One FUSE read of a log or of a view: which bytes, and where each comes from.

A file of the mount is a window of one log: byte ``o`` of the file is the log's byte
``base + o`` (``base`` is 0 for a log, the start ``S`` for a view, views.py), up to
the log's byte ``end``. A read of ``[off, off+size)`` becomes the core's
``Log.read_range`` over the log's bytes, then a ``pread`` of each segment range from
the backing files' page cache, without blocking (``RWF_NOWAIT``); what the page cache
does not hold is read by path in a worker thread (diskio.py), so a read that waits
for the disk does not stall every other request. Logs and views share this path, so a
view is served from the same page-cached segment data as its log.

Reads below the log's start offset (retention; docs/fuse.md, "Reads below the start
offset"): the kernel reads whole pages *of the file*, so the page that holds the
start also covers bytes below it. A request whose first page lies wholly below the
start fails with ENODATA (the core's OffsetOutOfRange); otherwise the part below the
start is NULs, followed by the retained bytes. For a view the pages are the view's
own (offsets from ``S``), not the log's.
"""

from __future__ import annotations

import trio

from logfs.core import Log
from logfs.fusefs.diskio import pread_cached, pread_path

__all__ = ["PAGE_SIZE", "SlowPart", "gather", "read_slow_parts"]

PAGE_SIZE = 4096

# (index in the parts list, segment path, position in it, length): to read from disk
SlowPart = tuple[int, str, int, int]


def gather(lg: Log, base: int, end: int, off: int, size: int
           ) -> tuple[list[bytes | bytearray | memoryview], list[SlowPart]]:
    """The file bytes ``[off, off+size)`` (file offsets; the file is the log from
    ``base`` to ``end``) as parts: what the backing page cache holds now, and
    placeholders (empty) for the rest, listed as slow parts for
    :func:`read_slow_parts`. Empty lists at or past the end.

    Calls the store (the trio thread only) and does not block on the disk. Raises
    OffsetOutOfRange (the request's first page lies wholly below the log's start),
    and what ``Log.read_range`` raises before any data (a gap after some data ends
    the read there instead: a short read, not an error)."""
    stop = off + size
    if stop > end - base:
        stop = end - base
    if off >= stop:
        return [], []
    parts: list[bytes | bytearray | memoryview] = []
    start = lg.start_offset - base  # the log's start, as a file offset (may be < 0)
    if off < start:
        first_page_end = off - off % PAGE_SIZE + PAGE_SIZE
        if first_page_end > start:
            # the page holding the start: NULs below it, then the retained bytes
            fill = min(start, stop) - off
            parts.append(bytes(fill))
            off += fill
        # else: read_range below the start raises OffsetOutOfRange: ENODATA
    slow: list[SlowPart] = []
    # read_range hands out a bounded number of ranges per call: a request spanning
    # more segments takes several calls (a short reply would read as end of file)
    first = pos = base + off
    stop += base
    while pos < stop:
        try:
            ranges = lg.read_range(pos, stop)
        except Exception:  # noqa: BLE001 - a gap after some data: return that data
            if pos > first:
                break
            raise
        if not ranges:
            break
        for r in ranges:
            got = pread_cached(r.fd, r.length, r.position)
            parts.append(got)
            if len(got) < r.length:
                parts.append(b"")  # placeholder for the rest of this range
                slow.append((len(parts) - 1, r.path, r.position + len(got), r.length - len(got)))
            pos += r.length
    return parts, slow


async def read_slow_parts(parts: list[bytes | bytearray | memoryview], slow: list[SlowPart]) -> None:
    """Fill the placeholders :func:`gather` left, reading by path in a worker thread
    (the core's descriptors are only valid until the next call into the store).
    Raises Refused(ENODATA) for a segment retention deleted meanwhile, OSError."""
    for i, path, pos, length in slow:
        parts[i] = await trio.to_thread.run_sync(pread_path, path, length, pos)
