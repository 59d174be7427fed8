"""Sparse offset and time indexes of one segment, read through mmap.

Theory of operation
-------------------
A segment's indexes are append-only files of fixed-size entries after a 32-byte
header. The writer appends entries with ``os.write``; readers (the writer itself
included) look entries up through an ``mmap`` of the file, remapped lazily when the
file has grown past the mapped length. Nothing is ever loaded whole.

Header (32 bytes, little-endian)::

    0       8        16        24      28      32
    | magic | base    | base    | flags | crc32 |
    | 8 B   | offset  | record  | u32   | u32   |
            | u64     | u64     |

``magic`` is ``LFSOIDX1`` (offset index) or ``LFSTIDX2`` (time index; ``LFSTIDX1``
for the time indexes of earlier versions, see below); ``base
offset`` is the segment's first byte offset in the log; ``base record`` is the number
of newlines in the log before it; flag bit 0 says the segment starts on a record
boundary; ``crc32`` covers bytes 0..27.

Offset index entry (12 bytes): ``records u32 | position u32 | crc u32`` — at byte
``position`` of the segment, ``records`` newlines lie in ``[0, position)``, and
``crc`` is the CRC-32 of the segment bytes since the previous entry's position (or 0).
One entry is written whenever ``index.interval.bytes`` have been appended since the
last one (at the end of the append that crossed it), and one when the segment is
sealed. The CRCs let recovery tell real data from a zero or garbage tail.

Time index entry (20 bytes): ``timestamp_ms i64 | position u32 | gap_ms u32 | check
u32`` — every byte before ``position`` was appended at or before ``timestamp_ms - gap_ms``
(the *newest time before* the entry) and every byte from ``position`` on at or after
``timestamp_ms``. One entry is written at the start of the first append into a
segment, of every append that begins ``index.interval.bytes`` or more after the
previous entry, and of every append that comes 50 ms or more after the previous
append (segment.QUIET_ENTRY_MS), and one when the segment is sealed. Timestamps never
decrease, and neither do newest-times-before. ``gap_ms`` is what makes a time seek exact across a
quiet spell: a time T that falls between two appends lies after the newest time
before the entry of the second one, so a seek starts at that entry, not one whole
write earlier. It saturates at 2^32-1 and is 0 where it is unknown (a rebuilt or
converted index), which only ever makes a seek start earlier, never later. ``check``
is the CRC-32 of the entry's first 16 bytes: a gap is a claim about the past (a wrong
one would make a seek skip records), so recovery drops an entry whose check fails, as
a power loss can leave the tail of the file half garbage.

A version-1 time index (``LFSTIDX1``, written before ``gap_ms`` existed) has 12-byte
entries ``timestamp_ms i64 | position u32`` and is read as if every ``gap_ms`` were 0;
the writer converts the active segment's to version 2 when it opens it, sealed ones
stay as they are.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from typing import Callable

from .cache import ResourceCache
from .errors import CorruptIndex
from .fileio import replace_file

HEADER = struct.Struct("<8sQQII")
HEADER_SIZE = HEADER.size  # 32
OFFSET_MAGIC = b"LFSOIDX1"
TIME_MAGIC = b"LFSTIDX2"
TIME_MAGIC_V1 = b"LFSTIDX1"
OFFSET_ENTRY = struct.Struct("<III")
TIME_ENTRY = struct.Struct("<qIII")
_TIME_BODY = struct.Struct("<qII")
TIME_ENTRY_V1 = struct.Struct("<qI")
ENTRY_STRUCTS = {OFFSET_MAGIC: OFFSET_ENTRY, TIME_MAGIC: TIME_ENTRY, TIME_MAGIC_V1: TIME_ENTRY_V1}
# what a file of each kind may hold: the current version first
READABLE_MAGICS = {OFFSET_MAGIC: (OFFSET_MAGIC,), TIME_MAGIC: (TIME_MAGIC, TIME_MAGIC_V1)}
MAX_GAP_MS = 0xFFFFFFFF
FLAG_RECORD_BOUNDARY = 1

assert OFFSET_ENTRY.size == TIME_ENTRY_V1.size == 12 and TIME_ENTRY.size == 20 and HEADER_SIZE == 32


def entry_size(magic: bytes) -> int:
    return ENTRY_STRUCTS[magic].size


def time_entry(timestamp_ms: int, position: int, gap_ms: int = 0) -> tuple[int, int, int, int]:
    """The fields of a version-2 time-index entry, its check included."""
    gap = min(max(gap_ms, 0), MAX_GAP_MS)
    return timestamp_ms, position, gap, zlib.crc32(_TIME_BODY.pack(timestamp_ms, position, gap))


def time_entry_ok(entry: tuple) -> bool:
    """A version-2 entry's check holds (version 1 has none: True)."""
    return len(entry) < 4 or entry[3] == zlib.crc32(_TIME_BODY.pack(*entry[:3]))


