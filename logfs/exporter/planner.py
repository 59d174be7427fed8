"""From a routed request to a plan over the storage core: which log, which bytes,
which status and headers. Synchronous: calls the core's reader view (stats, index
lookups, at most a short scan for a record boundary) but never touches a socket and
never reads the body bytes; streaming.py sends ``[start, end)`` with sendfile.

What the planner refuses on its own it raises as HttpError; what the core raises
(a log deleted meanwhile, a missing segment) it lets through, to the caller's error
boundary (errors.py).

Where a read starts and stops is the core's shared selection (logfs/core/selection.py:
``resolve_start``, ``resolve_end``), the same for views and ``logfs consume``.
``group=G`` starts at G's committed position (read only: nothing here commits); a
position G does not have, or one retention removed, starts by ``reset`` and says so
in a ``Logfs-Note`` header.

Offsets in ``Range``/``Content-Range`` are the log's byte offsets: they never change,
so ``Content-Range: bytes a-b/END`` has the log's end offset as the complete length,
and a range below the start (removed by retention) is 416 with ``Content-Range:
bytes */END`` and a ``Logfs-Start-Offset`` header saying where data begins.

``until`` and the indexes: the time index is sparse (one entry per
``index.interval.bytes``), so the exact append time of a record between two entries is
unknown. ``since`` starts at or before the first record appended at or after TIME,
less than one index interval early (core ``time_position``); ``until`` ends at the first indexed append made *after*
TIME, cut back to a record boundary. Both err on the side of including a record,
never of dropping one: a window may carry up to one index interval of records on
either side.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

from logfs.core import GroupStore, Log, LogStore
from logfs.core.selection import resolve_end, resolve_start
from logfs.tier.task import prepare_record_seek, prepare_time_seeks

from .errors import below_start, beyond_end
from .protocol import HttpError, base_headers
from .query import BadRequest, ByteRange, LogQuery, parse_byte_range, parse_log_query

__all__ = ["LogPlan", "is_real_dir", "now_ms", "open_reachable_log", "plan_log_read", "prepare_remote_seeks",
           "until_position"]

LOG_CONTENT_TYPE = b"text/plain; charset=utf-8"


@dataclass
class LogPlan:
    """Send the log's bytes ``[start, end)``; ``end`` None means follow (stream as
    data arrives, chunked). ``until_ms`` with follow: stop once the clock passes it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    log: Log
    start: int
    end: int | None
    until_ms: int | None = None
    note: str | None = None


def now_ms() -> int:
    """The wall clock, in epoch milliseconds (durations like ``since=10m`` count back
    from it)."""
    return time.time_ns() // 1_000_000


def is_real_dir(path: str) -> bool:
    """True if *path* is a directory and not a symlink (lstat). Does not raise."""
    return _real_dir_ino(path) is not None


