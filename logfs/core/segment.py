"""One segment: a ``.log`` file of raw appended bytes plus its two sparse indexes.

A segment is *active* (the last of its log, appended to by the writer) or *sealed*.
Positions inside a segment are relative to its base offset. Sealed segments never
change. The segment keeps the running state the writer needs (size, newline count,
CRC since the last index entry) and opens its file descriptor lazily through the
store's bounded resource cache.
"""

from __future__ import annotations

import logging
import os
import zlib

from .cache import ResourceCache
from .errors import CorruptIndex, StorageIOError, translate_os_errors
from .fileio import SCAN_CHUNK, iter_preads, iter_reads
from .index import (FLAG_RECORD_BOUNDARY, OFFSET_MAGIC, TIME_MAGIC, TIME_MAGIC_V1, IndexFile,
                    newest_before, time_entry)
from .naming import offset_index_name, segment_name, time_index_name

logger = logging.getLogger(__name__)

FIRST_SCAN = 16 << 10  # seeks read this much first, doubling up to SCAN_CHUNK
# an append this long after the previous one begins a time-index entry whatever the
# bytes since the last entry, so a time in a quiet spell this long seeks exactly (the
# first record appended after it); at most 20 entries a second, 400 B/s of index
QUIET_ENTRY_MS = 50


