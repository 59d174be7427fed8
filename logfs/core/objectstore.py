"""What the core needs from an object store (S3 or any S3-compatible server).

The core never speaks HTTP: tiering (tiering.py) and remote reads (remote.py) call an
:class:`ObjectStore`, and the adapter in ``logfs/tier/s3.py`` implements it with a
maintained S3 client. Keys are plain strings (the layout is docs/format.md's); every
method blocks on the network, is safe to call from several threads at once, and
raises only the errors below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

from .errors import StorageError


class ObjectStoreError(StorageError):
    """The object store could not be reached or refused a request (one line: what,
    which key or bucket, why). ``transient`` is true when a retry may succeed
    (unreachable, timeouts, 5xx, throttling) and false for a missing bucket or bad
    credentials."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class ObjectNotFound(ObjectStoreError):
    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class PreconditionFailed(ObjectStoreError):
    """A conditional write lost: the object changed (If-Match) or already exists
    (If-None-Match) — another writer committed first."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # as the server returns it, without quotes


class ObjectStore(Protocol):
    """One bucket and key prefix of an object store. ``key`` arguments are relative
    to the prefix."""

    description: str  # e.g. "s3://bucket/prefix at http://127.0.0.1:8333", for messages

    def check(self) -> None:
        """The bucket exists and the credentials may list it: else ObjectStoreError
        with transient=False and a clear message."""

    def put_file(self, key: str, path: str, md5_hex: str) -> ObjectInfo:
        """Upload the whole file *path* in one PUT with Content-MD5, so the server
        checks the bytes it received; returns what a HEAD of it says. Where the
        server does not check Content-MD5, the adapter compares a plain-MD5 ETag
        itself (an encrypted bucket's ETag is not the MD5: the core compares sizes)."""

    def put_bytes(self, key: str, data: bytes, *, if_match: str | None = None,
                  if_none_match: bool = False) -> ObjectInfo:
        """PUT *data*; with *if_match* only if the object's ETag is that, with
        *if_none_match* only if there is no such object (PreconditionFailed)."""

    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag (ObjectNotFound)."""

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer only at the object's end)."""

    def head(self, key: str) -> ObjectInfo:
        """Size and ETag (ObjectNotFound)."""

    def delete(self, key: str) -> None:
        """Remove the object (no error if it is already gone)."""

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under *prefix* (relative keys, in key order)."""