def _real_dir_ino(path: str) -> int | None:
    """The inode of *path* if it is a directory and not a symlink (lstat), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino if stat.S_ISDIR(st.st_mode) else None


def open_reachable_log(store: LogStore, topic: str, name: str) -> Log:
    """The log ``topic/name`` if it exists inside DATA as a real directory (no
    symlinks on the way). HttpError(404) otherwise; the core's NotFound if it went
    away meanwhile."""
    tdir = f"{store.data_dir}/{topic}"
    # topic and name are single path components, never "." or ".." (protocol.py);
    # lstat says both are directories, not symlinks: so ldir is DATA/topic/name for
    # real, and no realpath (a stat per path component) is needed
    ino = _real_dir_ino(f"{tdir}/{name}") if is_real_dir(tdir) else None
    if ino is None:
        raise HttpError(404, f"no such log {topic}/{name}")
    return store.log(topic, name, dir_ino=ino)


def until_position(log: Log, t_ms: int) -> int:
    """End of the records appended at or before *t_ms* (core: never drops one)."""
    return log.time_end_position(t_ms)


def _start_for(log: Log, q: LogQuery, groups: GroupStore | None) -> tuple[int, str | None]:
    """(start offset, note) of *q* in *log*: the core's resolve_start, with an
    offset outside the log answered 416 by the exporter itself."""
    if q.offset is not None:
        if q.offset < log.start_offset:
            raise below_start(log, f"offset {q.offset}")
        if q.offset > log.end_offset:
            raise beyond_end(log, f"offset {q.offset}")
    # a record below the start is OffsetOutOfRange: 416 through the error boundary
    start = resolve_start(log, q.selection, groups, q.reset)
    return start.offset, start.note


def _log_headers(log: Log, body_offset: int) -> list[tuple[bytes, bytes]]:
    headers = base_headers(LOG_CONTENT_TYPE)
    headers += [(b"accept-ranges", b"bytes"),
                (b"logfs-start-offset", str(log.start_offset).encode()),
                (b"logfs-end-offset", str(log.end_offset).encode()),
                (b"logfs-offset", str(body_offset).encode())]
    return headers


async def prepare_remote_seeks(log: Log, query: bytes, now: int) -> None:
    """Before :func:`plan_log_read`: fetch, from worker threads, what its seek will read
    of remote segments (index files, the chunk a record seek scans), so a slow store
    does not hold up the exporter's other connections. A malformed query is left to
    the plan (400). Raises what the fetches raise (RemoteReadError)."""
    if not log.has_remote_segments:
        return  # nothing remote (every untiered log), as of the log's last refresh
    try:
        q = parse_log_query(query, now)
    except BadRequest:
        return
    if q.record is not None:
        await prepare_record_seek(log, q.record)
    elif q.last is not None:
        await prepare_record_seek(log, max(log.start_record, log.records - q.last))
    if q.since_ms is not None or q.until_ms is not None:
        await prepare_time_seeks(log)


def plan_log_read(log: Log, query: bytes, range_header: bytes | None, now_ms: int,
                  groups: GroupStore | None = None) -> LogPlan:
    """Decide status, headers and byte span for ``GET /<topic>/<log>``; *groups*
    answers ``group=`` (read only). Raises HttpError (400 malformed, 416 outside the
    retained data) and what the core raises (for the caller's boundary, errors.py).
    A ``Range`` naming several ranges is ignored: the whole log, 200 (RFC 9110 lets a
    server ignore Range). Blocks briefly on the disk (index lookups, a group's file)."""
    try:
        q = parse_log_query(query, now_ms)
        brange = parse_byte_range(range_header) if range_header is not None else None
    except BadRequest as exc:
        raise HttpError(400, str(exc)) from None
    if brange is not None and (q.has_start or q.follow or q.until_ms is not None):
        raise HttpError(400, "Range cannot be combined with offset, record, since, last, group, "
                             "until or follow")
    with log.pinned():  # one view of the log for the whole plan (no await inside)
        if brange is not None:
            return _plan_range(log, brange)
        start, note = _start_for(log, q, groups)
        if q.until_ms is not None:
            if q.follow and q.until_ms > now_ms:
                end_at = None  # stream until the clock passes until
            else:
                until_end = resolve_end(log, q.selection)
                end_at = start if until_end is None else max(start, until_end)
        else:
            end_at = None if q.follow else log.end_offset
        headers = _log_headers(log, start)
    if note is not None:  # a group position missing or removed: where it started instead
        headers.append((b"logfs-note", note.encode("ascii", "backslashreplace")))
    if end_at is not None:
        headers.append((b"content-length", str(end_at - start).encode()))
    else:
        headers += [(b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]
    return LogPlan(200, headers, log, start, end_at, until_ms=q.until_ms, note=note)


def _plan_range(log: Log, r: ByteRange) -> LogPlan:
    start, end = log.start_offset, log.end_offset
    if r.suffix is not None:
        a, b = max(start, end - r.suffix), end
        if r.suffix == 0 or a >= end:
            raise beyond_end(log, f"range bytes=-{r.suffix}")
    else:
        a = r.first
        b = end if r.last is None else min(end, r.last + 1)
        if a < start:
            raise below_start(log, f"range start {a}")
        if a >= end:
            raise beyond_end(log, f"range start {a}")
    headers = _log_headers(log, a)
    headers += [(b"content-range", f"bytes {a}-{b - 1}/{end}".encode()),
                (b"content-length", str(b - a).encode())]
    return LogPlan(206, headers, log, a, b)