class Segment:
    """A segment of a log. Not thread-safe; blocks on disk I/O.

    Attributes kept current by the writer: ``size``, ``records`` (newlines in the
    segment), ``crc`` (CRC-32 since the last offset-index entry),
    ``interval_start`` (position of that entry, or 0), ``since_time`` (bytes since
    the last time-index entry), ``ends_with_newline``.
    """

    __slots__ = ("directory", "base", "cache", "writable", "size", "records", "crc",
                 "interval_start", "since_time", "ends_with_newline", "first_ms",
                 "last_ms", "_fd", "_oindex", "_tindex", "sealed", "path")
    remote = False  # a RemoteSegment (remote.py) says True

    def __init__(self, directory: str, base: int, cache: ResourceCache, writable: bool) -> None:
        self.directory = directory
        self.base = base
        self.cache = cache
        self.writable = writable
        self.path = os.path.join(directory, segment_name(base))
        self.size = -1  # unknown until loaded
        self.records = 0
        self.crc = 0
        self.interval_start = 0
        self.since_time = 0
        self.ends_with_newline = True
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self._fd = -1
        self._oindex: IndexFile | None = None
        self._tindex: IndexFile | None = None
        self.sealed = True

    # -- files -----------------------------------------------------------------
    @property
    def offset_index_path(self) -> str:
        return os.path.join(self.directory, offset_index_name(self.base))

    @property
    def time_index_path(self) -> str:
        return os.path.join(self.directory, time_index_name(self.base))

    def fd(self) -> int:
        """The segment's descriptor (cached; valid until the next call into the store)."""
        if self._fd < 0:
            if self.writable and not self.sealed:
                flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
            else:
                flags = os.O_RDONLY
            self._fd = os.open(self.path, flags | os.O_CLOEXEC, 0o644)
        self.cache.touch(self)
        return self._fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self.release()
        self.cache.forget(self)
        for index in (self._oindex, self._tindex):
            if index is not None:
                index.close()
        self._oindex = self._tindex = None

    def offset_index(self) -> IndexFile:
        if self._oindex is None:
            self._oindex = IndexFile.open(self.offset_index_path, OFFSET_MAGIC, self.cache,
                                          writable=self.writable and not self.sealed,
                                          strict=self.writable)
        elif not self.writable:  # a reader: the writer may have appended entries
            self._oindex.refresh_count()
        return self._oindex

    def time_index(self) -> IndexFile:
        if self._tindex is None:
            writable = self.writable and not self.sealed
            tindex = IndexFile.open(self.time_index_path, TIME_MAGIC, self.cache,
                                    writable=writable, strict=self.writable)
            if writable and tindex.magic == TIME_MAGIC_V1:
                tindex = self._convert_time_index(tindex)
            self._tindex = tindex
        elif not self.writable:
            self._tindex.refresh_count()
        return self._tindex

    def _convert_time_index(self, old: IndexFile) -> IndexFile:
        """Rewrite a version-1 time index (of the active segment, which gets new
        entries) as version 2; its entries' newest-time-before is unknown (0 gap)."""
        entries = [time_entry(t, pos) for t, pos in old.all_entries()]
        old.close()
        logger.info("converting the time index of %s to version 2 (%d entries)", self.path, len(entries))
        return IndexFile.create(self.time_index_path, TIME_MAGIC, self.cache, old.base_offset,
                                old.base_record, old.flags, entries)

    @property
    def base_record(self) -> int:
        return self.offset_index().base_record

    @property
    def starts_at_record_boundary(self) -> bool:
        return bool(self.offset_index().flags & FLAG_RECORD_BOUNDARY)

    @classmethod
    def create(cls, directory: str, base: int, base_record: int, at_boundary: bool,
               cache: ResourceCache) -> "Segment":
        """Create a new, empty active segment with its (empty) indexes."""
        seg = cls(directory, base, cache, writable=True)
        seg.sealed = False
        flags = FLAG_RECORD_BOUNDARY if at_boundary else 0
        seg._oindex = IndexFile.create(seg.offset_index_path, OFFSET_MAGIC, cache, base, base_record, flags)
        seg._tindex = IndexFile.create(seg.time_index_path, TIME_MAGIC, cache, base, base_record, flags)
        fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        os.close(fd)
        seg.size = 0
        seg.ends_with_newline = at_boundary
        return seg

    def stat_size(self) -> int:
        """The segment file's current length on disk (one fstat)."""
        return os.fstat(self.fd()).st_size

    # -- the writer's state ----------------------------------------------------
    def load_tail_state(self, size: int | None = None) -> None:
        """Derive the running state from the indexes plus a scan of the bytes after
        the last offset-index entry (at most one interval plus one append)."""
        if size is None:
            size = self.stat_size()
        self.size = size
        oindex = self.offset_index()
        last = oindex.last()
        if last is not None and last[1] <= size:
            records, self.interval_start = last[0], last[1]
        else:
            records, self.interval_start = 0, 0
        crc = 0
        fd = self.fd()
        tail_byte = b""
        for chunk in iter_preads(fd, self.interval_start, size):
            records += chunk.count(b"\n")
            crc = zlib.crc32(chunk, crc)
            tail_byte = chunk[-1:]
        self.records = records
        self.crc = crc
        if size == 0:
            self.ends_with_newline = self.starts_at_record_boundary
        elif tail_byte:
            self.ends_with_newline = tail_byte == b"\n"
        else:
            self.ends_with_newline = os.pread(fd, 1, size - 1) == b"\n"
        tindex = self.time_index()
        tlast = tindex.last()
        if tlast is not None:
            self.last_ms = tlast[0]
            self.first_ms = tindex.get(0)[0]
            self.since_time = size - tlast[1]
        else:
            self.since_time = size
            self.first_ms = self.last_ms = None

    def append(self, data: bytes, now_ms: int, interval: int, prev_ms: int | None = None) -> None:
        """Append *data* at the end; *prev_ms* is the time of the log's previous append
        (None if there was none), which a time-index entry written here records.
        Raises StorageIOError; on error the segment is cut back to its previous
        length, so nothing is half-appended."""
        size = self.size
        fd = self._fd if self._fd >= 0 else self.fd()  # hot path: no LRU touch per append
        try:
            if self.first_ms is None or self.since_time >= interval or \
                    (self.last_ms is not None and now_ms - self.last_ms >= QUIET_ENTRY_MS):
                t = now_ms if self.last_ms is None or now_ms > self.last_ms else self.last_ms
                self.time_index().append_time(t, size, 0 if prev_ms is None else t - prev_ms)
                self.since_time = 0
                if self.first_ms is None:
                    self.first_ms = t
            written = os.write(fd, data)
            while written < len(data):  # regular files: only on ENOSPC-like conditions
                more = os.write(fd, memoryview(data)[written:])
                if more <= 0:
                    raise OSError(28, "short write")
                written += more
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise StorageIOError.wrap(exc, f"append to {self.path}") from None
        n = len(data)
        self.size = size + n
        self.records += data.count(b"\n")
        self.crc = zlib.crc32(data, self.crc)
        self.since_time += n
        self.ends_with_newline = data[-1] == 10
        if now_ms > (self.last_ms or 0):
            self.last_ms = now_ms
        if self.size - self.interval_start >= interval:
            self._index_here()

    def _index_here(self) -> None:
        try:
            self.offset_index().append(self.records, self.size, self.crc)
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"index of {self.path}") from None
        self.interval_start = self.size
        self.crc = 0

    def seal(self) -> None:
        """Close the segment for appends: a final offset entry (CRC of the last
        interval) and a final time entry, so a sealed segment is fully covered."""
        if self.size > self.interval_start or self.offset_index().count == 0:
            self._index_here()
        if self.last_ms is not None:
            self.time_index().append_time(self.last_ms, self.size)
        self.sealed = True
        self.release()  # reopen read-only
        for index in (self._oindex, self._tindex):
            if index is not None:
                index.close()
        self._oindex = self._tindex = None

    def sync(self) -> None:
        """fdatasync the data and both indexes. Blocks on the disk."""
        os.fdatasync(self.fd())
        self.offset_index().sync()
        self.time_index().sync()

    # -- reads and seeks ---------------------------------------------------------
    def pread(self, n: int, pos: int) -> bytes:
        """Up to *n* bytes at segment-relative *pos* (a remote segment fetches them:
        remote.py). Raises OSError."""
        return os.pread(self.fd(), n, pos)

    def find_newline(self, m: int) -> int:
        """Position just after newline number *m* (0-based, segment-relative), or -1
        if the segment has fewer newlines. Binary search in the index, then a scan of
        at most one index interval (plus one append)."""
        oindex = self.offset_index()
        i = oindex.bisect_right(lambda e: e[0], m)
        if i:
            records, pos, _crc = oindex.get(i - 1)
        else:
            records, pos = 0, 0
        need = m - records + 1
        end = self.size if self.size >= 0 else self.stat_size()
        step = FIRST_SCAN
        while pos < end:
            chunk = self.pread(min(step, end - pos), pos)
            step = min(step * 2, SCAN_CHUNK)
            if not chunk:
                break
            count = chunk.count(b"\n")
            if count >= need:
                at = -1
                for _ in range(need):
                    at = chunk.index(b"\n", at + 1)
                return pos + at + 1
            need -= count
            pos += len(chunk)
        return -1

    def newline_window(self, m: int) -> tuple[int, int]:
        """The segment-relative bytes :meth:`find_newline` (*m*) reads: from the index
        entry at or before newline *m*, in its growing steps, up to the next entry (the
        newline lies before it) or the end."""
        oindex = self.offset_index()
        i = oindex.bisect_right(lambda e: e[0], m)
        pos = oindex.get(i - 1)[1] if i else 0
        end = self.size if self.size >= 0 else self.stat_size()
        stop = oindex.get(i)[1] if i < oindex.count else end
        a, step = pos, FIRST_SCAN
        while pos < min(stop, end):
            pos += min(step, end - pos)
            step = min(step * 2, SCAN_CHUNK)
        return a, max(pos, a)

    def find_time(self, t_ms: int) -> int | None:
        """Position of the last time-index entry every byte before which was appended
        before *t_ms* (its newest time before < t_ms), or None."""
        tindex = self.time_index()
        i = tindex.bisect_right(newest_before, t_ms - 1)
        if not i:
            return None
        return tindex.get(i - 1)[1]

    def count_newlines(self, start: int, end: int) -> int:
        """Newlines in the segment's bytes ``[start, end)``. Raises OSError."""
        return sum(chunk.count(b"\n") for chunk in iter_reads(self.pread, start, end))

    def last_newline_before(self, pos: int) -> int:
        """Position just after the last newline in ``[0, pos)``, or -1 if none."""
        step = FIRST_SCAN
        while pos > 0:
            start = max(0, pos - step)
            step = min(step * 2, SCAN_CHUNK)
            chunk = self.pread(pos - start, start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                return start + at + 1
            pos = start
        return -1

    def largest_timestamp(self) -> int | None:
        if not self.sealed and self.last_ms is not None:
            return self.last_ms
        try:
            last = self.time_index().last()
        except (OSError, CorruptIndex):
            return None
        return last[0] if last else None

    def delete_files(self) -> None:
        """Remove the segment's files, the data first (without it the rest is no
        segment). Raises StorageIOError."""
        self.close()
        with translate_os_errors("delete segment %s", self.path):
            for path in (self.path, self.offset_index_path, self.time_index_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
