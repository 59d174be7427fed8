"""A log: the ordered set of its segments, with roll, retention, reads and seeks.

Byte offsets address the log: segment files are named by the offset of their first
byte, so retention (which deletes whole sealed segments, oldest first) never shifts
anything that remains. Records are lines: record ``n`` starts right after the
``n``-th newline of the log (record 0 at offset 0).

A Log is either the writer's (appends, rolls, retention) or a reader's view in
another process (``writable=False``): the reader never writes and re-reads sizes and
listings cheaply (see :meth:`refresh`).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .checkpoint import LIVE_SLOT, RECOVERY_SLOT, Checkpoint, TailMark
from .config import LogConfig, effective_config, to_strings
from .errors import (DataGap, NotAppendable, NotFound, OffsetOutOfRange, ReadOnlyStore,
                     StorageError, StorageIOError)
from .index import CorruptIndex, newest_before
from .naming import CHECKPOINT_FILE, LOG_META_FILE, list_segment_bases, segment_name
from .segment import Segment

if TYPE_CHECKING:
    from .store import LogStore

logger = logging.getLogger(__name__)

MAX_RANGES_PER_READ = 32


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


@dataclass(frozen=True)
class FileAttrs:
    mode: int
    uid: int
    gid: int


def write_json_atomic(path: str, value: object) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, sort_keys=True, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return value if isinstance(value, dict) else {}


class Log:
    def __init__(self, store: "LogStore", topic: str, name: str, directory: str) -> None:
        self.store = store
        self.topic = topic
        self.name = name
        self.directory = directory
        self.writable = not store.readonly
        self.cache = store.cache
        self.checkpoint = Checkpoint(os.path.join(directory, CHECKPOINT_FILE), self.writable, self.cache)
        self.meta: dict = read_json(os.path.join(directory, LOG_META_FILE))
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._config: LogConfig | None = None
        self._events: list[str] = []
        self.unflushed = False
        self._unflushed_sealed: list[Segment] = []
        self._dir_dirty = False
        self.last_flush_ms = store.clock.now_ms()
        self._dir_mtime = -1
        self._scan: tuple[int, int, int] = (-1, 0, 0)  # reader: (segment base, position, newlines)
        self.bytes_read = 0
        self._last_append_ms: int | None = None
        self._gone = False  # deleted or renamed by the writer: every use is NotFound
        self._tentative = False  # the last append may be the first part of a split write
        self._pinned = 0  # reader: inside pinned(), calls do not refresh
        try:
            self._dir_ino = os.stat(directory).st_ino
        except FileNotFoundError:
            raise NotFound(f"log {topic}/{name} does not exist") from None

    # -- opening -----------------------------------------------------------------
    def load(self) -> None:
        """List the segments and load the active one's state. A writer repairs
        index files that are missing or torn (two stats per segment), even after a
        clean shutdown; the full recovery after an unclean one is the store's job."""
        self._list_segments()
        if self.writable and self._segments and not self._index_files_look_whole():
            from .recovery import recover_log
            self.store.recovery_report.extend(recover_log(self, self.store.clock.now_ms()))
            self._list_segments()
        if not self._segments:
            if not self.writable:
                return
            self._segments = [Segment.create(self.directory, 0, 0, True, self.cache)]
            self._bases = [0]
        for seg in self._segments[:-1]:
            seg.sealed = True
        active = self._segments[-1]
        active.sealed = not self.writable
        active.load_tail_state()
        live = self.checkpoint.read(LIVE_SLOT)
        if live is not None and live.position == active.base + active.size and live.timestamp_ms:
            if active.size > 0 and (active.last_ms is None or live.timestamp_ms > active.last_ms):
                active.last_ms = live.timestamp_ms
            self._last_append_ms = live.timestamp_ms
        if self._last_append_ms is None:
            self._last_append_ms = self._segments_last_timestamp()
            if self.writable and active.since_time > 0:
                # bytes past the last time entry and no live mark dating them (a
                # recovery kept them): their times are unknown, but not later than now.
                # Time seeks and the next entry's newest time before need an upper
                # bound (a lower one would make a seek skip them)
                self._last_append_ms = max(self._last_append_ms or 0, self.store.clock.now_ms())
                active.last_ms = max(active.last_ms or 0, self._last_append_ms)
        end = active.base + active.size
        if self.writable and (end if live is None else (live.position != end or live.tentative)):
            # readers in other processes take the live slot as the end of the log: after
            # a recovery that kept bytes past it (verified by an index entry) it must say
            # where the log really ends, or the exporter serves less than the mount
            self.checkpoint.write_live(end, active.base + active.interval_start, active.crc,
                                       self._last_append_ms or 0, both=True)
        if self.writable and "created_ms" not in self.meta:
            self.meta["created_ms"] = self.store.clock.now_ms()
            self.save_meta()

    def _index_files_look_whole(self) -> bool:
        for seg in self._segments:
            for path, sizes in ((seg.offset_index_path, (12,)), (seg.time_index_path, (20, 12))):
                try:
                    size = os.stat(path).st_size
                except FileNotFoundError:
                    return False
                # a time index of version 2 has 20-byte entries, of version 1 12-byte ones
                if size < 32 or all((size - 32) % n for n in sizes):
                    return False
        return True

    def _list_segments(self) -> None:
        try:
            st = os.stat(self.directory)
            names = os.listdir(self.directory)
        except FileNotFoundError:
            raise NotFound(f"log {self.topic}/{self.name} does not exist") from None
        self._dir_mtime = st.st_mtime_ns
        bases = list_segment_bases(names)
        known = {seg.base: seg for seg in self._segments}
        previous_last = self._segments[-1].base if self._segments else None
        segments = []
        for base in bases:
            seg = known.pop(base, None)
            if seg is None:
                seg = Segment(self.directory, base, self.cache, self.writable)
            segments.append(seg)
        for gone in known.values():
            gone.close()
        # sizes of sealed segments (they never change)
        for seg in segments[:-1]:
            if seg.size < 0 or not seg.sealed or seg.base == previous_last:
                seg.sealed = True
                try:
                    seg.size = os.stat(seg.path).st_size
                except FileNotFoundError:
                    seg.size = 0
        self._segments = segments
        self._bases = bases

    def save_meta(self) -> None:
        write_json_atomic(os.path.join(self.directory, LOG_META_FILE), self.meta)

    # -- figures ----------------------------------------------------------------
    @property
    def _active(self) -> Segment:
        return self._segments[-1]

    @property
    def start_offset(self) -> int:
        self._maybe_refresh()
        return self._segments[0].base if self._segments else 0

    @property
    def end_offset(self) -> int:
        self._maybe_refresh()
        if not self._segments:
            return 0
        seg = self._segments[-1]
        return seg.base + seg.size

    @property
    def records(self) -> int:
        self._maybe_refresh()
        if not self._segments:
            return 0
        seg = self._segments[-1]
        if self.writable:
            return seg.base_record + seg.records
        return seg.base_record + self._reader_newlines(seg)

    @property
    def start_record(self) -> int:
        self._maybe_refresh()
        if not self._segments:
            return 0
        first = self._segments[0]
        return first.base_record + (0 if first.starts_at_record_boundary else 1)

    @property
    def segment_count(self) -> int:
        self._maybe_refresh()
        return len(self._segments)

    @property
    def last_append_ms(self) -> int | None:
        if self.writable:
            return self._last_append_ms
        self._maybe_refresh()
        if self._segments:
            live = self.checkpoint.read(LIVE_SLOT)
            last = self._segments[-1]
            if live is not None and live.timestamp_ms and last.base <= live.position:
                return live.timestamp_ms
        return self._segments_last_timestamp()

    def _segments_last_timestamp(self) -> int | None:
        for seg in reversed(self._segments):
            ts = seg.largest_timestamp()
            if ts is not None:
                return ts
        return None

    @property
    def created_ms(self) -> int:
        return int(self.meta.get("created_ms", 0))

    @property
    def size_on_disk(self) -> int:
        return self.end_offset - self.start_offset

    # -- configuration and attributes -------------------------------------------
    @property
    def config_overrides(self) -> dict[str, str]:
        return to_strings(self.meta.get("config", {}))

    @property
    def config(self) -> LogConfig:
        if self._config is None:
            self._config = effective_config(self.meta.get("config", {}),
                                            self.store.topic_overrides(self.topic),
                                            self.store.defaults)
        return self._config

    def invalidate_config(self) -> None:
        self._config = None

    @property
    def attrs(self) -> FileAttrs:
        return FileAttrs(int(self.meta.get("mode", 0o644)), int(self.meta.get("uid", os.getuid())),
                         int(self.meta.get("gid", os.getgid())))

    def set_attrs(self, mode: int | None = None, uid: int | None = None, gid: int | None = None) -> None:
        self._check_writable()
        if mode is not None:
            self.meta["mode"] = mode & 0o7777
        if uid is not None:
            self.meta["uid"] = uid
        if gid is not None:
            self.meta["gid"] = gid
        self.save_meta()

    # -- writing ----------------------------------------------------------------
    def _check_writable(self) -> None:
        self._check_alive()
        if not self.writable:
            raise ReadOnlyStore(f"log {self.topic}/{self.name} is opened read-only")

    def append(self, data: bytes, tentative: bool = False) -> int:
        """Append *data*; returns the offset where it begins. Rolls first if the
        active segment is full or old. Raises StorageIOError (nothing appended).
        *tentative*: *data* may be the first part of a write whose rest is still to
        come (the FUSE adapter's page-boundary splits); if the writer dies before the
        next append, recovery cuts it back to its last newline. The next append goes
        to the same segment, even past segment.bytes: a write is never split between
        two segments, and the tentative bytes stay where recovery looks for them."""
        if self._gone or not self.writable:
            self._check_writable()
        seg = self._segments[-1]
        if not data:
            return seg.base + seg.size
        now = self.store.clock.now_ms()
        last = self._last_append_ms
        if last is not None and now < last:
            now = last  # the wall clock stepped back: append times are a running maximum
        cfg = self._config or self.config
        # the rest of a write whose first part was tentative goes where that part went:
        # a roll in between would move the live mark past it, out of recovery's reach
        if seg.size > 0 and not self._tentative and (
                seg.size + len(data) > cfg.segment_bytes or
                (seg.first_ms is not None and now - seg.first_ms >= cfg.segment_ms)):
            self.roll(now)
            if cfg.retention_bytes >= 0 or cfg.retention_ms >= 0:
                self.apply_retention(now)  # SPEC: retention is applied whenever a segment rolls
            seg = self._segments[-1]
        position = seg.base + seg.size
        seg.append(data, now, cfg.index_interval_bytes, last)
        self._last_append_ms = seg.last_ms
        self.checkpoint.write_live(seg.base + seg.size, seg.base + seg.interval_start, seg.crc,
                                   seg.last_ms or now, len(data) if tentative else 0)
        self._tentative = tentative
        self.unflushed = True
        return position

    def write_at(self, offset: int, data: bytes) -> int:
        """Append *data* if *offset* is the end of the log; NotAppendable otherwise."""
        end = self.end_offset
        if offset != end:
            raise NotAppendable(f"write at offset {offset} of {self.topic}/{self.name}: "
                                f"logs are append-only, the end is {end}")
        return self.append(data)

    def truncate_check(self, size: int) -> None:
        end = self.end_offset
        if size != end:
            raise NotAppendable(f"truncate of {self.topic}/{self.name} to {size}: "
                                f"logs are append-only, the size is {end}")

    def roll(self, now_ms: int | None = None) -> None:
        """Seal the active segment and start a new one at the end of the log."""
        self._check_writable()
        old = self._segments[-1]
        base_record = old.base_record + old.records
        boundary = old.ends_with_newline
        # the new segment first: if the disk is full, nothing has changed (a sealed
        # active segment with no successor would refuse every later append)
        new = None
        try:
            new = Segment.create(self.directory, old.base + old.size, base_record, boundary, self.cache)
            old.seal()
        except OSError as exc:
            if new is not None:
                new.close()
            stem = os.path.join(self.directory, segment_name(old.base + old.size))[:-len(".log")]
            for suffix in (".log", ".index", ".timeindex", ".index.tmp", ".timeindex.tmp"):
                try:
                    os.unlink(stem + suffix)
                except OSError:
                    pass
            raise StorageIOError.wrap(exc, f"roll of {self.topic}/{self.name}") from None
        self._segments.append(new)
        self._bases.append(new.base)
        self._unflushed_sealed.append(old)
        self._dir_dirty = True
        self.checkpoint.write_live(new.base, new.base, 0, old.last_ms or 0)
        self._event("rolled %s/%s: new segment at offset %d", self.topic, self.name, new.base)

    def _event(self, fmt: str, *args: object) -> None:
        line = fmt % args
        logger.info("%s", line)
        self._events.append(line)

    def pop_events(self) -> list[str]:
        events, self._events = self._events, []
        return events

    def fsync(self) -> None:
        """Make everything appended so far durable, with what recovery relies on.
        Blocks on the disk; raises StorageIOError."""
        self._check_writable()
        seg = self._segments[-1]
        try:
            for sealed in self._unflushed_sealed:
                if sealed in self._segments:
                    os.fsync(sealed.fd())
                    _fsync_path(sealed.offset_index_path)
                    _fsync_path(sealed.time_index_path)
            seg.sync()
            if self._dir_dirty:
                _fsync_path(self.directory)
            self.checkpoint.write_recovery_point(
                TailMark(seg.base + seg.size, seg.base + seg.interval_start, seg.crc, seg.last_ms or 0))
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"fsync of {self.topic}/{self.name}") from None
        self._unflushed_sealed.clear()
        self._dir_dirty = False
        self.unflushed = False
        self.last_flush_ms = self.store.clock.now_ms()

    # -- retention ----------------------------------------------------------------
    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete sealed segments beyond retention.bytes / retention.ms, oldest
        first, never the active one; roll an old active segment (segment.ms).
        Returns the number of segments deleted."""
        self._check_writable()
        now = self.store.clock.now_ms() if now_ms is None else now_ms
        cfg = self.config
        active = self._segments[-1]
        if active.size > 0 and not self._tentative and active.first_ms is not None and \
                now - active.first_ms >= cfg.segment_ms:
            self.roll(now)
        deleted = 0
        while len(self._segments) > 1:
            oldest = self._segments[0]
            total = self.end_offset - oldest.base
            by_bytes = cfg.retention_bytes >= 0 and total - oldest.size >= cfg.retention_bytes
            ts = oldest.largest_timestamp()
            by_time = cfg.retention_ms >= 0 and ts is not None and now - ts > cfg.retention_ms
            if not (by_bytes or by_time):
                break
            self._segments.pop(0)
            self._bases.pop(0)
            if oldest in self._unflushed_sealed:
                self._unflushed_sealed.remove(oldest)
            oldest.delete_files()
            self._dir_dirty = True
            deleted += 1
            self._event("retention deleted %s/%s segment %d (%d bytes, %s); start offset now %d",
                        self.topic, self.name, oldest.base, oldest.size,
                        "retention.bytes" if by_bytes else "retention.ms", self._segments[0].base)
        if deleted:
            first = self._segments[0]
            self.meta["start"] = {"offset": first.base, "record": first.base_record,
                                  "boundary": first.starts_at_record_boundary}
            self.save_meta()
        return deleted

    # -- reading ------------------------------------------------------------------
    def read_range(self, a: int, b: int) -> list[FileRange]:
        """File slices holding the log's bytes ``[a, min(b, end))``; may cover less
        than asked when the range spans many segments (call again from where it
        stops). Raises OffsetOutOfRange below the start, DataGap in a missing
        segment. Blocks only on opening a file."""
        self._maybe_refresh()
        segments = self._segments
        if not segments:
            return []
        end = segments[-1].base + segments[-1].size
        if b > end:
            b = end
        if a >= b:
            return []
        if a < segments[0].base:
            raise OffsetOutOfRange(f"offset {a} of {self.topic}/{self.name} is below the log start "
                                   f"{segments[0].base} (removed by retention)")
        i = bisect.bisect_right(self._bases, a) - 1
        ranges: list[FileRange] = []
        while a < b and i < len(segments) and len(ranges) < MAX_RANGES_PER_READ:
            seg = segments[i]
            seg_end = seg.base + seg.size
            if a >= seg_end:
                if ranges:
                    break
                raise DataGap(f"offset {a} of {self.topic}/{self.name} falls in a missing segment "
                              f"(data resumes at {segments[i + 1].base if i + 1 < len(segments) else end})")
            n = min(b, seg_end) - a
            try:
                fd = seg.fd()
            except FileNotFoundError:
                if ranges:
                    break
                self.refresh(force=True)
                raise OffsetOutOfRange(f"offset {a} of {self.topic}/{self.name}: segment removed "
                                       f"by retention; the log starts at {self.start_offset}") from None
            except OSError as exc:
                raise StorageIOError.wrap(exc, f"open {seg.path}") from None
            ranges.append(FileRange(seg.path, fd, a - seg.base, n, a))
            a += n
            i += 1
        return ranges

    def read(self, a: int, n: int) -> bytes:
        """Up to *n* bytes from offset *a* (fewer at the end of the log)."""
        parts = []
        b = a + n
        while a < b:
            ranges = self.read_range(a, b)
            if not ranges:
                break
            for r in ranges:
                chunk = os.pread(r.fd, r.length, r.position)
                parts.append(chunk)
                a += len(chunk)
                if len(chunk) < r.length:
                    b = a
                    break
        data = b"".join(parts)
        self.bytes_read += len(data)
        return data

    # -- seeks ---------------------------------------------------------------------
    def record_position(self, n: int) -> int:
        """Offset where record *n* starts. ``n == records`` gives the start of the
        incomplete record after the last newline (the end if there is none); larger
        *n* give the end. OffsetOutOfRange if record *n* was removed by retention."""
        self._maybe_refresh()
        if n < 0:
            raise OffsetOutOfRange(f"record {n} is negative")
        start_record = self.start_record
        if n < start_record and n != self.records:
            raise OffsetOutOfRange(f"record {n} of {self.topic}/{self.name} is below the first "
                                   f"retained record {start_record}")
        records = self.records
        if n > records:
            return self.end_offset
        if n == records and records < start_record:
            # the incomplete record at the end began before the log start
            return self.start_offset
        first = self._segments[0]
        if n == first.base_record and first.starts_at_record_boundary:
            return first.base
        m = n - 1  # the newline that ends record n-1
        lo, hi = 0, len(self._segments)
        while lo < hi:  # last segment with base_record <= m
            mid = (lo + hi) // 2
            if self._segments[mid].base_record <= m:
                lo = mid + 1
            else:
                hi = mid
        i = lo - 1
        if i >= 0:
            seg = self._segments[i]
            pos = seg.find_newline(m - seg.base_record)
            if pos >= 0:
                return seg.base + pos
        return self.end_offset

    def time_position(self, t_ms: int) -> int:
        """Offset of the first record appended at or after *t_ms*: never later than
        that record, and less than one index interval earlier (exactly that record
        when *t_ms* falls between two appends that each begin an index interval).
        A binary search over segments, then over one time index: the last entry all
        bytes before which are older than *t_ms* (index.py: newest time before)."""
        self._maybe_refresh()
        last = self.last_append_ms
        if last is not None and t_ms > last:  # nothing appended since: no entry to find
            return self.record_position(self.records)
        segments = self._segments
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
            return self.start_offset
        seg = segments[i]
        rel = seg.find_time(t_ms)
        if rel is None:  # pragma: no cover - the bisection guarantees an entry
            return self.start_offset
        return self._record_start_at_or_before(seg.base + rel, i)

    def time_end_position(self, t_ms: int) -> int:
        """End of the records appended at or before *t_ms* (``?until=``): the first
        time-index entry later than *t_ms*, cut back to a record boundary; the end of
        the last complete record if nothing later was appended. Never drops a record
        appended at or before *t_ms*; may include up to about one index interval of
        later ones. A binary search over segments, then over one time index."""
        self._maybe_refresh()
        segments = self._segments
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
        end = self.end_offset
        if lo < n:
            seg = segments[lo]
            tindex = seg.time_index()
            k = tindex.bisect_right(lambda e: e[0], t_ms)
            if k < tindex.count:
                limit = seg.base + tindex.get(k)[1]
                if limit < end:
                    return max(self.start_offset, self._record_start_at_or_before(limit, lo))
        return self.record_position(self.records)

    def _record_start_at_or_before(self, pos: int, i: int) -> int:
        end = self.end_offset
        if pos >= end:
            return end
        while i >= 0:
            seg = self._segments[i]
            at = seg.last_newline_before(pos - seg.base)
            if at >= 0:
                return seg.base + at
            if seg.starts_at_record_boundary or i == 0:
                return seg.base
            i -= 1
            pos = self._segments[i].base + self._segments[i].size
        return self.start_offset

    # -- readers in another process -------------------------------------------------
    def _check_alive(self) -> None:
        if self._gone:
            raise NotFound(f"log {self.topic}/{self.name} was deleted or renamed")

    def same_directory(self) -> bool:
        """The log's directory is still the one this object opened."""
        try:
            return os.stat(self.directory).st_ino == self._dir_ino
        except FileNotFoundError:
            return False

    def mark_gone(self) -> None:
        """The log was deleted or renamed: release everything; later use is NotFound."""
        self._gone = True
        self.close()

    def _maybe_refresh(self) -> None:
        if self._gone:
            self._check_alive()
        if not self.writable and not self._pinned:
            self.refresh()

    @contextmanager
    def pinned(self) -> Iterator["Log"]:
        """Reader: refresh once, then answer every call inside the block from that
        view (a stat or two fewer per call). Keep the block free of awaits and other
        waits: another user of this object would see the same pinned view."""
        self.refresh()
        self._pinned += 1
        try:
            yield self
        finally:
            self._pinned -= 1

    def refresh(self, force: bool = False) -> None:
        """Reader: pick up the writer's appends, rolls and retention (a stat of the
        directory, a look at the checkpoint's live slot, an fstat at most)."""
        if self.writable:
            return
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != self._dir_ino:  # deleted (and maybe created anew)
            self.mark_gone()
            self._check_alive()
        mtime = st.st_mtime_ns
        live = self.checkpoint.read(LIVE_SLOT)
        relist = force or mtime != self._dir_mtime or not self._segments
        if not relist and live is not None:
            last = self._segments[-1]
            if live.position > last.base + max(last.size, 0) and live.position > last.base + last.stat_size():
                relist = True
        if relist:
            self._list_segments()
            if not self._segments:
                return
        last = self._segments[-1]
        try:
            file_size = last.stat_size()
        except FileNotFoundError:
            self._list_segments()
            if not self._segments:
                return
            last = self._segments[-1]
            file_size = last.stat_size()
        size = file_size
        if live is not None and last.base <= live.position <= last.base + file_size:
            size = live.position - last.base
        last.size = size

    def _reader_newlines(self, seg: Segment) -> int:
        base, pos, count = self._scan
        if base != seg.base or pos > seg.size:
            oindex = seg.offset_index()
            oindex.refresh_count()
            entry = oindex.last()
            if entry is not None and entry[1] <= seg.size:
                pos, count = entry[1], entry[0]
            else:
                pos, count = 0, 0
        if pos < seg.size:
            count += seg.count_newlines(pos, seg.size)
            pos = seg.size
        self._scan = (seg.base, pos, count)
        return count

    # -- description and teardown ------------------------------------------------------
    def describe(self) -> dict:
        return {
            "topic": self.topic,
            "log": self.name,
            "start_offset": self.start_offset,
            "end_offset": self.end_offset,
            "records": self.records,
            "start_record": self.start_record,
            "segments": self.segment_count,
            "last_append_ms": self.last_append_ms,
            "created_ms": self.created_ms,
            "config": self.config.as_kafka_dict(),
            "config_overrides": self.config_overrides,
        }

    def segments(self) -> list[Segment]:
        self._maybe_refresh()
        return list(self._segments)

    def close(self) -> None:
        for seg in self._segments:
            seg.close()
        self.checkpoint.close()


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


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["Log", "FileRange", "FileAttrs", "StorageError", "RECOVERY_SLOT"]
