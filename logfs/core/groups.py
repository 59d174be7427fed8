"""Consumer groups: durable, named sets of positions, one per log (Kafka's
``__consumer_offsets``, as files).

Theory of operation
-------------------
A group is a name (Kafka's rule for group ids: any non-empty string; here at most
249 characters, no control characters) holding, for each log it consumed, a
*committed position*: the record offset of the next record to read and the byte
offset where that record starts, plus the time of the commit.

Each group is one append-only file, ``DATA/.logfs/groups/<name>.offsets`` (the name
percent-encoded; a long name is replaced by a hash, the real name is in the file's
header). A commit appends one record holding every position it changes, with a
CRC, and ``fdatasync``s it before it returns: a crash in the middle leaves a torn
record whose CRC fails, so the group reads as it was before that commit — the old
positions or the new ones, never garbage. Reading the file replays the records in
order; the last valid one for a log wins. When the file has grown to several times
the size of its live positions it is rewritten as one record (a temporary file,
fsync, rename, fsync of the directory), under the same lock.

Writers in several processes (a `logfs consume`, the mount daemon's Kafka
listener) commit through an exclusive ``flock`` on the file, taken per commit; a
writer that finds the file renamed under it (a compaction by another process)
reopens it. Readers (``logfs groups``, the exporter's ``?group=``) take no lock:
a record being appended fails its CRC and is not seen yet.

File layout (little-endian)::

    header   | magic "LFSGRP01" | name length u16 | 0 u16 | crc32 u32 | name (UTF-8) |
    record   | magic "LFGC" | body length u32 | crc32 of body u32 | body |
    body     | commit time ms i64 | entries u32 | entry ... |
    entry    | topic length u16 | log length u16 | record u64 | offset u64 | topic | log |

An entry whose record is 2^64-1 removes the log from the group (``forget``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .clock import Clock, SystemClock
from .errors import InvalidName, NotFound, StorageIOError
from .fileio import fsync_path, pread_all
from .naming import GROUP_SUFFIX, GROUPS_DIR, STORE_META_DIR, TMP_SUFFIX

logger = logging.getLogger(__name__)

MAX_GROUP_CHARS = 249
_FILE_MAGIC = b"LFSGRP01"
_HEAD = struct.Struct("<8sHHI")
_REC_MAGIC = b"LFGC"
_REC = struct.Struct("<4sII")
_BODY = struct.Struct("<qI")
_ENTRY = struct.Struct("<HHQQ")
FORGET = (1 << 64) - 1
COMPACT_MIN_BYTES = 64 << 10
COMPACT_FACTOR = 4
_SAFE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

LogKey = tuple[str, str]


@dataclass(frozen=True)
class Position:
    """A committed position: the next record to read and the byte offset where it
    starts, committed at ``commit_ms``."""

    record: int
    offset: int
    commit_ms: int


def check_group_name(name: str) -> None:
    """Raise InvalidName unless *name* may be a group id."""
    if not isinstance(name, str) or not name:
        raise InvalidName("a group id must be a non-empty string")
    if len(name) > MAX_GROUP_CHARS:
        raise InvalidName(f"group id of {len(name)} characters: the limit is {MAX_GROUP_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidName(f"group id {name!r} holds a control character")


def group_file_name(name: str) -> str:
    """The file name of group *name*: percent-encoded, or a hash when that is long."""
    raw = name.encode("utf-8", "surrogatepass")
    enc = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)
    if len(enc) + len(GROUP_SUFFIX) > 200:
        enc = "%h" + hashlib.sha256(raw).hexdigest()[:40]
    return enc + GROUP_SUFFIX


def encode_header(name: str) -> bytes:
    raw = name.encode("utf-8", "surrogatepass")
    head = _HEAD.pack(_FILE_MAGIC, len(raw), 0, 0)[:12]
    return head + struct.pack("<I", zlib.crc32(raw, zlib.crc32(head))) + raw


def encode_commit(commit_ms: int, entries: Iterable[tuple[LogKey, int, int]]) -> bytes:
    """One commit record: (topic, log), record, offset for each entry."""
    parts = []
    n = 0
    for (topic, log), record, offset in entries:
        t, lg = topic.encode("utf-8", "surrogateescape"), log.encode("utf-8", "surrogateescape")
        parts.append(_ENTRY.pack(len(t), len(lg), record, offset) + t + lg)
        n += 1
    body = _BODY.pack(commit_ms, n) + b"".join(parts)
    return _REC.pack(_REC_MAGIC, len(body), zlib.crc32(body)) + body


def decode_header(raw: bytes) -> tuple[str, int]:
    """(group name, header length) of a group file's first bytes; ValueError if bad."""
    if len(raw) < 16:
        raise ValueError("group file header truncated")
    magic, name_len, _zero, crc = _HEAD.unpack_from(raw, 0)
    name_raw = raw[16:16 + name_len]
    if magic != _FILE_MAGIC or len(name_raw) != name_len or crc != zlib.crc32(name_raw, zlib.crc32(raw[:12])):
        raise ValueError("bad group file header")
    return name_raw.decode("utf-8", "surrogatepass"), 16 + name_len


