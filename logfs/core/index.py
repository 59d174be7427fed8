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

``magic`` is ``LFSOIDX1`` (offset index) or ``LFSTIDX1`` (time index); ``base
offset`` is the segment's first byte offset in the log; ``base record`` is the number
of newlines in the log before it; flag bit 0 says the segment starts on a record
boundary; ``crc32`` covers bytes 0..27.

Offset index entry (12 bytes): ``records u32 | position u32 | crc u32`` — at byte
``position`` of the segment, ``records`` newlines lie in ``[0, position)``, and
``crc`` is the CRC-32 of the segment bytes since the previous entry's position (or 0).
One entry is written whenever ``index.interval.bytes`` have been appended since the
last one (at the end of the append that crossed it), and one when the segment is
sealed. The CRCs let recovery tell real data from a zero or garbage tail.

Time index entry (12 bytes): ``timestamp_ms i64 | position u32`` — every byte before
``position`` was appended at or before ``timestamp_ms`` and every byte from
``position`` on at or after it. One entry is written at the start of the first append
into a segment and of every append that begins ``index.interval.bytes`` or more after
the previous entry, and one when the segment is sealed. Timestamps never decrease.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from typing import Callable

from .cache import ResourceCache

HEADER = struct.Struct("<8sQQII")
HEADER_SIZE = HEADER.size  # 32
OFFSET_MAGIC = b"LFSOIDX1"
TIME_MAGIC = b"LFSTIDX1"
OFFSET_ENTRY = struct.Struct("<III")
TIME_ENTRY = struct.Struct("<qI")
ENTRY_SIZE = 12
FLAG_RECORD_BOUNDARY = 1

assert OFFSET_ENTRY.size == ENTRY_SIZE and TIME_ENTRY.size == ENTRY_SIZE and HEADER_SIZE == 32


class CorruptIndex(Exception):
    """An index file whose header or length is not valid (recovery rebuilds it)."""


def encode_header(magic: bytes, base_offset: int, base_record: int, flags: int) -> bytes:
    head = struct.pack("<8sQQI", magic, base_offset, base_record, flags)
    return head + struct.pack("<I", zlib.crc32(head))


def decode_header(raw: bytes, magic: bytes) -> tuple[int, int, int]:
    """(base_offset, base_record, flags) from a header; CorruptIndex if invalid."""
    if len(raw) < HEADER_SIZE:
        raise CorruptIndex("index header truncated")
    got_magic, base_offset, base_record, flags, crc = HEADER.unpack_from(raw, 0)
    if got_magic != magic:
        raise CorruptIndex(f"bad index magic {got_magic!r}")
    if zlib.crc32(raw[:28]) != crc:
        raise CorruptIndex("index header checksum mismatch")
    return base_offset, base_record, flags


class IndexFile:
    """One index file: append entries, look them up through mmap.

    Blocks on disk I/O only in :meth:`append`, :meth:`truncate` and :meth:`sync`.
    Raises OSError from the file system; CorruptIndex from :meth:`open`.
    """

    __slots__ = ("path", "magic", "entry", "cache", "base_offset", "base_record", "flags",
                 "count", "_fd", "_map", "_mapped_count", "_writable")

    def __init__(self, path: str, magic: bytes, cache: ResourceCache, writable: bool) -> None:
        self.path = path
        self.magic = magic
        self.entry = OFFSET_ENTRY if magic == OFFSET_MAGIC else TIME_ENTRY
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
        entry = OFFSET_ENTRY if magic == OFFSET_MAGIC else TIME_ENTRY
        body = encode_header(magic, base_offset, base_record, flags)
        if entries:
            body += b"".join(entry.pack(*e) for e in entries)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        index = cls(path, magic, cache, writable=True)
        index.base_offset, index.base_record, index.flags = base_offset, base_record, flags
        index.count = len(entries or ())
        return index

    @classmethod
    def open(cls, path: str, magic: bytes, cache: ResourceCache, writable: bool,
             strict: bool = True) -> "IndexFile":
        """Open an existing index. CorruptIndex if its header is bad, or (strict) a torn entry."""
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
            size = os.fstat(f.fileno()).st_size
        index = cls(path, magic, cache, writable)
        index.base_offset, index.base_record, index.flags = decode_header(raw, magic)
        body = size - HEADER_SIZE
        if strict and body % ENTRY_SIZE:
            raise CorruptIndex(f"index length {size} is not a whole number of entries")
        index.count = body // ENTRY_SIZE
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

    def truncate(self, count: int) -> None:
        """Keep only the first *count* entries."""
        if count >= self.count:
            return
        self.release()
        os.truncate(self.path, HEADER_SIZE + count * ENTRY_SIZE)
        self.count = count

    def sync(self) -> None:
        os.fdatasync(self._wfd())

    # -- reading ---------------------------------------------------------------
    def refresh_count(self) -> int:
        """Re-read the entry count from the file length (reader of another writer)."""
        size = os.fstat(self._wfd()).st_size
        self.count = max(0, (size - HEADER_SIZE) // ENTRY_SIZE)
        return self.count

    def _mapping(self, need: int) -> mmap.mmap:
        if self._map is None or self._mapped_count < need:
            if self._map is not None:
                self._map.close()
                self._map = None
            fd = self._wfd()
            length = HEADER_SIZE + self.count * ENTRY_SIZE
            self._map = mmap.mmap(fd, length, prot=mmap.PROT_READ)
            self._mapped_count = self.count
        else:
            self.cache.touch(self)
        return self._map

    def get(self, i: int) -> tuple:
        """Entry *i* (0 <= i < count)."""
        m = self._mapping(i + 1)
        return self.entry.unpack_from(m, HEADER_SIZE + i * ENTRY_SIZE)

    def last(self) -> tuple | None:
        return self.get(self.count - 1) if self.count else None

    def all_entries(self) -> list[tuple]:
        """Every entry (recovery and tests only: O(entries) memory)."""
        if not self.count:
            return []
        m = self._mapping(self.count)
        return [self.entry.unpack_from(m, HEADER_SIZE + i * ENTRY_SIZE) for i in range(self.count)]

    def bisect_right(self, key: Callable[[tuple], int], target: int) -> int:
        """Number of leading entries whose key(entry) <= target (keys non-decreasing)."""
        lo, hi = 0, self.count
        if not hi:
            return 0
        m = self._mapping(hi)
        unpack = self.entry.unpack_from
        while lo < hi:
            mid = (lo + hi) // 2
            if key(unpack(m, HEADER_SIZE + mid * ENTRY_SIZE)) <= target:
                lo = mid + 1
            else:
                hi = mid
        return lo
