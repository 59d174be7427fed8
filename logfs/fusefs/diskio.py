"""The adapter's own file I/O on segment files, outside the core's descriptors.

The core's descriptors (``FileRange.fd``) are valid only until the next call into the
store, and only the trio thread may call the store. So what the adapter does on
segment files from a worker thread goes through descriptors of its own, opened by
path: reading what the page cache did not hold (the read handler), and writing a
segment's dirty pages before the core's fsync (the fsync handler and the flush.ms
maintenance: fsync works per inode, so the core's own fsync that follows finds the
data clean and is short).
"""

from __future__ import annotations

import errno
import os

from logfs.core import pread_all
from logfs.fusefs.errors import Refused

__all__ = ["pread_cached", "pread_path", "write_out_pages"]

_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


def pread_cached(fd: int, length: int, position: int) -> bytes | bytearray | memoryview:
    """What of [position, position+length) the page cache holds, without blocking on
    the disk (preadv2 RWF_NOWAIT); all of it, blocking, where that is unsupported.
    Raises OSError."""
    global _NOWAIT
    if not _NOWAIT:
        return os.pread(fd, length, position)
    buf = bytearray(length)
    try:
        n = os.preadv(fd, [buf], position, _NOWAIT)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        _NOWAIT = 0
        return os.pread(fd, length, position)
    return memoryview(buf)[:n] if n < length else buf


def pread_path(path: str, length: int, position: int) -> bytes:
    """Read a file range by path; blocks on the disk (call it from a worker thread).
    A segment deleted by retention meanwhile means the range is now below the log
    start: Refused(ENODATA). Other failures raise OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Refused(errno.ENODATA, f"{path} was deleted by retention") from None
    try:
        return pread_all(fd, length, position)
    finally:
        os.close(fd)


def write_out_pages(paths: list[str]) -> None:
    """fdatasync files by path; blocks on the disk (call it from a worker thread).
    Never raises: a failure here is found again, and reported, by the core's fsync."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