def decode_records(raw: bytes, pos: int, positions: dict[LogKey, Position]) -> int:
    """Apply the valid commit records of *raw* from *pos* on to *positions*; returns
    where they end (a torn or garbage record, or the end of *raw*)."""
    while pos + _REC.size <= len(raw):
        rmagic, length, rcrc = _REC.unpack_from(raw, pos)
        body = raw[pos + _REC.size: pos + _REC.size + length]
        if rmagic != _REC_MAGIC or length < _BODY.size or len(body) != length or zlib.crc32(body) != rcrc:
            break
        try:
            changes = _decode_body(body)
        except ValueError:  # a record whose CRC holds but whose entries do not fit it
            break
        for key, position in changes:
            if position is None:
                positions.pop(key, None)
            else:
                positions[key] = position
        pos += _REC.size + length
    return pos


def decode_file(raw: bytes) -> tuple[str, dict[LogKey, Position], int]:
    """(group name, positions, length of the valid prefix) of a group file's bytes.
    A torn or garbage tail ends the valid prefix. ValueError if the header is bad."""
    name, pos = decode_header(raw)
    positions: dict[LogKey, Position] = {}
    return name, positions, decode_records(raw, pos, positions)


def _decode_body(body: bytes) -> list[tuple[LogKey, "Position | None"]]:
    """The changes of one commit record's body (None: forget the log). ValueError if
    its entries do not fill it exactly."""
    commit_ms, n = _BODY.unpack_from(body, 0)
    at = _BODY.size
    out: list[tuple[LogKey, Position | None]] = []
    for _ in range(n):
        if at + _ENTRY.size > len(body):
            raise ValueError("commit record shorter than its entries")
        tlen, llen, record, offset = _ENTRY.unpack_from(body, at)
        at += _ENTRY.size
        if at + tlen + llen > len(body):
            raise ValueError("commit record shorter than its names")
        topic = body[at: at + tlen].decode("utf-8", "surrogateescape")
        log = body[at + tlen: at + tlen + llen].decode("utf-8", "surrogateescape")
        at += tlen + llen
        out.append(((topic, log), None if record == FORGET else Position(record, offset, commit_ms)))
    if at != len(body):
        raise ValueError("commit record longer than its entries")
    return out


def _apply(body: bytes, positions: dict[LogKey, Position]) -> None:
    """Apply one commit record's body (one this process encoded) to *positions*."""
    for key, position in _decode_body(body):
        if position is None:
            positions.pop(key, None)
        else:
            positions[key] = position


