"""The per-log checkpoint file: the recovery point and the live tail.

Theory of operation
-------------------
Recovery must tell bytes that were really appended from a zero-filled or garbage
tail left by a power loss. The offset index carries a CRC per index interval, which
covers everything up to the last index entry. This file covers the rest, the bytes
after the last entry, twice:

* the *live* slot is rewritten (one ``pwrite`` of 40 bytes into the page cache) after
  every append. After ``kill -9`` of the daemon the page cache survives, so it
  describes the true end exactly and recovery cuts nothing. That store is also how
  the end is *published*: readers in other processes take the live slot as the end
  of the log, and the write raises inotify's IN_MODIFY on this file, which is what
  wakes followers (the exporter) the moment new bytes are readable. There are two
  live slots, written in turn: a store torn by a power loss leaves the other slot,
  one append older, intact; and a reader that catches a slot half written (it maps
  the file read-only) reads the other one.
* the *recovery point* slot is rewritten only by ``fsync``, after the data and the
  indexes are durable, and made durable with ``fdatasync``. After a power loss it still
  describes a prefix that is on disk, even if the live slot is newer or older than
  the data that survived.

File layout (1024 bytes; the recovery point and the live slots in different 512-byte
sectors, so that a torn sector write damages one or the other)::

    offset 0    recovery point slot (40 bytes)
    offset 512  live tail slot A    (40 bytes)
    offset 768  live tail slot B    (40 bytes)

Slot (40 bytes, little-endian)::

    0       4       8            16                 24             32      36      40
    | magic | crc   | position   | interval start   | timestamp ms | check | tent. |
    | LFC2  | u32   | u64        | u64              | i64          | u32   | u32   |

``position`` is an absolute log byte offset; ``crc`` is the CRC-32 of the log bytes
``[interval start, position)``, which lie in one segment; ``timestamp`` is the time
of the last append (ms since the epoch, 0 if none); ``check`` is the CRC-32 of the
slot's other 36 bytes (0..31 and 36..39; slots of magic ``LFCP``, written by earlier
versions, cover 0..31 only). A slot whose magic or check is wrong is ignored. The live
slot that counts is the valid one with the greater position. ``tentative``
(live slot only, else 0) is how many bytes before ``position`` were appended by a
write that may be the first part of a longer one: the kernel splits a write that
starts mid-page at the page boundary, so a daemon killed between the two parts would
leave half a line; recovery after a crash cuts those bytes back to their last newline.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from dataclasses import dataclass

from .errors import StorageIOError

FILE_SIZE = 1024
RECOVERY_SLOT = 0
LIVE_SLOT = 512    # read(LIVE_SLOT) answers with the better of the two live slots
LIVE_SLOTS = (512, 768)
_MAGIC = 0x3243464C  # b"LFC2" little-endian: the check covers the tentative field too
_MAGIC_V1 = 0x5043464C  # b"LFCP": the check covers bytes 0..31 only
_BODY = struct.Struct("<IIQQq")  # 32 bytes
_CHECK = struct.Struct("<II")
_U32 = struct.Struct("<I")
SLOT_SIZE = 40


@dataclass(frozen=True)
class TailMark:
    position: int
    interval_start: int
    crc: int
    timestamp_ms: int = 0
    tentative: int = 0  # live slot: trailing bytes of an append that may be half a write


def _encode(crc: int, position: int, interval_start: int, timestamp_ms: int, tentative: int) -> bytes:
    body = _BODY.pack(_MAGIC, crc, position, interval_start, timestamp_ms)
    return body + _CHECK.pack(zlib.crc32(_U32.pack(tentative), zlib.crc32(body)), tentative)


def encode_slot(mark: TailMark) -> bytes:
    return _encode(mark.crc, mark.position, mark.interval_start, mark.timestamp_ms, mark.tentative)


def decode_slot(raw: bytes) -> TailMark | None:
    if len(raw) < SLOT_SIZE:
        return None
    magic, crc, position, interval_start, timestamp = _BODY.unpack_from(raw, 0)
    check, tentative = _CHECK.unpack_from(raw, 32)
    if magic == _MAGIC:
        if check != zlib.crc32(raw[36:40], zlib.crc32(raw[:32])):
            return None
    elif magic != _MAGIC_V1 or check != zlib.crc32(raw[:32]):
        return None
    if interval_start > position:
        return None
    return TailMark(position, interval_start, crc, timestamp, min(tentative, position))


class Checkpoint:
    """The checkpoint file of one log: the writer stores slots with ``pwrite`` through
    a descriptor; a reader in another process looks at them through a read-only
    shared mapping (the same page cache, so it sees each store at once)."""

    def __init__(self, path: str, writable: bool, cache=None) -> None:
        self.path = path
        self.writable = writable
        self.cache = cache
        self._fd = -1                       # writer
        self._map: mmap.mmap | None = None  # reader
        self._next_live: int | None = None  # which live slot the next write_live goes to

    def _writer_fd(self) -> int:
        if self._fd < 0:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                if os.fstat(fd).st_size != FILE_SIZE:
                    os.ftruncate(fd, FILE_SIZE)
                # allocate the blocks now: a store into a hole of a full filesystem
                # would fail (ENOSPC) after the data it vouches for was appended
                os.posix_fallocate(fd, 0, FILE_SIZE)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            if self.cache is not None:  # a descriptor: keep them bounded
                self.cache.touch(self)
        return self._fd

    def _reader_map(self) -> mmap.mmap | None:
        """The read-only mapping (None: no checkpoint yet). Raises StorageIOError
        (a checkpoint that cannot be opened or mapped)."""
        if self._map is None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise StorageIOError.wrap(exc, f"open {self.path}") from None
            try:
                if os.fstat(fd).st_size < FILE_SIZE:
                    return None
                self._map = mmap.mmap(fd, FILE_SIZE, prot=mmap.PROT_READ)
            except OSError as exc:
                raise StorageIOError.wrap(exc, f"map {self.path}") from None
            finally:
                os.close(fd)
            if self.cache is not None:  # a mapping holds a descriptor of its own
                self.cache.touch(self)
        return self._map

    def _slot(self, at: int) -> TailMark | None:
        if self.writable:
            return decode_slot(os.pread(self._writer_fd(), SLOT_SIZE, at))
        m = self._reader_map()
        return None if m is None else decode_slot(m[at: at + SLOT_SIZE])

    def read(self, slot: int) -> TailMark | None:
        """The mark in *slot*; for LIVE_SLOT the valid live slot with the greater
        position (the newer one, unless it was left half written)."""
        if slot == LIVE_SLOT:
            marks = self.read_lives()
            return marks[0] if marks else None
        return self._slot(slot)

    def read_lives(self) -> list[TailMark]:
        """The valid live slots, the greater position first."""
        if not self.writable and self._reader_map() is None:
            return []
        a, b = self._slot(LIVE_SLOTS[0]), self._slot(LIVE_SLOTS[1])  # (every request reads them)
        if a is None or b is None:
            return [m for m in (a, b) if m is not None]
        return [a, b] if a.position >= b.position else [b, a]

    def write_live(self, position: int, interval_start: int, crc: int, timestamp_ms: int,
                   tentative: int = 0, both: bool = False) -> None:
        """Store the live tail: one ``pwrite`` of 40 bytes into the page cache (survives
        a daemon crash, not a power loss; SIGKILL cannot cut a system call's copy in
        half). The write is also the *publication* of the new end: it raises inotify's
        IN_MODIFY on the checkpoint, which wakes followers in other processes
        (logfs/watch.py) exactly when the bytes are readable.
        The two live slots are written in turn (*both*: at once, when the log's end
        moved back, e.g. after recovery cut a tail the other slot still covers).
        *tentative*: how many bytes before *position* belong to an append that may be
        the first part of a write whose rest has not arrived (recovery cuts them).
        Raises OSError."""
        fd = self._fd if self._fd >= 0 else self._writer_fd()  # hot path: no LRU touch
        raw = _encode(crc, position, interval_start, timestamp_ms, tentative)
        if both:
            # a slot already at this position may be what vouches for the log's end
            # now: write it last, so a kill between the two stores leaves it whole
            def at_position(at: int) -> bool:
                mark = self._slot(at)
                return mark is not None and mark.position == position
            for at in sorted(LIVE_SLOTS, key=at_position):
                os.pwrite(fd, raw, at)
            self._next_live = 0
            return
        i = self._next_live
        if i is None:
            # overwrite the older slot (or a bad one): the other must hold the state
            # just before this write, for a kill in the middle of it
            a, b = (self._slot(at) for at in LIVE_SLOTS)
            i = 0 if a is None or (b is not None and a.position < b.position) else 1
        self._next_live = i ^ 1
        os.pwrite(fd, raw, LIVE_SLOTS[i])

    def write_recovery_point(self, mark: TailMark) -> None:
        """Record a durable prefix and make it durable (fdatasync). Blocks on the disk."""
        fd = self._writer_fd()
        os.pwrite(fd, encode_slot(mark), RECOVERY_SLOT)
        os.fdatasync(fd)

    def release(self) -> None:
        """Close the descriptor or mapping (the resource cache's eviction); reopened
        on next use."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self.release()
        if self.cache is not None:
            self.cache.forget(self)
