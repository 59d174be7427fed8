"""Waking followers when a log changes: Linux inotify through ctypes, read by trio.

Theory of operation. One inotify descriptor serves the whole exporter. A follower
subscribes to its log's directory (:meth:`DirectoryWatcher.subscribe`); directories
are watched once however many followers share them (reference counts). The writer's
``write()`` to a segment file raises ``IN_MODIFY`` for that file in the directory, a
roll ``IN_CREATE``, retention ``IN_DELETE``; any event on the directory bumps its
*generation* and wakes every waiter. A follower remembers the generation it last
saw, so an event that arrives between two checks is never lost.

The core publishes the readable end through a memory-mapped checkpoint, which raises
no inotify event, and a reader may see the segment grow a moment before the
checkpoint says so. Followers therefore re-check after a short delay when the file
is longer than the published end, and every wait also ends after a fallback interval
(a queue overflow or a missed event costs at most that much latency, never a stall).
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
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
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

WATCH_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
              | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
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
    """One watched directory: a generation counter and an event that is set (and
    replaced) each time anything happens in it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.wd = -1
        self.refs = 0
        self.generation = 0
        self.gone = False
        self._changed = trio.Event()

    def bump(self) -> None:
        self.generation += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self, seen_generation: int, timeout_s: float) -> int:
        """Wait until the generation differs from *seen_generation* or *timeout_s*
        passes; returns the current generation."""
        if self.generation == seen_generation:
            with trio.move_on_after(timeout_s):
                await self._changed.wait()
        return self.generation


class DirectoryWatcher:
    """Watches directories with inotify (or, where inotify is missing, wakes every
    ``fallback_s``). Run :meth:`run` in a nursery; use :meth:`subscribe`."""

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

    def subscribe(self, path: str) -> WatchedDirectory:
        """Start (or share) a watch on *path*; call :meth:`unsubscribe` when done."""
        watched = self._by_path.get(path)
        if watched is None or watched.gone:
            watched = WatchedDirectory(path)
            if self._fd >= 0:
                wd = _load_libc().inotify_add_watch(self._fd, os.fsencode(path), WATCH_MASK)
                if wd < 0:
                    err = ctypes.get_errno()
                    if err == errno.ENOSPC:
                        logger.warning("inotify watch limit reached for %s: polling", path)
                    else:
                        raise OSError(err, os.strerror(err), path)
                else:
                    watched.wd = wd
                    old = self._by_wd.get(wd)
                    if old is not None and not old.gone:  # the same directory under another path
                        watched = old
                    self._by_wd[wd] = watched
            self._by_path[path] = watched
        watched.refs += 1
        return watched

    def unsubscribe(self, watched: WatchedDirectory) -> None:
        watched.refs -= 1
        if watched.refs > 0:
            return
        if self._by_path.get(watched.path) is watched:
            del self._by_path[watched.path]
        if watched.wd >= 0 and self._by_wd.get(watched.wd) is watched:
            # also after IN_MOVE_SELF (the watch lives on under the new name); after
            # IN_IGNORED the kernel already dropped it and this is a harmless EINVAL
            del self._by_wd[watched.wd]
            _load_libc().inotify_rm_watch(self._fd, watched.wd)
            watched.wd = -1

    @property
    def watch_count(self) -> int:
        return len(self._by_wd)

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
            fd, self._fd = self._fd, -1
            if fd >= 0:
                os.close(fd)

    def _dispatch(self, buf: bytes) -> None:
        woken: set[int] = set()
        pos = 0
        while pos + _EVENT.size <= len(buf):
            wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
            pos += _EVENT.size + length
            self.events += 1
            if mask & IN_Q_OVERFLOW:
                for watched in list(self._by_wd.values()):
                    watched.bump()
                continue
            watched = self._by_wd.get(wd)
            if watched is None:
                continue
            if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
                watched.gone = True
                if mask & IN_IGNORED:
                    self._by_wd.pop(wd, None)
            if wd not in woken:
                woken.add(wd)
                watched.bump()
