"""Writing records to stdout, whole, in one of three formats.

- raw (the default): the records' bytes as they are in the log (each ends with its
  newline), sent from the segment files to stdout with ``os.sendfile``: no record
  byte passes through Python. Where the kernel refuses sendfile to that stdout (a
  terminal, a file opened with ``O_APPEND`` by ``>>``) it falls back, once and for
  good, to ``pread`` + ``write``.
- ``--print-offset``: each line prefixed with ``TOPIC/LOG<TAB>RECORD<TAB>OFFSET<TAB>``.
- ``--format json``: one JSON object per record, ``{"topic", "log", "record",
  "offset", "time", "value"}``; ``value`` is the line without its newline, as text
  (a line that is not UTF-8 has ``value_base64`` instead); ``time`` is the append
  time bound of times.py (or null).

:meth:`RecordWriter.write` returns only once the whole batch was written: what it
returned for is what a consumer group may commit. It blocks on stdout (a full pipe
waits for its reader) and raises BrokenPipeError when the reader is gone, OSError
for other write errors, and the core's errors for reads.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import select

from logfs.core import Log, StorageIOError

from .times import BatchTimes

__all__ = ["FORMATS", "RecordWriter", "make_writer"]

FORMATS = ("raw", "json")
STDOUT = 1


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:  # someone made our stdout non-blocking: wait for room
            select.select([], [fd], [])
            continue
        view = view[n:]


class RecordWriter:
    """Writes batches of whole records ``[a, b)`` of a log to a descriptor."""

    def __init__(self, fd: int = STDOUT) -> None:
        self.fd = fd
        self.bytes_written = 0

    def write(self, log: Log, a: int, b: int, first_record: int) -> None:
        """Write the log's records in ``[a, b)`` (record *first_record* begins at
        *a*; *b* is a record boundary). Raises as the module docstring says."""
        raise NotImplementedError

    def _read(self, log: Log, a: int, b: int) -> bytes:
        data = log.read(a, b - a)
        if len(data) != b - a:
            raise StorageIOError(f"{log.topic}/{log.name}: read {len(data)} bytes of [{a}, {b})",
                                 errno.EIO)
        return data


class RawWriter(RecordWriter):
    """The records' bytes, with sendfile from the segment files when the kernel can."""

    def __init__(self, fd: int = STDOUT) -> None:
        super().__init__(fd)
        self.sendfile = True

    def write(self, log: Log, a: int, b: int, first_record: int) -> None:
        if not self.sendfile:
            self._copy(log, a, b)
            return
        while a < b:
            ranges = log.read_range(a, b)  # descriptors valid until the next store call
            if not ranges:
                raise StorageIOError(f"{log.topic}/{log.name}: no data at [{a}, {b})", errno.EIO)
            for r in ranges:
                pos, left = r.position, r.length
                while left:
                    try:
                        n = os.sendfile(self.fd, r.fd, pos, left)
                    except BlockingIOError:
                        select.select([], [self.fd], [])
                        continue
                    except OSError as exc:
                        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) \
                                or pos != r.position:
                            raise
                        self.sendfile = False  # not to this stdout: copy from now on
                        self._copy(log, r.log_offset, b)
                        return
                    if n == 0:
                        raise StorageIOError(f"{r.path}: ended at {pos}, before {pos + left}",
                                             errno.EIO)
                    pos += n
                    left -= n
                    self.bytes_written += n
                a += r.length

    def _copy(self, log: Log, a: int, b: int) -> None:
        while a < b:
            chunk = self._read(log, a, min(b, a + (1 << 20)))
            _write_all(self.fd, chunk)
            self.bytes_written += len(chunk)
            a += len(chunk)


class PrefixedWriter(RecordWriter):
    """``--print-offset``: ``TOPIC/LOG<TAB>RECORD<TAB>OFFSET<TAB>`` before each line."""

    def write(self, log: Log, a: int, b: int, first_record: int) -> None:
        data = self._read(log, a, b)
        name = f"{log.topic}/{log.name}".encode("utf-8", "surrogateescape")
        out = []
        record, pos, at = first_record, a, 0
        while at < len(data):
            nl = data.index(b"\n", at) + 1
            out.append(b"%s\t%d\t%d\t" % (name, record, pos))
            out.append(data[at:nl])
            record += 1
            pos += nl - at
            at = nl
        blob = b"".join(out)
        _write_all(self.fd, blob)
        self.bytes_written += len(blob)


class JsonWriter(RecordWriter):
    """``--format json``: one object per record (JSON lines)."""

    def write(self, log: Log, a: int, b: int, first_record: int) -> None:
        with log.pinned():
            times = BatchTimes(log, a, b)
            data = self._read(log, a, b)
        out = []
        record, pos, at = first_record, a, 0
        dumps = json.dumps
        while at < len(data):
            nl = data.index(b"\n", at) + 1
            raw = data[at:nl - 1]
            obj: dict = {"topic": log.topic, "log": log.name, "record": record, "offset": pos,
                         "time": times.at(pos)}
            try:
                obj["value"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                obj["value_base64"] = base64.b64encode(raw).decode("ascii")
            out.append(dumps(obj, ensure_ascii=False).encode("utf-8", "surrogateescape"))
            record += 1
            pos += nl - at
            at = nl
        blob = b"\n".join(out) + b"\n" if out else b""
        _write_all(self.fd, blob)
        self.bytes_written += len(blob)


def make_writer(fmt: str, print_offset: bool, fd: int = STDOUT) -> RecordWriter:
    """The writer of format *fmt* (``raw`` or ``json``); ``print_offset`` with raw."""
    if fmt == "json":
        return JsonWriter(fd)
    return PrefixedWriter(fd) if print_offset else RawWriter(fd)