class ConsumerGroup:
    """One group's positions. Not thread-safe; every call may block on the disk."""

    def __init__(self, store: "GroupStore", name: str) -> None:
        check_group_name(name)
        self.store = store
        self.name = name
        self.path = os.path.join(store.directory, group_file_name(name))
        # the writer's view of the file it last locked: (inode, valid length, positions)
        self._seen: tuple[int, int, dict[LogKey, Position]] | None = None

    @property
    def exists(self) -> bool:
        return os.path.exists(self.path)

    def positions(self) -> dict[LogKey, Position]:
        """Every committed position (empty for a group that never committed)."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"read of group {self.name!r}") from None
        try:
            _name, positions, _valid = decode_file(raw)
        except ValueError as exc:
            raise StorageIOError(f"group {self.name!r}: {exc} ({self.path})", errno.EIO) from None
        return positions

    def position(self, topic: str, log: str) -> Position | None:
        return self.positions().get((topic, log))

    @property
    def last_commit_ms(self) -> int | None:
        return max((p.commit_ms for p in self.positions().values()), default=None)

    def commit(self, positions: Mapping[LogKey, tuple[int, int]]) -> None:
        """Commit (record, offset) for each (topic, log) at once; durable when it
        returns (fdatasync). Raises StorageIOError (then nothing was committed)."""
        if positions:
            self._append([(k, r, o) for k, (r, o) in positions.items()])

    def forget(self, logs: Iterable[LogKey]) -> None:
        """Remove logs from the group (their positions are gone; durable on return)."""
        entries = [(k, FORGET, 0) for k in logs]
        if entries:
            self._append(entries)

    def delete(self) -> None:
        """Remove the group. NotFound if it does not exist."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            raise NotFound(f"no consumer group {self.name!r}") from None
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"delete of group {self.name!r}") from None
        self.store.fsync_directory()

    # -- writing ------------------------------------------------------------------
    def _append(self, entries: list[tuple[LogKey, int, int]]) -> None:
        record = encode_commit(self.store.clock.now_ms(), entries)
        try:
            self.store.ensure_directory()
            fd = self._locked_fd()
            try:
                ino, valid, live = self._load_locked(fd)
                os.pwrite(fd, record, valid)
                os.fdatasync(fd)
                _apply(record[_REC.size:], live)
                valid += len(record)
                self._seen = (ino, valid, live)
                if valid > max(COMPACT_MIN_BYTES, COMPACT_FACTOR * self._snapshot_size(live)):
                    self._compact(live)
            finally:
                os.close(fd)  # releases the flock
        except OSError as exc:
            self._seen = None
            raise StorageIOError.wrap(exc, f"commit of group {self.name!r}") from None

    def _load_locked(self, fd: int) -> tuple[int, int, dict[LogKey, Position]]:
        """(inode, valid length, positions) of the locked file: what this object saw
        last plus whatever other writers appended since; a torn tail is cut."""
        st = os.fstat(fd)
        seen = self._seen
        if seen is not None and seen[0] == st.st_ino and seen[1] <= st.st_size:
            ino, valid, live = seen
            tail = os.pread(fd, st.st_size - valid, valid) if st.st_size > valid else b""
            end = valid + decode_records(tail, 0, live) if tail else valid
        else:
            raw = _read_fd(fd)
            try:
                _name, live, end = decode_file(raw)
            except ValueError:  # an empty file left by a crash at its creation
                head = encode_header(self.name)
                os.ftruncate(fd, 0)
                os.pwrite(fd, head, 0)
                return st.st_ino, len(head), {}
        if end < st.st_size:  # a torn commit a crash left: it never counted
            logger.warning("group %r: dropping %d bytes of a torn commit", self.name, st.st_size - end)
            os.ftruncate(fd, end)
        return st.st_ino, end, live

    def _locked_fd(self) -> int:
        """The group file, open and exclusively locked, the one the path names now."""
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # compacted (renamed over) or deleted meanwhile: again
        raise OSError(errno.EAGAIN, "the group file keeps changing")

    def _snapshot_size(self, live: dict[LogKey, Position]) -> int:
        """About what a compacted file of these positions takes."""
        return (len(encode_header(self.name)) + _REC.size + _BODY.size +
                sum(_ENTRY.size + len(t) + len(lg) for t, lg in live))

    def _compact(self, live: dict[LogKey, Position]) -> None:
        # one record per commit time keeps each position's commit time
        by_time: dict[int, list[tuple[LogKey, int, int]]] = {}
        for k, p in live.items():
            by_time.setdefault(p.commit_ms, []).append((k, p.record, p.offset))
        body = encode_header(self.name) + b"".join(encode_commit(ms, es) for ms, es in sorted(by_time.items()))
        tmp = self.path + TMP_SUFFIX
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, body)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.store.fsync_directory()
        self._seen = (os.stat(self.path).st_ino, len(body), dict(live))


def _read_fd(fd: int) -> bytes:
    return pread_all(fd, os.fstat(fd).st_size, 0)


class GroupStore:
    """The consumer groups of one data directory. Readers and writers in any number
    of processes (see the module docstring); blocks on the disk."""

    def __init__(self, data_dir: str, clock: Clock | None = None) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.directory = os.path.join(self.data_dir, STORE_META_DIR, GROUPS_DIR)
        self.clock = clock or SystemClock()

    def ensure_directory(self) -> None:
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, exist_ok=True)
            self.fsync_directory(os.path.dirname(self.directory))

    def fsync_directory(self, path: str | None = None) -> None:
        fsync_path(path or self.directory)

    def group(self, name: str) -> ConsumerGroup:
        """Group *name* (it exists once something is committed). InvalidName."""
        return ConsumerGroup(self, name)

    def names(self) -> list[str]:
        """Every group with a file, sorted; a file that cannot be read is logged and
        left out."""
        try:
            entries = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageIOError.wrap(exc, "listing consumer groups") from None
        out = []
        for entry in entries:
            if not entry.endswith(GROUP_SUFFIX):
                continue
            try:
                with open(os.path.join(self.directory, entry), "rb") as f:
                    head = f.read(16 + 4 * MAX_GROUP_CHARS)
                name = decode_file(head)[0]
            except (OSError, ValueError) as exc:
                logger.warning("ignoring consumer group file %s: %s", entry, exc)
                continue
            out.append(name)
        return sorted(out)


__all__ = ["ConsumerGroup", "GroupStore", "Position", "check_group_name", "group_file_name"]
