"""The per-log checkpoint file: the recovery point and the live tail.

Theory of operation
-------------------
Recovery must tell bytes that were really appended from a zero-filled or garbage
tail left by a power loss. The offset index carries a CRC per index interval, which
covers everything up to the last index entry. This file covers the rest, the bytes
after the last entry, twice:

* the *live* slot is rewritten (through a shared mmap: a memory store, no system
  call) after every append. After ``kill -9`` of the daemon the page cache survives,
  so it describes the true end exactly and recovery cuts nothing. There are two live
  slots, written in turn: a kill in the middle of the store (it is a memcpy, which a
  signal can interrupt) leaves the other slot, one append older, intact; and a reader
  in another process that catches a slot half written reads the other one.
* the *recovery point* slot is rewritten only by ``fsync``, after the data and the
  indexes are durable, and flushed with ``msync``. After a power loss it still
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
    """The checkpoint file of one log, mapped shared (writer) or read-only (reader)."""

    def __init__(self, path: str, writable: bool, cache=None) -> None:
        self.path = path
        self.writable = writable
        self.cache = cache
        self._map: mmap.mmap | None = None
        self._next_live: int | None = None  # which live slot the next write_live goes to

    def _mapping(self) -> mmap.mmap | None:
        if self._map is None:
            if self.writable:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    if os.fstat(fd).st_size != FILE_SIZE:
                        os.ftruncate(fd, FILE_SIZE)
                    # allocate the blocks now: a store through the mapping into a hole
                    # of a full filesystem is a SIGBUS, which would kill the daemon
                    os.posix_fallocate(fd, 0, FILE_SIZE)
                    self._map = mmap.mmap(fd, FILE_SIZE)
                finally:
                    os.close(fd)
            else:
                try:
                    fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return None
                try:
                    if os.fstat(fd).st_size < FILE_SIZE:
                        return None
                    self._map = mmap.mmap(fd, FILE_SIZE, prot=mmap.PROT_READ)
                finally:
                    os.close(fd)
            if self.cache is not None:  # a mapping holds a descriptor: keep them bounded
                self.cache.touch(self)
        return self._map

    def read(self, slot: int) -> TailMark | None:
        """The mark in *slot*; for LIVE_SLOT the valid live slot with the greater
        position (the newer one, unless it was left half written)."""
        if slot == LIVE_SLOT:
            marks = self.read_lives()
            return marks[0] if marks else None
        m = self._mapping()
        if m is None:
            return None
        return decode_slot(m[slot: slot + SLOT_SIZE])

    def read_lives(self) -> list[TailMark]:
        """The valid live slots, the greater position first."""
        m = self._mapping()
        if m is None:
            return []
        marks = [decode_slot(m[at: at + SLOT_SIZE]) for at in LIVE_SLOTS]
        return sorted((mark for mark in marks if mark is not None), key=lambda mark: -mark.position)

    def write_live(self, position: int, interval_start: int, crc: int, timestamp_ms: int,
                   tentative: int = 0, both: bool = False) -> None:
        """Memory store into the shared mapping: survives a daemon crash, not a power loss.
        The two live slots are written in turn (*both*: at once, when the log's end
        moved back, e.g. after recovery cut a tail the other slot still covers).
        *tentative*: how many bytes before *position* belong to an append that may be
        the first part of a write whose rest has not arrived (recovery cuts them)."""
        m = self._map or self._mapping()
        raw = _encode(crc, position, interval_start, timestamp_ms, tentative)
        if both:
            # a slot already at this position may be what vouches for the log's end
            # now: write it last, so a kill between the two stores leaves it whole
            def at_position(at: int) -> bool:
                mark = decode_slot(m[at: at + SLOT_SIZE])  # type: ignore[index]
                return mark is not None and mark.position == position
            for at in sorted(LIVE_SLOTS, key=at_position):
                m[at: at + SLOT_SIZE] = raw  # type: ignore[index]
            self._next_live = 0
            return
        i = self._next_live
        if i is None:
            # overwrite the older slot (or a bad one): the other must hold the state
            # just before this write, for a kill in the middle of it
            a, b = (decode_slot(m[at: at + SLOT_SIZE]) for at in LIVE_SLOTS)  # type: ignore[index]
            i = 0 if a is None or (b is not None and a.position < b.position) else 1
        self._next_live = i ^ 1
        at = LIVE_SLOTS[i]
        m[at: at + SLOT_SIZE] = raw  # type: ignore[index]

    def write_recovery_point(self, mark: TailMark) -> None:
        """Record a durable prefix and make it durable (msync). Blocks on the disk."""
        m = self._mapping()
        assert m is not None
        m[RECOVERY_SLOT: RECOVERY_SLOT + SLOT_SIZE] = encode_slot(mark)
        m.flush()

    def clear(self) -> None:
        m = self._mapping()
        if m is not None:
            m[0:FILE_SIZE] = bytes(FILE_SIZE)
        self._next_live = None

    def release(self) -> None:
        """Unmap (the resource cache's eviction); remapped on next use."""
        if self._map is not None:
            self._map.close()
            self._map = None

    def close(self) -> None:
        self.release()
        if self.cache is not None:
            self.cache.forget(self)
