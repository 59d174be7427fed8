"""The storage core's exception types, and its one translation of OS errors.

Every failure the core reports is a :class:`StorageError`. The adapters (FUSE, HTTP)
map these to errnos or status codes in one table each; see docs/core-api.md.

An ``OSError`` from the disk becomes a :class:`StorageIOError` (keeping its errno) at
the core's edge, in one place: the :class:`translate_os_errors` context manager.
"""

from __future__ import annotations

import errno as _errno
from types import TracebackType


class StorageError(Exception):
    """Base class of every error the storage core raises."""

    errno: int = _errno.EIO


class NotFound(StorageError):
    errno = _errno.ENOENT


class AlreadyExists(StorageError):
    errno = _errno.EEXIST


class NotEmpty(StorageError):
    errno = _errno.ENOTEMPTY


class InvalidName(StorageError):
    errno = _errno.EINVAL


class ConfigError(StorageError):
    errno = _errno.EINVAL


class NotAppendable(StorageError):
    """A write anywhere but at the end, or a truncate below the end."""

    errno = _errno.EPERM


class OffsetOutOfRange(StorageError):
    """A read or seek below the log's start offset (data removed by retention)."""

    errno = _errno.ENODATA


class DataGap(StorageError):
    """A read that falls into a missing middle segment."""

    errno = _errno.EIO


class CorruptIndex(StorageError):
    """An index file whose header or length is not valid. The writer rebuilds it
    from the segment when it opens the log (recovery, which keeps the bad file in
    quarantine); a reader cannot repair it and reports it with this error."""

    errno = _errno.EIO


class StoreLocked(StorageError):
    """Another writer holds the data directory."""

    errno = _errno.EBUSY


class ReadOnlyStore(StorageError):
    errno = _errno.EROFS


class StorageIOError(StorageError):
    """An OSError from the backing disk; ``errno`` is the OS errno (ENOSPC, EIO...)."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno

    @classmethod
    def wrap(cls, exc: OSError, context: str) -> "StorageIOError":
        code = exc.errno if exc.errno is not None else _errno.EIO
        return cls(f"{context}: {exc.strerror or exc}", code)


class translate_os_errors:
    """``with translate_os_errors("fsync of %s/%s", topic, log): ...`` turns an
    ``OSError`` raised in the block into a :class:`StorageIOError` whose message is
    the context (formatted only then) and the OS's reason, and whose ``errno`` is the
    OS errno. StorageErrors pass through unchanged. The core's public calls use it at
    their edge; the per-request paths (appends, reads, seeks, a reader's figures and
    refresh: log.py) keep a plain ``try`` with the same result, free when nothing is
    raised, where a ``with`` costs 0.15-0.3 us per call."""

    __slots__ = ("_what", "_args")

    def __init__(self, what: str, *args: object) -> None:
        self._what = what
        self._args = args

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if isinstance(exc, OSError):
            raise StorageIOError.wrap(exc, self._what % self._args) from None
        return False
