"""Waking followers when a log changes: Linux inotify through ctypes.

Two kinds of followers use it: the exporter's follow streams (``logfs serve``, in
trio: :meth:`DirectoryWatcher.run` and :meth:`WatchedDirectory.wait_change`) and
``logfs consume --follow`` (a plain loop: ``poll`` on :meth:`DirectoryWatcher.fileno`,
then :meth:`DirectoryWatcher.read_events`). Everything but those two waits is
synchronous.

Theory of operation. One inotify descriptor serves the whole process. A follower
subscribes to its log's directory and the log's *signal file*
(:meth:`DirectoryWatcher.subscribe`); both are watched once however many followers
share them (reference counts). The writer publishes a new end of the log by writing
the checkpoint's live slot with ``pwrite`` (logfs/core/checkpoint.py), which raises
``IN_MODIFY`` on the checkpoint file: that is the wake-up, and it comes exactly when
the new bytes are readable, so a follower never finds the segment ahead of the
published end and never has to look again on a timer. Segment writes raise no event
for us (the directory is watched without ``IN_MODIFY``), which keeps a busy log from
waking a follower twice per append. The directory watch reports rolls
(``IN_CREATE``), retention (``IN_DELETE``), renames and deletion of the log itself;
the file watch is added when the signal file appears if it did not exist yet. A
directory subscribed without a signal file (a topic, whose new logs a consumer
picks up) reports its entries appearing, disappearing and changing.

Any event bumps the watched directory's *generation* and wakes every waiter; a
follower remembers the generation it last saw, so an event that arrives between two
checks is never lost. Every wait also ends after a fallback interval: a queue
overflow, a missed event or a writer that died between its data and its checkpoint
costs at most that much latency, never a stall.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct

import trio

logger = logging.getLogger(__name__)

__all__ = ["DirectoryWatcher", "WatchedDirectory", "inotify_available"]

IN_MODIFY = 0x00000002
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

DIR_MASK = (IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
            | IN_ONLYDIR)
FILE_MASK = IN_MODIFY
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

_libc = None


def _load_libc():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_init1.restype = ctypes.c_int
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_add_watch.restype = ctypes.c_int
        lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.inotify_rm_watch.restype = ctypes.c_int
        _libc = lib
    return _libc


def inotify_available() -> bool:
    try:
        lib = _load_libc()
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    except (OSError, AttributeError):
        return False
    if fd < 0:
        return False
    os.close(fd)
    return True


class WatchedDirectory:
    """One watched directory (and its signal file): a generation counter and an
    event that is set (and replaced) each time anything happens in it."""

    def __init__(self, path: str, signal_file: str | None) -> None:
        self.path = path
        self.signal_file = signal_file
        self.wd = -1       # the directory's watch
        self.file_wd = -1  # the signal file's watch (or -1: not there yet)
        self.refs = 0
        self.generation = 0
        self.gone = False
        self._changed: trio.Event | None = None  # made by the first trio waiter

    def bump(self) -> None:
        self.generation += 1
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def wait_change(self, seen_generation: int, timeout_s: float) -> int:
        """Wait (in trio) until the generation differs from *seen_generation* or
        *timeout_s* passes; returns the current generation."""
        if self.generation == seen_generation:
            if self._changed is None:
                self._changed = trio.Event()
            with trio.move_on_after(timeout_s):
                await self._changed.wait()
        return self.generation


class DirectoryWatcher:
    """Watches directories with inotify (or, where inotify is missing, wakes every
    ``fallback_s``). Use :meth:`subscribe`; in trio, run :meth:`run` in a nursery;
    elsewhere, wait for :meth:`fileno` to be readable and call :meth:`read_events`.
    Close it with :meth:`close` when it is not run by :meth:`run`."""

    def __init__(self, fallback_s: float = 1.0) -> None:
        self.fallback_s = fallback_s
        self._fd = -1
        self._by_path: dict[str, WatchedDirectory] = {}
        self._by_wd: dict[int, WatchedDirectory] = {}
        self.events = 0
        try:
            lib = _load_libc()
            fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            self._fd = fd
        except (OSError, AttributeError) as exc:
            logger.warning("inotify unavailable (%s): followers poll every %.1f s", exc, fallback_s)

    @property
    def uses_inotify(self) -> bool:
        return self._fd >= 0

    def fileno(self) -> int:
        """The inotify descriptor (readable when events wait), or -1 without inotify."""
        return self._fd

    def read_events(self) -> int:
        """Read the events waiting (without blocking) and bump the directories they
        concern; returns how many were read (0 if none waited)."""
        if self._fd < 0:
            return 0
        before = self.events
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            self._dispatch(buf)
        return self.events - before

    def close(self) -> None:
        """Release the inotify descriptor (every watch with it)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def _add_watch(self, path: str, mask: int) -> int:
        """A watch descriptor, or -1 when *path* does not exist (or the limit is hit)."""
        wd = _load_libc().inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd >= 0:
            return wd
        err = ctypes.get_errno()
        if err == errno.ENOSPC:
            logger.warning("inotify watch limit reached for %s: polling", path)
        elif err not in (errno.ENOENT, errno.ENOTDIR):
            raise OSError(err, os.strerror(err), path)
        return -1

    def _watch_signal_file(self, watched: WatchedDirectory) -> None:
        if watched.signal_file is None or watched.file_wd >= 0 or self._fd < 0:
            return
        wd = self._add_watch(os.path.join(watched.path, watched.signal_file), FILE_MASK)
        if wd >= 0:
            watched.file_wd = wd
            self._by_wd[wd] = watched

    def subscribe(self, path: str, signal_file: str | None = None) -> WatchedDirectory:
        """Start (or share) a watch on directory *path*: its entries appearing,
        disappearing or moving, and writes to *signal_file* in it (any write in the
        directory if None). Call :meth:`unsubscribe` when done."""
        watched = self._by_path.get(path)
        if watched is None or watched.gone:
            watched = WatchedDirectory(path, signal_file)
            if self._fd >= 0:
                mask = DIR_MASK if signal_file is not None else DIR_MASK | IN_MODIFY
                wd = self._add_watch(path, mask)
                if wd >= 0:
                    old = self._by_wd.get(wd)
                    if old is not None and not old.gone and old.wd == wd:
                        watched = old  # the same directory under another path
                    else:
                        watched.wd = wd
                        self._by_wd[wd] = watched
                        self._watch_signal_file(watched)
            self._by_path[path] = watched
        watched.refs += 1
        return watched

    def unsubscribe(self, watched: WatchedDirectory) -> None:
        watched.refs -= 1
        if watched.refs > 0:
            return
        if self._by_path.get(watched.path) is watched:
            del self._by_path[watched.path]
        for attr in ("wd", "file_wd"):
            wd = getattr(watched, attr)
            if wd >= 0 and self._by_wd.get(wd) is watched:
                # also after IN_MOVE_SELF (the watch lives on under the new name); after
                # IN_IGNORED the kernel already dropped it and this is a harmless EINVAL
                del self._by_wd[wd]
                _load_libc().inotify_rm_watch(self._fd, wd)
            setattr(watched, attr, -1)

    @property
    def watch_count(self) -> int:
        """How many directories (logs) are watched."""
        return len({id(w) for w in self._by_wd.values()})

    async def run(self) -> None:
        """Read inotify events forever, waking the watched directories' waiters."""
        if self._fd < 0:
            await trio.sleep_forever()
        try:
            while True:
                await trio.lowlevel.wait_readable(self._fd)
                try:
                    buf = os.read(self._fd, 65536)
                except BlockingIOError:
                    continue
                self._dispatch(buf)
        finally:
            self.close()

    def _dispatch(self, buf: bytes) -> None:
        woken: set[int] = set()
        pos = 0
        while pos + _EVENT.size <= len(buf):
            wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
            name = buf[pos + _EVENT.size: pos + _EVENT.size + length].rstrip(b"\0")
            pos += _EVENT.size + length
            self.events += 1
            if mask & IN_Q_OVERFLOW:
                for watched in list(self._by_wd.values()):
                    watched.bump()
                continue
            watched = self._by_wd.get(wd)
            if watched is None:
                continue
            if wd == watched.file_wd:
                if mask & IN_IGNORED:  # the signal file was deleted (with its log)
                    self._by_wd.pop(wd, None)
                    watched.file_wd = -1
            elif mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
                watched.gone = True
                if mask & IN_IGNORED:
                    self._by_wd.pop(wd, None)
            elif mask & (IN_CREATE | IN_MOVED_TO) and watched.file_wd < 0 and \
                    watched.signal_file is not None and name == os.fsencode(watched.signal_file):
                self._watch_signal_file(watched)
            if id(watched) not in woken:
                woken.add(id(watched))
                watched.bump()
