"""Parsing what a client asks for: the query string of a log request, times and
durations, and the ``Range`` header. Pure functions on strings: no I/O, no clock
(the caller passes ``now_ms``).

Query parameters of ``GET /<topic>/<log>``:

    offset=BYTE     start at this byte offset of the log
    record=N        start at record (line) N, counted from 0 since the log began
    since=TIME      start at the first record appended at or after TIME
    last=N          start N records before the end (like ``tail -n N``)
    until=TIME      end after the last record appended at or before TIME
    follow=1        keep streaming as data arrives (like ``tail -f``)

TIME is ISO 8601 (``2026-11-25T10:00:00Z``; no zone means UTC), a duration before
now (``90s``, ``10m``, ``2h``, ``7d``, ``1w``, ``500ms``) or integer milliseconds
since the epoch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote_to_bytes

__all__ = ["BadRequest", "ByteRange", "LogQuery", "parse_byte_range", "parse_log_query",
           "parse_time"]

MAX_QUERY_PARAMS = 16
_DURATION = re.compile(r"^(\d{1,12})(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_INT = re.compile(r"^\d{1,19}$")
START_KEYS = ("offset", "record", "since", "last")


class BadRequest(ValueError):
    """The request is malformed; the message says how (sent to the client with 400)."""


@dataclass(frozen=True)
class LogQuery:
    """What part of a log a client asked for. At most one start selector is set."""

    offset: int | None = None
    record: int | None = None
    since_ms: int | None = None
    last: int | None = None
    until_ms: int | None = None
    follow: bool = False

    @property
    def has_start(self) -> bool:
        return any(v is not None for v in (self.offset, self.record, self.since_ms, self.last))


@dataclass(frozen=True)
class ByteRange:
    """``Range: bytes=first-last`` (last None: to the end) or ``bytes=-suffix``."""

    first: int | None
    last: int | None
    suffix: int | None = None


def parse_duration_ms(text: str) -> int | None:
    """``10m`` -> 600000; None if *text* is not a duration."""
    m = _DURATION.match(text)
    if not m:
        return None
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_time(text: str, now_ms: int) -> int:
    """A time as epoch milliseconds. Raises BadRequest."""
    text = text.strip()
    if not text:
        raise BadRequest("empty time")
    ago = parse_duration_ms(text)
    if ago is not None:
        return now_ms - ago
    if _INT.match(text):
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadRequest(f"bad time {text!r}: use ISO 8601 (2026-11-25T10:00:00Z), "
                         "a duration (10m, 2h, 7d) or epoch milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _parse_count(key: str, value: str) -> int:
    if not _INT.match(value):
        raise BadRequest(f"{key}={value!r}: expected a non-negative integer")
    return int(value)


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
    seen: dict[str, str] = {}
    for key, value in _split_query(query):
        if key in seen:
            raise BadRequest(f"parameter {key!r} given twice")
        seen[key] = value
    unknown = set(seen) - {"offset", "record", "since", "last", "until", "follow"}
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}; known: offset, record, "
                         "since, last, until, follow")
    starts = [k for k in START_KEYS if k in seen]
    if len(starts) > 1:
        raise BadRequest(f"choose one of offset, record, since, last (got {', '.join(starts)})")
    follow = seen.get("follow")
    if follow is not None and follow not in ("", "1", "0", "true", "false", "yes", "no"):
        raise BadRequest(f"follow={follow!r}: expected 1 or 0")
    return LogQuery(
        offset=_parse_count("offset", seen["offset"]) if "offset" in seen else None,
        record=_parse_count("record", seen["record"]) if "record" in seen else None,
        since_ms=parse_time(seen["since"], now_ms) if "since" in seen else None,
        last=_parse_count("last", seen["last"]) if "last" in seen else None,
        until_ms=parse_time(seen["until"], now_ms) if "until" in seen else None,
        follow=follow in ("", "1", "true", "yes"),
    )


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
