"""File I/O primitives of the core: positional reads in bounded chunks, small files
replaced atomically, fsync of a path.

Each is written once here and used by the segments, indexes, recovery and the
store (and meant for the adapters too). They block on the disk and raise
``OSError``; the core's callers translate that at their edge
(:class:`logfs.core.errors.translate_os_errors`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator

from .naming import TMP_SUFFIX

logger = logging.getLogger(__name__)

SCAN_CHUNK = 1 << 20  # the largest single read of a scan


def iter_reads(read: Callable[[int, int], bytes], start: int, end: int,
               chunk: int = SCAN_CHUNK) -> Iterator[bytes]:
    """The bytes ``[start, end)`` that ``read(n, pos)`` returns, in reads of at most
    *chunk* bytes; stops early at the end of the data. Raises what *read* raises."""
    pos = start
    while pos < end:
        data = read(min(chunk, end - pos), pos)
        if not data:
            return
        yield data
        pos += len(data)


def iter_preads(fd: int, start: int, end: int, chunk: int = SCAN_CHUNK) -> Iterator[bytes]:
    """The bytes ``[start, end)`` of *fd*, in reads of at most *chunk* bytes; stops
    early at the end of the file. Raises OSError."""
    return iter_reads(lambda n, pos: os.pread(fd, n, pos), start, end, chunk)


def pread_all(fd: int, length: int, position: int) -> bytes:
    """*length* bytes at *position* of *fd* (fewer only at the end of the file): one
    ``pread`` when it returns everything, as it does for a regular file, else more.
    Raises OSError."""
    data = os.pread(fd, length, position)
    if len(data) >= length or not data:
        return data
    parts = [data]
    got = len(data)
    for more in iter_preads(fd, position + got, position + length):
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def fsync_path(path: str) -> None:
    """fsync the file or directory at *path* (a directory: its entries). Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: str, data: bytes, durable: bool) -> None:
    """Give *path* the content *data* at once, for every reader: written to a
    temporary file beside it, (*durable*: fsynced,) renamed over it. Raises OSError."""
    tmp = path + TMP_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_json_atomic(path: str, value: object) -> None:
    """Replace the JSON file *path* durably (``log.json``, ``.logfs-topic.json``).
    Raises OSError."""
    text = json.dumps(value, sort_keys=True, indent=1) + "\n"
    replace_file(path, text.encode("utf-8"), durable=True)


def read_json(path: str) -> dict:
    """The JSON object in *path*; ``{}`` if the file is missing, or is not a JSON
    object (one warning: an operator's broken edit must not make the log unusable).
    Raises OSError if the file cannot be read (ignoring it would let the next write
    replace what it holds)."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return value if isinstance(value, dict) else {}


def copy_tail(src: str, start: int, dst: str, append: bool) -> int:
    """Copy the bytes of file *src* from *start* on to *dst* (appended, or replacing
    it), fsync *dst*; returns how many bytes were copied. Raises OSError."""
    copied = 0
    with open(src, "rb") as f, open(dst, "ab" if append else "wb") as q:
        f.seek(start)
        while True:
            chunk = f.read(SCAN_CHUNK)
            if not chunk:
                break
            q.write(chunk)
            copied += len(chunk)
        q.flush()
        os.fsync(q.fileno())
    return copied
