"""``logfs consume``: whole records of one or many logs to stdout, at least once.

Theory of operation
-------------------
The consumer opens DATA read-only, as the exporter does, and keeps one *cursor* per
log: the next record to write and the byte offset where it begins (a record
boundary). Each cursor starts where its group committed (starts.py), else at
``--from``. A *batch* is a run of whole records planned through the indexes (the
end of the last complete record, ``--max``, ``--until``, the commit window, at most
``BATCH_BYTES``), written to stdout (output.py: raw records go from the segment
files with ``sendfile``), and only then is the cursor moved past it. Logs take turns
batch by batch, so the order across logs is the order of the batches, and within a
log it is the log's order.

Commits (with ``--group``): the positions of every cursor go to the group in one
commit (one ``fdatasync``, logfs/core/groups.py) once ``commit_every`` records were
written since the last commit, or ``commit_ms`` after the first of them was written
(a follower asleep wakes up for it), and when the consumer ends (``--max``,
``--until``, the end of the logs without ``--follow``, Ctrl-C, SIGTERM, a closed
pipe). A batch
never holds more records than the window has room for, so at any moment at most
``commit_every`` records have been written and not committed: that is what a
consumer killed with SIGKILL re-reads next time, and nothing is ever skipped, since
a position is committed only after everything before it was written. The starting
positions are committed at once when the group had none (or one retention
removed), so a second run continues where the first began even if the first wrote
nothing.

Without ``--follow`` each log is read up to the last record it held when the
consumer opened it. With ``--follow`` the consumer then waits for the writer's
checkpoint writes through inotify (logfs/watch.py, the exporter's wake-up): a plain
``poll`` on the inotify descriptor, woken by the ``pwrite`` that publishes each
append, so a line reaches stdout about a millisecond after the producer's
``write()`` returned (``tail -f`` on FUSE polls once a second). It also looks at
every log at least once a second without events, and picks up logs created in a
followed topic (read from their first record).

Signals: SIGINT (Ctrl-C) and SIGTERM end the consumer after a final commit (exit
0), the batch being written finished first (signals.py). A closed stdout (EPIPE)
ends it after a final commit too (exit 141, as a process killed by SIGPIPE). Every
other failure is a :class:`ConsumeError` with one line for the person.
"""

from __future__ import annotations

import errno
import os
import select
import time

from logfs.core import (GroupStore, Log, LogStore, NotFound, OffsetOutOfRange, StorageError,
                        open_log_store)
from logfs.core.groups import ConsumerGroup
from logfs.core.naming import CHECKPOINT_FILE
from logfs.core.selection import parse_time
from logfs.paths import PathError, locate_all
from logfs.tier.recorded import recorded_remote

from . import starts
from .member import GroupBusy, GroupMember
from .options import ConsumeError, ConsumeOptions, check_options
from .output import RecordWriter, make_writer
from .progress import Progress
from .signals import StopSignals, Stopped
from .window import CommitWindow

__all__ = ["ConsumeError", "ConsumeOptions", "Consumer", "run_consume"]  # the first two: options.py

FOLLOW_FALLBACK_S = 1.0         # a follower looks at every log this often without events
BATCH_BYTES = 8 << 20           # raw records per batch (sendfile), at most about
FORMATTED_BATCH_BYTES = 1 << 20  # --format json / --print-offset: read into memory
EXIT_PIPE = 141                 # 128 + SIGPIPE, what a shell reports for `cat` in a closed pipe


