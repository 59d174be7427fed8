"""The storage core's exception types.

Every failure the core reports is a :class:`StorageError`. The adapters (FUSE, HTTP)
map these to errnos or status codes in one table each; see docs/core-api.md.
"""

from __future__ import annotations

import errno as _errno


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
