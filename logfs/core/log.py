"""A log: its segments, with appends and rolls, retention, reads, seeks and fsync.

Byte offsets address the log: segment files are named by the offset of their first
byte, so retention (which deletes whole sealed segments, oldest first) never shifts
anything that remains. Records are lines: record ``n`` starts right after the
``n``-th newline of the log (record 0 at offset 0).

A Log is either the writer's (appends, rolls, retention) or a reader's view in
another process (``writable=False``): the reader never writes and re-reads sizes and
listings cheaply (see :meth:`Log.refresh`).

This class composes the parts, each in a module of its own: the ordered segments
(segments.py), reads as file ranges (reads.py), seeks (seeks.py), retention's
decisions (retention.py), a reader's catching up (follow.py). Recovery runs before a
writer loads a log, and is the store's to call (store.py, recovery.py).
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from . import retention, seeks
from .cache import ResourceCache
from .checkpoint import LIVE_SLOT, Checkpoint, TailMark
from .clock import Clock
from .config import LogConfig, effective_config, to_strings
from .errors import (NotAppendable, NotFound, OffsetOutOfRange, ReadOnlyStore, StorageIOError,
                     translate_os_errors)
from .fileio import fsync_path, replace_file
from .follow import RecordCounter, catch_up
from .logmeta import FileAttrs, LogMeta
from .manifest import CHUNK_BYTES, CorruptManifest, Manifest
from .naming import CHECKPOINT_FILE, MANIFEST_COPY_FILE, offset_index_name, segment_leftover_names, time_index_name
from .reads import FileRange, file_ranges, ranges_per_read
from .remote import RemoteSegment, RemoteSource
from .segment import Segment
from .segments import LogSegments

logger = logging.getLogger(__name__)
_MTIME_SETTLED_NS = 100_000_000  # a directory mtime this old no longer changes within its tick


class LogContext(Protocol):
    """What a Log needs from the store that opens it (LogStore is one)."""

    readonly: bool
    cache: ResourceCache
    clock: Clock
    defaults: Mapping[str, object]

    remote: "RemoteSource | None"  # where tiered segments are read from (remote.py)
    remote_cache_root: str  # DATA/.logfs/remote-cache

    def topic_overrides(self, topic: str) -> Mapping[str, object]: ...


class Log:
    def __init__(self, context: LogContext, topic: str, name: str, directory: str) -> None:
        """A log object for *directory* (not loaded yet: :meth:`load`). Raises NotFound."""
        self._context = context
        self.topic = topic
        self.name = name
        self.directory = directory
        self.writable = not context.readonly
        self.cache = context.cache
        self.checkpoint = Checkpoint(os.path.join(directory, CHECKPOINT_FILE), self.writable, self.cache)
        self.meta = LogMeta(directory)
        self._segs = LogSegments(directory, self.cache, self.writable)
        self._segments = self._segs.items  # the same list, changed in place (hot paths)
        self._config: LogConfig | None = None
        self._events: list[str] = []
        self.unflushed = False
        self._unflushed_sealed: list[Segment] = []
        self._dir_dirty = False
        self.last_flush_ms = context.clock.now_ms()
        self._counter = RecordCounter()  # reader: records of the last segment
        self._last_append_ms: int | None = None
        self._gone = False  # deleted or renamed by the writer: every use is NotFound
        self._tentative = False  # the last append may be the first part of a split write
        self._pinned = 0  # reader: inside pinned(), calls do not refresh
        self._max_ranges = ranges_per_read(self.cache.capacity)
        self.manifest: Manifest | None = None  # tiered segments, as last committed
        self._manifest_mtime_ns = -1
        self._manifest_dir_mtime_ns = -1  # the directory's mtime when the copy was last looked at
        try:
            self._dir_ino = os.stat(directory).st_ino
        except FileNotFoundError:
            raise NotFound(f"log {topic}/{name} does not exist") from None

    # -- opening -----------------------------------------------------------------
    def load(self) -> None:
        """List the segments and load the active one's state. A writer creates the
        first segment of a new log and publishes the end it found. Recovery, when it
        is needed, has run before (the store's job). Raises NotFound, CorruptIndex
        (a reader meeting a corrupt index), OSError."""
        self._relist()
        self._load_manifest_copy()
        segments = self._segments
        if self._segs.nremote == len(segments):  # no local segment (a replica, a new log)
            if not self.writable:
                return
            self._segs.add(Segment.create(self.directory, 0, 0, True, self.cache))
        for seg in segments[:-1]:
            seg.sealed = True
        active = segments[-1]
        active.sealed = not self.writable
        active.load_tail_state()
        live = self.checkpoint.read(LIVE_SLOT)
        self._date_last_append(active, live)
        if self.writable:
            end = active.base + active.size
            if end if live is None else (live.position != end or live.tentative):
                # readers in other processes take the live slot as the end of the log:
                # after a recovery that kept bytes past it (verified by an index entry)
                # it must say where the log really ends, or the exporter serves less
                self.checkpoint.write_live(end, active.base + active.interval_start, active.crc,
                                           self._last_append_ms or 0, both=True)
            if self.meta.created_ms is None:
                self.meta.set_created(self._context.clock.now_ms())

    def _date_last_append(self, active: Segment, live: TailMark | None) -> None:
        """The time of the last append: the live slot's when it describes the end,
        else the indexes' (a writer: never earlier than bytes no entry dates)."""
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
                self._last_append_ms = max(self._last_append_ms or 0, self._context.clock.now_ms())
                active.last_ms = max(active.last_ms or 0, self._last_append_ms)

    def _relist(self) -> None:
        try:
            self._segs.relist()
        except FileNotFoundError:
            raise NotFound(f"log {self.topic}/{self.name} does not exist") from None

    # -- figures ----------------------------------------------------------------
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
        """Complete records (newlines) ever appended. Raises StorageIOError, CorruptIndex."""
        self._maybe_refresh()
        if not self._segments:
            return 0
        seg = self._segments[-1]
        if self.writable or seg.remote:
            return seg.base_record + seg.records
        try:
            return seg.base_record + self._counter.newlines(seg)
        except OSError as exc:
            raise self._os_error(exc) from None

    @property
    def complete_end(self) -> int:
        """Offset just after the last complete record: the end, unless the log ends
        inside a line still being written. O(1) for the writer (it knows whether its
        last byte is a newline); readers look it up (record_position)."""
        self._maybe_refresh()
        if not self._segments:
            return 0
        seg = self._segments[-1]
        if self.writable and seg.ends_with_newline:
            return seg.base + seg.size
        return self.record_position(self.records)

    @property
    def start_record(self) -> int:
        """The first complete record at or after the start. Raises StorageIOError, CorruptIndex."""
        self._maybe_refresh()
        if not self._segments:
            return 0
        first = self._segments[0]
        try:
            return first.base_record + (0 if first.starts_at_record_boundary else 1)
        except OSError as exc:
            raise self._os_error(exc) from None

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
            try:
                live = self.checkpoint.read(LIVE_SLOT)
            except OSError as exc:
                raise self._os_error(exc) from None
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
        return self.meta.created_ms or 0

    @property
    def needs_fsync(self) -> bool:
        """Appends or rolls since the last fsync (the writer)."""
        return self.unflushed or bool(self._unflushed_sealed)

    # -- configuration and attributes -------------------------------------------
    @property
    def config_overrides(self) -> dict[str, str]:
        return to_strings(self.meta.config)

    @property
    def config(self) -> LogConfig:
        """The effective configuration: log -> topic -> store defaults -> builtin."""
        if self._config is None:
            self._config = effective_config(self.meta.config,
                                            self._context.topic_overrides(self.topic),
                                            self._context.defaults)
        return self._config

    def set_config_overrides(self, overrides: dict) -> None:
        """Replace the log's own overrides (parsed values). Raises StorageIOError."""
        self._check_writable()
        self.meta.set_config(overrides)
        self._config = None

    def invalidate_config(self) -> None:
        self._config = None

    @property
    def attrs(self) -> FileAttrs:
        return self.meta.attrs

    def set_attrs(self, mode: int | None = None, uid: int | None = None, gid: int | None = None) -> None:
        """Persist chmod/chown of the log file. Raises StorageIOError."""
        self._check_writable()
        self.meta.set_attrs(mode, uid, gid)

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
        now = self._context.clock.now_ms()
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
                # retention runs whenever a segment rolls (docs/spec.md §6)
                self.apply_retention(now)
            seg = self._segments[-1]
        position = seg.base + seg.size
        seg.append(data, now, cfg.index_interval_bytes, last)
        self._last_append_ms = seg.last_ms
        try:  # the publication of the new end: one pwrite (checkpoint.py)
            self.checkpoint.write_live(seg.base + seg.size, seg.base + seg.interval_start, seg.crc,
                                       seg.last_ms or now, len(data) if tentative else 0)
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"checkpoint of {self.topic}/{self.name}") from None
        self._tentative = tentative
        self.unflushed = True
        return position

    def truncate_check(self, size: int) -> None:
        """NotAppendable unless *size* is the log's size (a truncate that changes nothing)."""
        end = self.end_offset
        if size != end:
            raise NotAppendable(f"truncate of {self.topic}/{self.name} to {size}: "
                                f"logs are append-only, the size is {end}")

    def roll(self, now_ms: int | None = None) -> None:
        """Seal the active segment and start a new one at the end of the log.
        Raises StorageIOError (then nothing changed)."""
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
            for leftover in segment_leftover_names(old.base + old.size):
                try:
                    os.unlink(os.path.join(self.directory, leftover))
                except OSError:
                    pass
            raise StorageIOError.wrap(exc, f"roll of {self.topic}/{self.name}") from None
        self._segs.add(new)
        self._unflushed_sealed.append(old)
        self._dir_dirty = True
        with translate_os_errors("checkpoint of %s/%s", self.topic, self.name):
            self.checkpoint.write_live(new.base, new.base, 0, old.last_ms or 0)
        self._event("rolled %s/%s: new segment at offset %d", self.topic, self.name, new.base)

    def _event(self, fmt: str, *args: object) -> None:
        line = fmt % args
        logger.info("%s", line)
        self._events.append(line)

    def pop_events(self) -> list[str]:
        """The rolls and deletions since the last call, one line each."""
        events, self._events = self._events, []
        return events

    def fsync(self) -> None:
        """Make everything appended so far durable, with what recovery relies on.
        Blocks on the disk; raises StorageIOError."""
        self._check_writable()
        seg = self._segments[-1]
        with translate_os_errors("fsync of %s/%s", self.topic, self.name):
            for sealed in self._unflushed_sealed:
                if sealed in self._segments:
                    os.fsync(sealed.fd())
                    fsync_path(sealed.offset_index_path)
                    fsync_path(sealed.time_index_path)
            seg.sync()
            if self._dir_dirty:
                fsync_path(self.directory)
            self.checkpoint.write_recovery_point(
                TailMark(seg.base + seg.size, seg.base + seg.interval_start, seg.crc, seg.last_ms or 0))
        self._unflushed_sealed.clear()
        self._dir_dirty = False
        self.unflushed = False
        self.last_flush_ms = self._context.clock.now_ms()

    # -- retention ----------------------------------------------------------------
    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete sealed segments beyond retention.bytes / retention.ms, oldest
        first, never the active one; roll an old active segment (segment.ms).
        Returns the number of segments deleted. Raises StorageIOError (a segment
        whose files could not all be removed ends the pass; it stays in the log
        only if its data file is still there)."""
        self._check_writable()
        now = self._context.clock.now_ms() if now_ms is None else now_ms
        cfg = self.config
        if retention.rolls_by_age(self._segments[-1], now, cfg.segment_ms, self._tentative):
            self.roll(now)
        deleted = 0
        try:
            while (why := self._local_expired(cfg, now)) is not None:
                oldest = self._segments[self._segs.nremote]
                info = self.manifest.find(oldest.base) if self.manifest is not None else None
                try:
                    if info is not None and info.size == oldest.size:
                        self._keep_indexes_for_remote(oldest, info)
                    oldest.delete_files()
                finally:
                    if not os.path.lexists(oldest.path):  # without its data, no segment
                        self._forget_oldest(why)
                        deleted += 1
        finally:
            if deleted:
                first = self._segments[self._segs.nremote]
                self.meta.set_start(first.base, first.base_record, first.starts_at_record_boundary)
                self._install_remote()
        return deleted

    def _local_expired(self, cfg: LogConfig, now: int) -> str | None:
        """Why the oldest local segment goes: retention.* (the whole log's), or, in a
        tiered log, local.retention.* once the manifest holds a verified copy."""
        local = self._segments[self._segs.nremote:]
        why = retention.oldest_expired(local, self.end_offset, cfg, now)
        if why is not None or not cfg.tiered or self.manifest is None or len(local) < 2:
            return why
        info = self.manifest.find(local[0].base)
        if info is None or info.size != local[0].size:
            return None  # not uploaded yet: the local copy is the only one
        return retention.oldest_local_expired(local, self.end_offset, cfg, now)

    def _keep_indexes_for_remote(self, seg: Segment, info) -> None:
        """Before a tiered segment's local copy goes: its index files move to the
        remote cache, where its RemoteSegment reads them (no download)."""
        target = self._remote_dir(info)
        try:
            os.makedirs(target, exist_ok=True)
            seg.close()
            for src, name in ((seg.offset_index_path, offset_index_name(seg.base)),
                              (seg.time_index_path, time_index_name(seg.base))):
                os.replace(src, os.path.join(target, name))
        except OSError as exc:  # they are downloaded when needed instead
            logger.warning("keeping the indexes of %s/%s segment %d for remote reads: %s",
                           self.topic, self.name, seg.base, exc.strerror or exc)

    def _forget_oldest(self, why: str) -> None:
        oldest = self._segs.remove_oldest()
        if oldest in self._unflushed_sealed:
            self._unflushed_sealed.remove(oldest)
        self._dir_dirty = True
        if why.startswith("local."):
            self._event("tiering: local copy of %s/%s segment %d deleted (%d bytes, %s; it stays in "
                        "the object store); local start offset now %d", self.topic, self.name,
                        oldest.base, oldest.size, why, self._segments[self._segs.nremote].base)
        else:
            self._event("retention deleted %s/%s segment %d (%d bytes, %s); start offset now %d",
                        self.topic, self.name, oldest.base, oldest.size, why,
                        self._segments[self._segs.nremote].base)

    # -- tiered segments (tiering.py uploads them; remote.py reads them) ---------------
    def _remote_dir(self, info) -> str:
        return os.path.join(self._context.remote_cache_root, self.topic, self.name,
                            f"{info.base:020d}-{info.id}")

    def install_manifest(self, manifest: Manifest | None, write_copy: bool = True) -> None:
        """The log's manifest as just committed (or read): its segments below the
        first local one become the log's remote segments; the writer keeps a copy in
        the log directory for readers in other processes. Raises StorageIOError."""
        self.manifest = manifest
        if write_copy and self.writable and manifest is not None:
            with translate_os_errors("manifest copy of %s/%s", self.topic, self.name):
                replace_file(os.path.join(self.directory, MANIFEST_COPY_FILE), manifest.encode(), durable=True)
        self._install_remote()

    def _install_remote(self) -> None:
        source = self._context.remote
        manifest = self.manifest
        if manifest is None or source is None:
            if self._segs.remote:
                self._segs.set_remote([])
            return
        known = {(seg.base, seg.info.id): seg for seg in self._segs.remote}
        remote = []
        for info in manifest.segments:
            seg = known.get((info.base, info.id))
            if seg is None:
                seg = RemoteSegment(info, self.topic, self.name, self._remote_dir(info), source, self.cache)
            remote.append(seg)
        self._segs.set_remote(remote)

    def _load_manifest_copy(self, dir_mtime_ns: int | None = None) -> None:
        """Read the manifest copy if it changed (a stat when it did not; nothing when the
        log directory's mtime *dir_mtime_ns* is the one of the last look: the writer
        replaces the copy by a rename, which moves it)."""
        if self._context.remote is None:
            return
        if dir_mtime_ns is not None:
            if dir_mtime_ns == self._manifest_dir_mtime_ns:
                return
            # trust an mtime only once it is older than the file system's timestamp tick,
            # so a rename within the same tick as this look is not missed
            if time.time_ns() - dir_mtime_ns > _MTIME_SETTLED_NS:
                self._manifest_dir_mtime_ns = dir_mtime_ns
        path = os.path.join(self.directory, MANIFEST_COPY_FILE)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if self.manifest is not None:
                self.install_manifest(None, write_copy=False)
            return
        if st.st_mtime_ns == self._manifest_mtime_ns:
            return
        try:
            with open(path, "rb") as f:
                manifest = Manifest.decode(f.read())
        except (OSError, CorruptManifest) as exc:
            logger.warning("manifest copy of %s/%s: %s", self.topic, self.name, exc)
            return
        self._manifest_mtime_ns = st.st_mtime_ns
        self.install_manifest(manifest, write_copy=False)

    @property
    def local_start_offset(self) -> int:
        self._maybe_refresh()
        local = self._segments[self._segs.nremote:]
        return local[0].base if local else self.end_offset

    @property
    def has_remote_segments(self) -> bool:
        """Some segments are remote, as of the last refresh (no refresh: a cheap check
        before the remote-only work of a request)."""
        return self._segs.nremote > 0

    def remote_missing(self, a: int, b: int) -> bool:
        """Some bytes of [a, b) are in remote segments and not cached: fetch them with
        :meth:`fetch_remote` in a worker thread before reading (cheap when all are)."""
        if not self._segs.nremote:
            return False
        self._maybe_refresh()
        for seg in self._segments[:self._segs.nremote]:
            if seg.base >= b:
                break
            if seg.base + seg.size > a and seg.missing(max(0, a - seg.base), min(seg.size, b - seg.base)):
                return True
        return False

    def remote_chunk_end(self, a: int) -> int:
        """The end of the remote chunk holding offset *a* (a read fetched one chunk at
        a time sends its first bytes after one GET); the end of the remote segments
        if *a* lies past them."""
        remote = self._segments[:self._segs.nremote]
        i = bisect.bisect_right(remote, a, key=lambda seg: seg.base) - 1
        if i < 0 or a >= remote[i].base + remote[i].size:
            return remote[-1].base + remote[-1].size if remote else a
        seg = remote[i]
        return min(seg.base + seg.size, seg.base + ((a - seg.base) // CHUNK_BYTES + 1) * CHUNK_BYTES)

    def remote_segments_for(self, a: int, b: int) -> list:
        """The remote segments holding bytes of [a, b), with their relative ranges:
        [(segment, start, end)], for :func:`fetch_remote` in a worker thread."""
        out = []
        for seg in self._segments[:self._segs.nremote]:
            if seg.base >= b:
                break
            if seg.base + seg.size > a:
                out.append((seg, max(0, a - seg.base), min(seg.size, b - seg.base)))
        return out

    def remote_seek_window(self, n: int) -> tuple[int, int] | None:
        """The log offsets [a, b) that :meth:`record_position` (*n*) scans of a remote
        segment, or None when it reads nothing remote. Reads the segment's offset
        index: call ``ensure_indexes()`` of :meth:`remote_segment_of_record` in a
        worker thread first when it ``has_indexes()`` not (tier/task.py)."""
        seg = self.remote_segment_of_record(n)
        if seg is None:
            return None
        a, b = seg.newline_window(n - 1 - seg.base_record)
        return seg.base + a, seg.base + b

    def remote_segment_of_record(self, n: int) -> RemoteSegment | None:
        """The remote segment holding the newline that ends record *n* - 1 (the one a
        seek to record *n* reads), or None."""
        if not self._segs.nremote or n <= 0:
            return None
        self._maybe_refresh()
        remote = self._segments[:self._segs.nremote]
        m = n - 1
        i = bisect.bisect_right(remote, m, key=lambda seg: seg.base_record) - 1
        if i < 0 or m >= remote[i].base_record + remote[i].records:
            return None
        return remote[i]

    def remote_segments_without_indexes(self) -> list[RemoteSegment]:
        """Remote segments whose index files are not local (a time seek may read any)."""
        return [seg for seg in self._segments[:self._segs.nremote] if not seg.has_indexes()]

    # -- reading ------------------------------------------------------------------
    def read_range(self, a: int, b: int) -> list[FileRange]:
        """File slices holding the log's bytes ``[a, min(b, end))``; may cover less
        than asked when the range spans many segments (call again from where it
        stops): at most 32, and never more than the store's resource cache holds, so
        every descriptor stays valid until the next call. Raises OffsetOutOfRange
        below the start, DataGap in a missing segment, StorageIOError. Blocks only on
        opening a file. A reader refreshes only when the range reaches past the end (or
        below the start) it knows: the bytes below a log's end never change, so a range
        planned from a refreshed view is read from it as it is (a segment that retention
        removed meanwhile is OffsetOutOfRange, once its file cannot be opened)."""
        if self._gone:
            self._check_alive()
        segs = self._segs
        if not self.writable and not self._pinned and (
                not segs.items or a < segs.items[0].base or b > segs.end):
            self.refresh()
        try:
            return file_ranges(self._segs, a, b, self._max_ranges, self.topic, self.name)
        except FileNotFoundError:
            self.refresh(force=True)
            raise OffsetOutOfRange(f"offset {a} of {self.topic}/{self.name}: segment removed "
                                   f"by retention; the log starts at {self.start_offset}") from None

    def read(self, a: int, n: int) -> bytes:
        """Up to *n* bytes from offset *a* (fewer at the end of the log): read_range,
        then a pread of each range. Raises as read_range does."""
        parts = []
        b = a + n
        while a < b:
            ranges = self.read_range(a, b)
            if not ranges:
                break
            for r in ranges:
                try:
                    chunk = os.pread(r.fd, r.length, r.position)  # a regular file: short only at its end
                except OSError as exc:
                    raise StorageIOError.wrap(exc, f"read {r.path}") from None
                parts.append(chunk)
                a += len(chunk)
                if len(chunk) < r.length:
                    b = a
                    break
        return b"".join(parts)

    # -- seeks ---------------------------------------------------------------------
    def record_position(self, n: int) -> int:
        """Offset where record *n* starts. ``n == records`` gives the start of the
        incomplete record after the last newline (the end if there is none); larger
        *n* give the end. OffsetOutOfRange if record *n* was removed by retention."""
        self._maybe_refresh()
        if n < 0:
            raise OffsetOutOfRange(f"record {n} is negative")
        start_record = self.start_record
        records = self.records
        if n < start_record and n != records:
            raise OffsetOutOfRange(f"record {n} of {self.topic}/{self.name} is below the first "
                                   f"retained record {start_record}")
        if n > records:
            return self.end_offset
        if n == records and records < start_record:
            # the incomplete record at the end began before the log start
            return self.start_offset
        try:
            return seeks.record_position(self._segments, n)
        except OSError as exc:
            raise self._os_error(exc) from None

    def record_at(self, offset: int) -> int:
        """The record number at byte *offset* (how many newlines lie before it: the
        record that starts there, or the one it falls inside of, plus one). An index
        lookup and a scan of at most one interval. OffsetOutOfRange below the start;
        an offset past the end counts to the end."""
        self._maybe_refresh()
        if offset < self.start_offset:
            raise OffsetOutOfRange(f"offset {offset} of {self.topic}/{self.name} is below the log "
                                   f"start {self.start_offset} (removed by retention)")
        try:
            return seeks.records_before(self._segments, min(offset, self.end_offset))
        except OSError as exc:
            raise self._os_error(exc) from None

    def time_position(self, t_ms: int) -> int:
        """Offset of the first record appended at or after *t_ms*: never later than
        that record, and less than one index interval earlier (exactly that record
        when *t_ms* falls between two appends that each begin an index interval).
        A binary search over segments, then over one time index (seeks.py)."""
        self._maybe_refresh()
        last = self.last_append_ms
        if last is not None and t_ms > last:  # nothing appended since: no entry to find
            return self.record_position(self.records)
        try:
            return seeks.time_position(self._segments, t_ms)
        except OSError as exc:
            raise self._os_error(exc) from None

    def time_end_position(self, t_ms: int) -> int:
        """End of the records appended at or before *t_ms* (``?until=``): the first
        time-index entry later than *t_ms*, cut back to a record boundary; the end of
        the last complete record if nothing later was appended. Never drops a record
        appended at or before *t_ms*; may include up to about one index interval of
        later ones. A binary search over segments, then over one time index."""
        self._maybe_refresh()
        try:
            limit = seeks.time_end_limit(self._segments, t_ms)
        except OSError as exc:
            raise self._os_error(exc) from None
        return self.record_position(self.records) if limit is None else limit

    def time_marks(self, a: int, b: int) -> list[tuple[int, int]]:
        """(offset, timestamp_ms) marks of the time index over [a, b): the append time
        at *a*, then each later index entry (seeks.time_marks). Kafka's Fetch cuts its
        batches there, so each batch carries its records' append time."""
        self._maybe_refresh()
        try:
            return seeks.time_marks(self._segments, a, b)
        except OSError as exc:
            raise self._os_error(exc) from None

    def _os_error(self, exc: OSError) -> StorageIOError:
        """The StorageIOError of an OSError met reading this log's files. The
        per-request calls (appends, reads, seeks, figures) translate with a plain
        ``try``, which costs nothing until something is raised, where
        translate_os_errors would cost a few hundred nanoseconds per call."""
        return StorageIOError.wrap(exc, f"log {self.topic}/{self.name}")

    # -- readers in another process -------------------------------------------------
    def _check_alive(self) -> None:
        if self._gone:
            raise NotFound(f"log {self.topic}/{self.name} was deleted or renamed")

    def same_directory(self, dir_ino: int | None = None) -> bool:
        """The log's directory is still the one this object opened (*dir_ino*: its
        inode as the caller has just seen it; else a stat)."""
        if dir_ino is not None:
            return dir_ino == self._dir_ino
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
        directory, a look at the checkpoint's live slot, an fstat at most; follow.py).
        Raises NotFound if the log was deleted, StorageIOError."""
        if self.writable:
            return
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != self._dir_ino:  # deleted (and maybe created anew)
            self.mark_gone()
            self._check_alive()
        try:
            if self._context.remote is not None:
                self._load_manifest_copy(st.st_mtime_ns)
            catch_up(self._segs, self.checkpoint, st.st_mtime_ns, force)
        except FileNotFoundError:
            raise NotFound(f"log {self.topic}/{self.name} does not exist") from None
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"refresh of {self.topic}/{self.name}") from None

    # -- description and teardown ------------------------------------------------------
    def describe(self) -> dict:
        """The log's figures, JSON-ready (docs/core-api.md)."""
        return {
            "topic": self.topic,
            "log": self.name,
            "start_offset": self.start_offset,
            "end_offset": self.end_offset,
            "records": self.records,
            "start_record": self.start_record,
            "segments": self.segment_count,
            **self.tier_figures(),
            "last_append_ms": self.last_append_ms,
            "created_ms": self.created_ms,
            "config": self.config.as_kafka_dict(),
            "config_overrides": self.config_overrides,
        }

    def tier_figures(self) -> dict:
        """Where a tiered log's bytes are: local and remote start, segments and bytes
        per tier, the upload backlog ({} for a log that was never tiered)."""
        if self.manifest is None and not self.config.tiered:
            return {}
        n = self._segs.nremote
        local = self._segments[n:]
        remote = self.manifest.segments if self.manifest is not None else []
        have = remote[-1].end if remote else None
        pending = [seg for seg in local[:-1] if have is None or seg.base >= have]
        return {
            "local_start_offset": local[0].base if local else self.end_offset,
            "remote_start_offset": remote[0].base if remote else None,
            "remote_end_offset": remote[-1].end if remote else None,
            "local_segments": len(local), "local_bytes": sum(seg.size for seg in local),
            "remote_segments": len(remote), "remote_bytes": sum(seg.size for seg in remote),
            "upload_backlog_segments": len(pending), "upload_backlog_bytes": sum(seg.size for seg in pending),
        }

    def segments(self) -> list[Segment]:
        """The log's segments, oldest first (a copy of the list)."""
        self._maybe_refresh()
        return list(self._segments)

    def close(self) -> None:
        """Release every descriptor and mapping (they reopen on the next use)."""
        self._segs.close()
        self.checkpoint.close()


__all__ = ["Log", "LogContext", "FileRange", "FileAttrs"]
