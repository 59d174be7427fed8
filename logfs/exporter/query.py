"""Parsing what a client asks for: the query string of a log request and the
``Range`` header. Pure functions on strings: no I/O, no clock (the caller passes
``now_ms``).

Query parameters of ``GET /<topic>/<log>``: the selectors every consumer path shares
(logfs/core/selection.py: the same words as views in the mount and ``logfs
consume``) and the exporter's own two:

    offset=BYTE     start at this byte offset of the log
    record=N        start at record (line) N, counted from 0 since the log began
    since=TIME      start at the first record appended at or after TIME
    last=N          start N records before the end (like ``tail -n N``)
    group=G         start at consumer group G's committed position (read only:
                    the exporter never commits)
    until=TIME      end after the last record appended at or before TIME
    reset=earliest|latest   with group: where to start when G has no position for
                    the log, or retention removed it (default earliest)
    follow=1        keep streaming as data arrives (like ``tail -f``)

TIME is ISO 8601 (``2026-11-25T10:00:00Z``; no zone means UTC), a duration before
now (``90s``, ``10m``, ``2h``, ``7d``, ``1w``, ``500ms``) or integer milliseconds
since the epoch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from logfs.core import InvalidName
from logfs.core.groups import check_group_name
from logfs.core.selection import (RESETS, SELECTOR_KEYS, BadSelection, Selection,
                                  parse_selection)
from logfs.core.selection import parse_time as _parse_selection_time

__all__ = ["BadRequest", "ByteRange", "LogQuery", "parse_byte_range", "parse_log_query",
           "parse_time"]

MAX_QUERY_PARAMS = 16
_INT = re.compile(r"^\d{1,19}$")
EXPORTER_KEYS = ("follow", "reset")
KNOWN_KEYS = SELECTOR_KEYS + EXPORTER_KEYS


class BadRequest(ValueError):
    """The request is malformed; the message says how (sent to the client with 400)."""


@dataclass(frozen=True)
class LogQuery:
    """What part of a log a client asked for: a selection (at most one start) and
    whether to follow."""

    selection: Selection = Selection()
    follow: bool = False
    reset: str = "earliest"

    @property
    def offset(self) -> int | None:
        return self.selection.offset

    @property
    def record(self) -> int | None:
        return self.selection.record

    @property
    def since_ms(self) -> int | None:
        return self.selection.since_ms

    @property
    def last(self) -> int | None:
        return self.selection.last

    @property
    def group(self) -> str | None:
        return self.selection.group

    @property
    def until_ms(self) -> int | None:
        return self.selection.until_ms

    @property
    def has_start(self) -> bool:
        return self.selection.has_start


@dataclass(frozen=True)
class ByteRange:
    """``Range: bytes=first-last`` (last None: to the end) or ``bytes=-suffix``."""

    first: int | None
    last: int | None
    suffix: int | None = None


def parse_time(text: str, now_ms: int) -> int:
    """A time as epoch milliseconds (logfs.core.selection.parse_time). Raises
    BadRequest."""
    try:
        return _parse_selection_time(text, now_ms)
    except BadSelection as exc:
        raise BadRequest(str(exc)) from None


def _split_query(query: bytes) -> list[tuple[str, str]]:
    pairs = []
    if not query:
        return pairs
    parts = query.split(b"&")
    if len(parts) > MAX_QUERY_PARAMS:
        raise BadRequest(f"too many query parameters (at most {MAX_QUERY_PARAMS})")
    for part in parts:
        if not part:
            continue
        key, _, value = part.partition(b"=")
        try:
            k = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8")
            v = unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("query parameters must be UTF-8") from None
        if "\0" in k or "\0" in v:
            raise BadRequest("NUL in query string")
        pairs.append((k, v))
    return pairs


def parse_log_query(query: bytes, now_ms: int) -> LogQuery:
    """Parse the raw query string (after ``?``). Raises BadRequest for unknown or
    repeated parameters, bad values, or more than one start selector."""
    if not query:
        return _NO_QUERY  # the whole log (most downloads): nothing to parse
    seen: dict[str, str] = {}
    for key, value in _split_query(query):
        if key in seen:
            raise BadRequest(f"parameter {key!r} given twice")
        seen[key] = value
    unknown = set(seen) - set(KNOWN_KEYS)
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}; known: {', '.join(KNOWN_KEYS)}")
    follow = seen.pop("follow", None)
    if follow is not None and follow not in ("", "1", "0", "true", "false", "yes", "no"):
        raise BadRequest(f"follow={follow!r}: expected 1 or 0")
    reset = seen.pop("reset", None)
    if reset is not None:
        if reset not in RESETS:
            raise BadRequest(f"reset={reset!r}: expected {' or '.join(RESETS)}")
        if "group" not in seen:
            raise BadRequest("reset= applies to group= only")
    try:
        selection = parse_selection(list(seen.items()), now_ms)
        if selection.group is not None:
            check_group_name(selection.group)
    except (BadSelection, InvalidName) as exc:
        raise BadRequest(str(exc)) from None
    return LogQuery(selection, follow=follow in ("", "1", "true", "yes"), reset=reset or RESETS[0])


_NO_QUERY = LogQuery()


def parse_byte_range(value: bytes) -> ByteRange | None:
    """Parse a ``Range`` header value. Raises BadRequest for syntax errors. A header
    naming several ranges gives None: the exporter does not serve
    multipart/byteranges, and RFC 9110 (section 14.2) lets a server ignore Range and
    send the whole representation with 200, which is what the caller then does."""
    try:
        text = value.decode("ascii").strip()
    except UnicodeDecodeError:
        raise BadRequest("Range header is not ASCII") from None
    unit, sep, spec = text.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise BadRequest(f"unsupported Range {text!r}: only bytes=first-last")
    spec = spec.strip()
    if "," in spec:
        return None
    first, dash, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not _INT.match(first)) or (last and not _INT.match(last)):
        raise BadRequest(f"bad Range {text!r}")
    if not first:
        if not last:
            raise BadRequest(f"bad Range {text!r}")
        return ByteRange(None, None, suffix=int(last))
    a = int(first)
    b = int(last) if last else None
    if b is not None and b < a:
        raise BadRequest(f"bad Range {text!r}: last byte before first")
    return ByteRange(a, b)