class Cursor:
    """One log being consumed. ``at`` is (next record, its offset or None while that
    record is not complete), replaced whole, so an interrupt never leaves half of it."""

    __slots__ = ("topic", "name", "log", "at", "stop", "committed", "watched", "seen")

    def __init__(self, log: Log, at: tuple[int, int | None], stop: int | None,
                 committed: tuple[int, int] | None) -> None:
        self.topic, self.name, self.log = log.topic, log.name, log
        self.at = at
        self.stop = stop              # the record to stop before (None: no end)
        self.committed = committed    # what the group holds for this log
        self.watched = None           # logfs.watch.WatchedDirectory while following
        self.seen = -1

    @property
    def key(self) -> tuple[str, str]:
        return self.topic, self.name

    @property
    def done(self) -> bool:
        return self.stop is not None and self.at[0] >= self.stop


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Consumer:
    """The cursors, the writer, the commit window; see the module docstring. Blocks
    on stdout and on the disk."""

    def __init__(self, opts: ConsumeOptions, store: LogStore, group: ConsumerGroup | None,
                 writer: RecordWriter, progress: Progress, signals: StopSignals | None = None) -> None:
        self.opts = opts
        self.signals = signals or StopSignals()
        self.store = store
        self.group = group
        self.writer = writer
        self.progress = progress
        self.now_ms = _now_ms()
        self.spec = starts.parse_from(opts.start, self.now_ms)
        self.until_ms = parse_time(opts.until, self.now_ms) if opts.until is not None else None
        self.cursors: dict[tuple[str, str], Cursor] = {}
        self.topics: list[str] = []          # followed whole (new logs join)
        self.records = 0                     # written, in all
        self.window = CommitWindow(opts.commit_every, opts.commit_ms)
        self.left = opts.max_records
        self.batch_bytes = BATCH_BYTES if opts.fmt == "raw" and not opts.print_offset \
            else FORMATTED_BATCH_BYTES

    # -- people --------------------------------------------------------------------
    def note(self, text: str) -> None:
        """One line on stderr (a reset, a log that went away)."""
        self.progress.clear()
        try:
            os.write(2, f"logfs consume: {text}\n".encode("utf-8", "backslashreplace"))
        except OSError:
            pass

    # -- opening -------------------------------------------------------------------
    def add_log(self, topic: str, name: str, late: bool = False) -> None:
        """A cursor for *topic/name* (again: nothing). *late*: a log created in a
        followed topic, read from its first record unless the group has a position.
        Raises NotFound, StorageError."""
        if (topic, name) in self.cursors:
            return
        log = self.store.log(topic, name)
        spec = starts.FromSpec("earliest") if late else self.spec
        groups = self.group.store if self.group is not None else None
        gname = self.group.name if self.group is not None else None
        with log.pinned():
            point = starts.start_of(log, spec, self.opts.reset, groups, gname)
            stop = None
            if not self.opts.follow:
                stop = log.records  # the end it has now
            if self.until_ms is not None and (not self.opts.follow or self.until_ms <= self.now_ms):
                until = self._until_record(log, point.record)
                stop = until if stop is None else min(stop, until)
        committed = None
        if self.group is not None and point.note is None and point.offset is not None:
            pos = self.group.position(topic, name)
            if pos is not None and (pos.record, pos.offset) == (point.record, point.offset):
                committed = (pos.record, pos.offset)
        if point.note:
            self.note(point.note)
        elif late:
            self.note(f"{topic}/{name} appeared: reading it from its first record")
        self.cursors[(topic, name)] = Cursor(log, (point.record, point.offset), stop, committed)

    def _until_record(self, log: Log, first: int) -> int:
        """The record to stop before for --until, not before *first* (inside
        log.pinned())."""
        end = log.time_end_position(self.until_ms)
        return max(first, starts.record_at(log, end))

    def open(self, located) -> None:
        """Cursors for the located paths (topics: every log they hold now). Raises
        ConsumeError for a path that is not a topic or a log, NotFound, StorageError."""
        for loc in located:
            if loc.topic is None:
                raise ConsumeError(f"{loc.path}: name a topic or a log to consume "
                                   "(MOUNT/topic or MOUNT/topic/log)")
            if loc.log is None:
                logs = self.store.logs(loc.topic)
                if loc.topic not in self.topics:
                    self.topics.append(loc.topic)
                for name in logs:
                    self.add_log(loc.topic, name)
            else:
                self.add_log(loc.topic, loc.log)

    # -- reading -------------------------------------------------------------------
    def batch(self, c: Cursor) -> int:
        """Write the next batch of *c* (if any); returns how many records. Raises
        NotFound (the log went away), BrokenPipeError, OSError, StorageError."""
        log = c.log
        with log.pinned():
            record, pos = c.at
            if pos is not None and pos < log.start_offset:
                self._overtaken(c)
                return 0
            if pos is None:
                if log.records < record:
                    return 0
                try:
                    pos = log.record_position(record)
                except OffsetOutOfRange:
                    self._overtaken(c)
                    return 0
                c.at = (record, pos)
            target = log.records
            if c.stop is not None:
                target = min(target, c.stop)
            if self.left is not None:
                target = min(target, record + self.left)
            if self.group is not None:
                target = min(target, record + self.window.room())
            if target <= record:
                return 0
            limit = log.record_position(target)
            if limit - pos > self.batch_bytes and target - record > 1:
                # about batch_bytes, guessed from the mean record size: one more lookup
                share = (target - record) * self.batch_bytes // (limit - pos)
                target = record + max(1, share)
                limit = log.record_position(target)
        try:
            self.writer.write(log, pos, limit, record)
        except OffsetOutOfRange:  # retention removed what was being read
            self._overtaken(c)
            return 0
        c.at = (target, limit)
        n = target - record
        self.records += n
        if self.left is not None:
            self.left -= n
        if self.group is not None:
            self.window.wrote(n)
        return n

    def _overtaken(self, c: Cursor) -> None:
        """Retention removed records before *c* read them: on by --reset, with a note."""
        log = c.log
        with log.pinned():
            point = starts.earliest(log) if self.opts.reset == "earliest" else starts.latest(log)
        self.note(f"{c.topic}/{c.name}: retention removed records from {c.at[0]} on before they "
                  f"were read; continuing at {self.opts.reset} (record {point.record})")
        c.at = (point.record, point.offset)

    def behind(self) -> int:
        """Records left to read, in all (for the progress line)."""
        left = 0
        for c in self.cursors.values():
            try:
                end = c.log.records if c.stop is None else min(c.stop, c.log.records)
            except StorageError:
                continue
            left += max(0, end - c.at[0])
        return left if self.left is None else min(left, self.left)

    def catch_up(self, cursors: list[Cursor]) -> None:
        """Batches of *cursors* in turn until none has anything left to write (the
        end, --max, --until), committing when the window says so. A log that went
        away is dropped with a note."""
        self.progress.start()
        while cursors:
            progressed = False
            for c in list(cursors):
                try:
                    n = self.batch(c)
                except NotFound:
                    self.drop(c)
                    cursors.remove(c)
                    continue
                if n:
                    progressed = True
                    if self.window.due():
                        self.commit()
                    if self.progress.enabled:
                        self.progress.tick(self.records, self.writer.bytes_written, self.behind)
                if self.left == 0 or self.signals.requested:
                    return
            if not progressed:
                break
        self.progress.idle()

    def drop(self, c: Cursor) -> None:
        self.note(f"{c.topic}/{c.name} was deleted or renamed: no longer reading it")
        self.cursors.pop(c.key, None)

    # -- committing ----------------------------------------------------------------
    def commit(self) -> None:
        """Commit every cursor that moved (one fdatasync). Raises StorageError."""
        if self.group is None:
            return
        changes = {c.key: c.at for c in self.cursors.values()
                   if c.at[1] is not None and c.at != c.committed}
        if changes:
            self.group.commit(changes)  # type: ignore[arg-type]
            for c in self.cursors.values():
                if c.key in changes:
                    c.committed = changes[c.key]  # type: ignore[assignment]
        self.window.committed()

    # -- the end -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        if self.left == 0 or self.signals.requested:
            return True
        if self.opts.follow and self.topics:
            return False  # new logs may come
        return all(c.done for c in self.cursors.values())

    def run(self) -> None:
        """Read to the end (and follow with --follow); the caller commits last."""
        self.catch_up(list(self.cursors.values()))
        if self.opts.follow and not self.finished:
            self.follow()

    # -- following -----------------------------------------------------------------
    def follow(self) -> None:
        """Wait for appends (inotify on each log's checkpoint) and write them as they
        come, until --max, --until or a signal."""
        from logfs.watch import DirectoryWatcher  # imported only to follow
        watcher = DirectoryWatcher(FOLLOW_FALLBACK_S)
        poller = select.poll()
        if watcher.fileno() >= 0:
            poller.register(watcher.fileno(), select.POLLIN)
        topic_watches = {t: watcher.subscribe(os.path.join(self.store.data_dir, t)) for t in self.topics}
        topic_seen = {t: w.generation for t, w in topic_watches.items()}
        try:
            for c in self.cursors.values():
                self._watch(watcher, c)
            self.catch_up(list(self.cursors.values()))  # what came while watches were set up
            timed_out = False
            while not self.finished:
                for t, w in topic_watches.items():
                    if timed_out or w.generation != topic_seen[t]:
                        topic_seen[t] = w.generation
                        self._new_logs(watcher, t)
                ready = [c for c in self.cursors.values()
                         if timed_out or c.watched is None or c.watched.generation != c.seen]
                for c in ready:
                    if c.watched is not None:
                        c.seen = c.watched.generation
                self._until_passed()
                self.catch_up(ready)
                if self.window.due():
                    self.commit()
                if self.finished:
                    break
                timeout_ms = max(0, int(self._wait_s() * 1000 + 0.999))
                self.signals.sleeping = True
                try:
                    if self.signals.requested:  # came just before: do not sleep
                        break
                    events = poller.poll(timeout_ms)
                finally:
                    self.signals.sleeping = False
                if events:
                    watcher.read_events()
                    timed_out = False
                else:
                    timed_out = True
        finally:
            watcher.close()

    def _watch(self, watcher, c: Cursor) -> None:
        c.watched = watcher.subscribe(c.log.directory, CHECKPOINT_FILE)
        c.seen = c.watched.generation

    def _new_logs(self, watcher, topic: str) -> None:
        try:
            names = self.store.logs(topic)
        except NotFound:
            return
        for name in names:
            if (topic, name) not in self.cursors:
                try:
                    self.add_log(topic, name, late=True)
                except NotFound:  # not complete yet: the next event
                    continue
                self._watch(watcher, self.cursors[(topic, name)])

    def _until_passed(self) -> None:
        """With --until in the future when following: once the clock passes it, each
        log stops at the records appended at or before it."""
        if self.until_ms is None or _now_ms() <= self.until_ms:
            return
        self.topics = []  # no new logs after until
        for c in self.cursors.values():
            if c.stop is None:
                with c.log.pinned():
                    c.stop = self._until_record(c.log, c.at[0])

    def _wait_s(self) -> float:
        wait = FOLLOW_FALLBACK_S
        deadline = self.window.deadline()
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        if self.until_ms is not None and any(c.stop is None for c in self.cursors.values()):
            wait = min(wait, (self.until_ms - _now_ms()) / 1000 + 0.001)
        return max(0.0, wait)