def newest_before(entry: tuple) -> int:
    """A time-index entry's newest time before its position (version 1: its time)."""
    return entry[0] - entry[2] if len(entry) > 2 else entry[0]


def encode_header(magic: bytes, base_offset: int, base_record: int, flags: int) -> bytes:
    head = struct.pack("<8sQQI", magic, base_offset, base_record, flags)
    return head + struct.pack("<I", zlib.crc32(head))


def decode_header(raw: bytes, magic: bytes) -> tuple[bytes, int, int, int]:
    """(file magic, base_offset, base_record, flags) from the header of an index of
    *magic*'s kind (an earlier version of that kind is accepted); CorruptIndex if invalid."""
    if len(raw) < HEADER_SIZE:
        raise CorruptIndex("index header truncated")
    got_magic, base_offset, base_record, flags, crc = HEADER.unpack_from(raw, 0)
    if got_magic not in READABLE_MAGICS[magic]:
        raise CorruptIndex(f"bad index magic {got_magic!r}")
    if zlib.crc32(raw[:28]) != crc:
        raise CorruptIndex("index header checksum mismatch")
    return got_magic, base_offset, base_record, flags


_REBUILT_BY_WRITER = "; the writer rebuilds it from the segment when it next opens the log"


def _read_header(path: str) -> tuple[bytes, int]:
    """(the first HEADER_SIZE bytes, the file's size) of the file at *path*."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, HEADER_SIZE, 0), os.fstat(fd).st_size
    finally:
        os.close(fd)


def inspect_index_file(path: str, magic: bytes, base_offset: int) -> tuple[str | None, bool]:
    """(what makes the index file at *path* unusable for the segment at
    *base_offset*, or None; whether its last entry is torn). The problem is
    ``"missing"`` or what is wrong with the file or its header (the magic of *magic*'s
    kind, the checksum, the base offset). Reads the header only; raises nothing."""
    try:
        raw, size = _read_header(path)
        found, base, _record, _flags = decode_header(raw, magic)
    except FileNotFoundError:
        return "missing", False
    except OSError as exc:
        return exc.strerror or str(exc), False
    except CorruptIndex as exc:
        return str(exc), False
    if base != base_offset:
        return f"its header says base offset {base}", False
    return None, (size - HEADER_SIZE) % entry_size(found) != 0


class IndexFile:
    """One index file: append entries, look them up through mmap.

    Blocks on disk I/O only in :meth:`append`, :meth:`truncate` and :meth:`sync`.
    Raises OSError from the file system; CorruptIndex (a StorageError) from
    :meth:`open`.
    """

    __slots__ = ("path", "magic", "entry", "esize", "cache", "base_offset", "base_record", "flags",
                 "count", "_fd", "_map", "_mapped_count", "_writable")

    def __init__(self, path: str, magic: bytes, cache: ResourceCache, writable: bool) -> None:
        self.path = path
        self.magic = magic  # the file's own: TIME_MAGIC_V1 for an old time index
        self.entry = ENTRY_STRUCTS[magic]
        self.esize = self.entry.size
        self.cache = cache
        self.base_offset = 0
        self.base_record = 0
        self.flags = 0
        self.count = 0
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._mapped_count = -1
        self._writable = writable

    # -- lifecycle -------------------------------------------------------------
    @classmethod
    def create(cls, path: str, magic: bytes, cache: ResourceCache, base_offset: int,
               base_record: int, flags: int, entries: list[tuple] | None = None) -> "IndexFile":
        """Write a new index file (atomically: temp file + rename) and return it."""
        entry = ENTRY_STRUCTS[magic]
        body = encode_header(magic, base_offset, base_record, flags)
        if entries:
            body += b"".join(entry.pack(*e) for e in entries)
        replace_file(path, body, durable=False)
        index = cls(path, magic, cache, writable=True)
        index.base_offset, index.base_record, index.flags = base_offset, base_record, flags
        index.count = len(entries or ())
        return index

    @classmethod
    def open(cls, path: str, magic: bytes, cache: ResourceCache, writable: bool,
             strict: bool = True) -> "IndexFile":
        """Open an existing index of *magic*'s kind (of the current or an earlier
        version). CorruptIndex (naming the file) if its header is bad, or (strict) a
        torn entry; OSError from the file system."""
        raw, size = _read_header(path)
        try:
            found, base_offset, base_record, flags = decode_header(raw, magic)
        except CorruptIndex as exc:
            raise CorruptIndex(f"corrupt index file {path}: {exc}{_REBUILT_BY_WRITER}") from None
        index = cls(path, found, cache, writable)
        index.base_offset, index.base_record, index.flags = base_offset, base_record, flags
        body = size - HEADER_SIZE
        if strict and body % index.esize:
            raise CorruptIndex(f"corrupt index file {path}: length {size} is not a whole number of "
                               f"entries{_REBUILT_BY_WRITER}")
        index.count = body // index.esize
        return index

    def release(self) -> None:
        """Unmap and close (called by the resource cache); reopens on next use."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # an exported view still alive: leave it to GC
                pass
            self._map = None
            self._mapped_count = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self.release()
        self.cache.forget(self)

    # -- writing ---------------------------------------------------------------
    def _wfd(self) -> int:
        if self._fd < 0:
            flags = (os.O_RDWR | os.O_APPEND) if self._writable else os.O_RDONLY
            self._fd = os.open(self.path, flags | os.O_CLOEXEC)
        self.cache.touch(self)
        return self._fd

    def append(self, *fields: int) -> None:
        os.write(self._wfd(), self.entry.pack(*fields))
        self.count += 1

    def append_time(self, timestamp_ms: int, position: int, gap_ms: int = 0) -> None:
        """A time-index entry, in this file's version (a version-1 file has no gap)."""
        if self.magic == TIME_MAGIC_V1:
            self.append(timestamp_ms, position)
        else:
            self.append(*time_entry(timestamp_ms, position, gap_ms))

    def truncate(self, count: int) -> None:
        """Keep only the first *count* entries."""
        if count >= self.count:
            return
        self.release()
        os.truncate(self.path, HEADER_SIZE + count * self.esize)
        self.count = count

    def sync(self) -> None:
        os.fdatasync(self._wfd())

    # -- reading ---------------------------------------------------------------
    def refresh_count(self) -> int:
        """Re-read the entry count from the file length (reader of another writer)."""
        size = os.fstat(self._wfd()).st_size
        self.count = max(0, (size - HEADER_SIZE) // self.esize)
        return self.count

    def _mapping(self, need: int) -> mmap.mmap:
        if self._map is None or self._mapped_count < need:
            if self._map is not None:
                self._map.close()
                self._map = None
            fd = self._wfd()
            length = HEADER_SIZE + self.count * self.esize
            self._map = mmap.mmap(fd, length, prot=mmap.PROT_READ)
            self._mapped_count = self.count
        else:
            self.cache.touch(self)
        return self._map

    def get(self, i: int) -> tuple:
        """Entry *i* (0 <= i < count)."""
        m = self._mapping(i + 1)
        return self.entry.unpack_from(m, HEADER_SIZE + i * self.esize)

    def last(self) -> tuple | None:
        return self.get(self.count - 1) if self.count else None

    def all_entries(self) -> list[tuple]:
        """Every entry (recovery and tests only: O(entries) memory)."""
        if not self.count:
            return []
        m = self._mapping(self.count)
        size = self.esize
        return [self.entry.unpack_from(m, HEADER_SIZE + i * size) for i in range(self.count)]

    def bisect_right(self, key: Callable[[tuple], int], target: int) -> int:
        """Number of leading entries whose key(entry) <= target (keys non-decreasing)."""
        lo, hi = 0, self.count
        if not hi:
            return 0
        m = self._mapping(hi)
        unpack = self.entry.unpack_from
        size = self.esize
        while lo < hi:
            mid = (lo + hi) // 2
            if key(unpack(m, HEADER_SIZE + mid * size)) <= target:
                lo = mid + 1
            else:
                hi = mid
        return lo
