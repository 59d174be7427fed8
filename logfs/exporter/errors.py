"""The exporter's one error boundary: storage-core exceptions become HTTP refusals.

The storage core raises its own exception types (logfs.core.errors) and ``OSError``
where a disk call failed outside its own wrapping. Nothing in the exporter catches
those but :class:`storage_errors_as_http`, a small context manager in the manner of
trio's error-translating ones: the connection's ``dispatch`` runs every request
inside one, and the listings use one per log so that one unreadable log is left out
instead of failing the whole listing. The table:

    NotFound          404  (deleted or renamed meanwhile)
    OffsetOutOfRange  416  Content-Range: bytes */END, Logfs-Start-Offset, Logfs-End-Offset
    DataGap           500  data missing (a segment file is gone)
    StorageError      500  storage error
    OSError           500  storage error

What the exporter decides on its own (a malformed query, a path outside DATA, a range
beyond the end) it raises as :class:`~logfs.exporter.protocol.HttpError` directly;
:func:`below_start` and :func:`beyond_end` build the 416 answers for both.
"""

from __future__ import annotations

from types import TracebackType

from logfs.core import DataGap, Log, NotFound, OffsetOutOfRange, StorageError

from .protocol import HttpError

__all__ = ["below_start", "beyond_end", "http_error_for", "storage_errors_as_http"]


def _offsets(log: Log) -> tuple[int, int, int]:
    return log.start_offset, log.start_record, log.end_offset


def _range_headers(start: int, end: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-range", f"bytes */{end}".encode()),
            (b"logfs-start-offset", str(start).encode()),
            (b"logfs-end-offset", str(end).encode())]


def below_start(log: Log, what: str) -> HttpError:
    """416 for *what* (``"offset 5"``) lying below the log start: the body and the
    headers say where the data begins. Reads the log's figures (the caller's view)."""
    start, start_record, end = _offsets(log)
    return HttpError(416, f"{what} is below the log start: data begins at offset {start} "
                          f"(record {start_record}); the log ends at offset {end}",
                     _range_headers(start, end))


def beyond_end(log: Log, what: str) -> HttpError:
    """416 for *what* lying at or beyond the log's end."""
    start, _record, end = _offsets(log)
    return HttpError(416, f"{what} is beyond the log end {end}", _range_headers(start, end))


def http_error_for(exc: StorageError | OSError, log: Log | None = None) -> HttpError:
    """The refusal the exporter answers *exc* with (the table above). With *log*, a
    416 carries that log's offsets; reading them may fail too, and then it does not."""
    if isinstance(exc, NotFound):
        return HttpError(404, str(exc))
    if isinstance(exc, OffsetOutOfRange):
        if log is not None:
            try:
                start, start_record, end = _offsets(log)
            except (StorageError, OSError):
                pass
            else:
                return HttpError(416, f"{exc}: data begins at offset {start} (record "
                                      f"{start_record}); the log ends at offset {end}",
                                 _range_headers(start, end))
        return HttpError(416, str(exc))
    if isinstance(exc, DataGap):
        return HttpError(500, f"data missing: {exc}")
    if isinstance(exc, OSError):
        return HttpError(500, f"storage error: {exc.strerror or exc}")
    return HttpError(500, f"storage error: {exc}")


class storage_errors_as_http:  # noqa: N801 - used like a function, as contextlib's are
    """``with storage_errors_as_http() as boundary:`` turns a StorageError or OSError
    raised inside into the HttpError of :func:`http_error_for` (raised from None);
    everything else passes through. Set ``boundary.log`` once the request's log is
    known, so that a 416 says where that log's data begins. Does not block."""

    def __init__(self, log: Log | None = None) -> None:
        self.log = log

    def __enter__(self) -> "storage_errors_as_http":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if isinstance(exc, (StorageError, OSError)):
            raise http_error_for(exc, self.log) from None
        return False