def run_consume(opts: ConsumeOptions) -> int:
    """``logfs consume``: returns the exit status. Raises ConsumeError (one line for
    the person); Ctrl-C and SIGTERM end it cleanly (StopSignals)."""
    check_options(opts)
    try:
        data, located = locate_all(list(opts.paths), what="logs to consume")
    except PathError as exc:
        raise ConsumeError(str(exc)) from None
    try:
        store = open_log_store(data, readonly=True, remote=recorded_remote(data))
    except StorageError as exc:
        raise ConsumeError(f"{data}: {exc}") from None
    member = None
    consumer = None
    signals = StopSignals()
    signals.install()
    try:
        group = None
        if opts.group is not None:
            groups = GroupStore(data)
            member = GroupMember(groups, opts.group)
            try:
                member.acquire()
            except OSError as exc:
                raise ConsumeError(f"consumer group {opts.group!r}: cannot take it in {groups.directory}: "
                                   f"{exc.strerror or exc}") from None
            group = groups.group(opts.group)
        consumer = Consumer(opts, store, group, make_writer(opts.fmt, opts.print_offset), Progress(),
                            signals)
        consumer.open(located)
        consumer.commit()  # the starting positions the group did not have
        consumer.run()
        return 0
    except Stopped:
        return 0
    except BrokenPipeError:
        return EXIT_PIPE
    except GroupBusy as exc:
        raise ConsumeError(str(exc)) from None
    except NotFound as exc:
        raise ConsumeError(str(exc)) from None
    except StorageError as exc:
        raise ConsumeError(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return EXIT_PIPE
        raise ConsumeError(f"writing to stdout: {exc.strerror or exc}") from None
    finally:
        signals.shielded = True
        try:
            if consumer is not None:
                consumer.progress.clear()
                try:
                    consumer.commit()
                except StorageError as exc:
                    consumer.note(f"the last commit failed: {exc} (what was written since the "
                                  "commit before will be read again)")
        finally:
            signals.restore()
            if member is not None:
                member.release()
            store.close()
