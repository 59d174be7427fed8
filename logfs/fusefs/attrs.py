"""The stat figures the mount reports, and the mtime policy that keeps the page cache.

Theory of operation
-------------------
With libfuse's ``auto_inval_data`` on, the kernel drops every cached page of a FUSE
file when a getattr/lookup reply carries an mtime different from the one it holds;
after each write it marks the attributes stale and asks again, so exact mtimes would
empty a log's cache on every append. The mount turns the flag off (logfs's build of
pyfuse3 has the switch, operations.py) and then reports exact mtimes: a log's mtime is
the time of its last append. With a stock pyfuse3 (or ``-o auto_inval_data``), the
mtime is the last append time rounded *down* to
``granularity_ns`` (60 s, ``-o mtime_granularity=S``): it changes at most once per
granularity while the log is written. The appended bytes themselves reach readers
through ``st_size``, which is always exact (``end_offset``). docs/fuse.md has the
measurements.

Logs keep mode/uid/gid in the core (persisted in log.json). The root and topics use
those of their backing directories in DATA, so they persist too.

A view (views.py) shows its log's mode without the write bits, its owner, and its
own size: the window's end minus its start. Its entry timeout is 0, so every path
lookup of a view name asks the daemon again (a relative view re-resolves); while it
follows the log its attribute timeout is short (:data:`VIEW_ATTR_TIMEOUT_S`): the
kernel learns a view's growth only from getattr, since appends reach the log's inode,
not the view's. A view whose end is fixed has the timeouts of a log and the mtime of
its window (it no longer changes).
"""

from __future__ import annotations

import os
import stat
from typing import Callable

import pyfuse3

from logfs.fusefs.views import ViewWindow

ATTR_TIMEOUT_S = 1.0
ENTRY_TIMEOUT_S = 1.0
VIEW_ENTRY_TIMEOUT_S = 0.0
VIEW_ATTR_TIMEOUT_S = 0.1
BLKSIZE = 128 * 1024
WRITE_BITS = 0o222  # what a view's mode lacks of its log's


def coarse_ns(ms: int, granularity_ns: int) -> int:
    """``ms`` (milliseconds) as nanoseconds, rounded down to ``granularity_ns`` (0: exact)."""
    ns = ms * 1_000_000
    return ns - ns % granularity_ns if granularity_ns > 0 else ns


def _base(ino: int) -> pyfuse3.EntryAttributes:
    a = pyfuse3.EntryAttributes()
    a.st_ino = ino
    a.generation = 0
    a.entry_timeout = ENTRY_TIMEOUT_S
    a.attr_timeout = ATTR_TIMEOUT_S
    a.st_blksize = BLKSIZE
    return a


def log_attributes(ino: int, log, granularity_ns: int) -> pyfuse3.EntryAttributes:
    """A log's figures: size = end offset, blocks = retained bytes, coarse mtime."""
    a = _base(ino)
    fa = log.attrs
    end, start = log.end_offset, log.start_offset
    a.st_mode = stat.S_IFREG | stat.S_IMODE(fa.mode)
    a.st_nlink = 1
    a.st_uid, a.st_gid = fa.uid, fa.gid
    a.st_size = end
    a.st_blocks = (end - start + 511) // 512
    last = log.last_append_ms
    t = coarse_ns(last if last is not None else log.created_ms, granularity_ns)
    a.st_mtime_ns = a.st_ctime_ns = a.st_atime_ns = t
    a.st_birthtime_ns = log.created_ms * 1_000_000
    return a


def view_attributes(ino: int, log, window: ViewWindow, granularity_ns: int) -> pyfuse3.EntryAttributes:
    """A view's figures: size = the window's length (growing with the log while it
    follows it), blocks = the retained bytes it covers, mode = the log's without the
    write bits. Calls the log's figures (no disk I/O beyond what they do)."""
    a = _base(ino)
    a.entry_timeout = VIEW_ENTRY_TIMEOUT_S
    end = window.end_offset(log)
    if window.follows:
        a.attr_timeout = VIEW_ATTR_TIMEOUT_S
        mtime_ms = log.last_append_ms
    else:
        mtime_ms = window.mtime_ms
    if mtime_ms is None:
        mtime_ms = log.created_ms
    fa = log.attrs
    a.st_mode = stat.S_IFREG | (stat.S_IMODE(fa.mode) & ~WRITE_BITS)
    a.st_nlink = 1
    a.st_uid, a.st_gid = fa.uid, fa.gid
    a.st_size = end - window.start
    retained = end - max(window.start, log.start_offset)
    a.st_blocks = (retained + 511) // 512 if retained > 0 else 0
    t = coarse_ns(mtime_ms, granularity_ns)
    a.st_mtime_ns = a.st_ctime_ns = a.st_atime_ns = t
    a.st_birthtime_ns = log.created_ms * 1_000_000
    return a


class DirAttrs:
    """mode, uid, gid and mtime of the root and of topics: those of the backing
    directories in DATA (the data directory itself for the root), so ``chmod`` and
    ``chown`` persist across mounts and the mtime changes when logs come and go."""

    def __init__(self, path_of: Callable[[int], str]) -> None:
        self._path_of = path_of

    def created(self, ino: int, mode: int, uid: int, gid: int) -> None:
        self.update(ino, mode, uid, gid)

    def update(self, ino: int, mode: int | None, uid: int | None, gid: int | None) -> None:
        """Apply chmod/chown to the backing directory. Raises OSError."""
        path = self._path_of(ino)
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        if mode is not None:
            os.chmod(path, stat.S_IMODE(mode))

    def attributes(self, ino: int, nlink: int) -> pyfuse3.EntryAttributes:
        st = os.stat(self._path_of(ino))
        a = _base(ino)
        a.st_mode = stat.S_IFDIR | stat.S_IMODE(st.st_mode)
        a.st_nlink = nlink
        a.st_uid, a.st_gid = st.st_uid, st.st_gid
        a.st_size = 4096
        a.st_blocks = 8
        a.st_mtime_ns = a.st_ctime_ns = a.st_atime_ns = a.st_birthtime_ns = st.st_mtime_ns
        return a
