"""Where a reader starts and stops in a log: the selectors every consumer path shares
(the exporter's query string, views in the mount, ``logfs consume``).

A :class:`Selection` holds at most one *start* (``offset``, ``record``, ``since``,
``last`` or ``group``) and an optional *end* (``until``). Parsing is pure (strings
and a ``now_ms`` in, values out); :func:`resolve_start` and :func:`resolve_end` turn
a selection into byte offsets of one log through its indexes (a binary search and a
short scan each, docs/format.md).

Times (``since``, ``until``) are ISO 8601 (``2026-12-01T09:00``, ``...Z``,
``...+01:00``; no zone means UTC), a duration before now (``500ms``, ``90s``,
``10m``, ``2h``, ``7d``, ``1w``) or integer milliseconds since the epoch.

View names (docs/spec.md, section 10): ``LOG@key=value[,key=value...]`` where every
key is one of :data:`SELECTOR_KEYS`; the first ``@`` after which that grammar holds
ends the log's name, so ``a@b@since=1h`` is a view of the log ``a@b`` and ``x@y=1``
is an ordinary log name.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .errors import OffsetOutOfRange, StorageError
from .naming import SELECTOR_KEYS, START_KEYS, split_view_name

if TYPE_CHECKING:
    from .groups import GroupStore
    from .log import Log

__all__ = ["BadSelection", "RESETS", "SELECTOR_KEYS", "Selection", "Start", "parse_duration_ms",
           "parse_selection", "parse_time", "resolve_end", "resolve_start", "split_view_name"]

RESETS = ("earliest", "latest")
_DURATION = re.compile(r"^(\d{1,12})(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_INT = re.compile(r"^\d{1,19}$")


class BadSelection(StorageError):
    """A selector that does not parse or does not apply (a bad time, two starts)."""

    errno = errno.EINVAL


@dataclass(frozen=True)
class Selection:
    """Where to start (at most one of the first five) and where to stop."""

    offset: int | None = None
    record: int | None = None
    since_ms: int | None = None
    last: int | None = None
    group: str | None = None
    until_ms: int | None = None

    @property
    def has_start(self) -> bool:
        return any(v is not None for v in (self.offset, self.record, self.since_ms, self.last, self.group))


@dataclass(frozen=True)
class Start:
    """A resolved start: the byte offset, and what a consumer should be told (a
    group position that retention removed, reset to the start) or None."""

    offset: int
    note: str | None = None


def parse_duration_ms(text: str) -> int | None:
    """``10m`` -> 600000; None if *text* is not a duration."""
    m = _DURATION.match(text)
    return int(m.group(1)) * _UNIT_MS[m.group(2)] if m else None


def parse_time(text: str, now_ms: int) -> int:
    """A time as epoch milliseconds. Raises BadSelection."""
    text = text.strip()
    if not text:
        raise BadSelection("empty time")
    ago = parse_duration_ms(text)
    if ago is not None:
        return now_ms - ago
    if _INT.match(text):
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadSelection(f"bad time {text!r}: use ISO 8601 (2026-11-25T10:00:00Z), "
                           "a duration (10m, 2h, 7d) or epoch milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _count(key: str, value: str) -> int:
    if not _INT.match(value):
        raise BadSelection(f"{key}={value!r}: expected a non-negative integer")
    return int(value)


def parse_selection(pairs: list[tuple[str, str]], now_ms: int) -> Selection:
    """A selection from (key, value) pairs (a query string's, a view's). Raises
    BadSelection for an unknown or repeated key, a bad value, or two starts."""
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key not in SELECTOR_KEYS:
            raise BadSelection(f"unknown selector {key!r}; known: {', '.join(SELECTOR_KEYS)}")
        if key in seen:
            raise BadSelection(f"selector {key!r} given twice")
        seen[key] = value
    starts = [k for k in START_KEYS if k in seen]
    if len(starts) > 1:
        raise BadSelection(f"choose one of {', '.join(START_KEYS)} (got {', '.join(starts)})")
    group = seen.get("group")
    if group is not None and not group:
        raise BadSelection("group= needs a group id")
    return Selection(
        offset=_count("offset", seen["offset"]) if "offset" in seen else None,
        record=_count("record", seen["record"]) if "record" in seen else None,
        since_ms=parse_time(seen["since"], now_ms) if "since" in seen else None,
        last=_count("last", seen["last"]) if "last" in seen else None,
        group=group,
        until_ms=parse_time(seen["until"], now_ms) if "until" in seen else None,
    )


def parse_view_spec(spec: str, now_ms: int) -> Selection:
    """The selection of a view spec (``since=1h,until=...``). Raises BadSelection."""
    pairs = []
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            raise BadSelection(f"{part!r}: expected key=value")
        pairs.append((key, value))
    return parse_selection(pairs, now_ms)


def last_records_start(log: "Log", n: int) -> int:
    """Start of the last *n* records (like ``tail -n``; an incomplete last line
    counts as one)."""
    end = log.end_offset
    records = log.records
    tail = log.record_position(records)
    lines = records + (1 if tail < end else 0)
    first = max(log.start_record, lines - n)
    return log.record_position(first) if first < lines else end


def resolve_start(log: "Log", sel: Selection, groups: "GroupStore | None" = None,
                  reset: str = "earliest") -> Start:
    """The byte offset where a reader of *log* with selection *sel* starts.

    ``group``: the group's committed position; none yet, or one retention removed (or
    past the end: the log was recreated), resolves by *reset* (``earliest``: the
    log's first record; ``latest``: after its last complete record) with a note.
    Raises OffsetOutOfRange (an offset or record below the start or an offset past
    the end), BadSelection (a group without a group store)."""
    start, end = log.start_offset, log.end_offset
    if sel.offset is not None:
        if sel.offset < start:
            raise OffsetOutOfRange(f"offset {sel.offset} of {log.topic}/{log.name} is below the log "
                                   f"start {start} (removed by retention)")
        if sel.offset > end:
            raise OffsetOutOfRange(f"offset {sel.offset} of {log.topic}/{log.name} is past the end {end}")
        return Start(sel.offset)
    if sel.record is not None:
        return Start(log.record_position(sel.record))
    if sel.since_ms is not None:
        return Start(max(start, log.time_position(sel.since_ms)))
    if sel.last is not None:
        return Start(last_records_start(log, sel.last))
    if sel.group is not None:
        if groups is None:
            raise BadSelection("group= needs the data directory's consumer groups")
        return _group_start(log, groups, sel.group, reset)
    return Start(start)


def _reset_start(log: "Log", reset: str) -> int:
    if reset not in RESETS:
        raise BadSelection(f"reset {reset!r}: use one of {', '.join(RESETS)}")
    if reset == "latest":
        return log.record_position(log.records)
    return log.record_position(log.start_record) if log.start_record <= log.records else log.start_offset


def _group_start(log: "Log", groups: "GroupStore", name: str, reset: str) -> Start:
    pos = groups.group(name).position(log.topic, log.name)
    where = f"group {name!r} on {log.topic}/{log.name}"
    if pos is None:
        return Start(_reset_start(log, reset), f"{where}: no committed position, starting at {reset}")
    if pos.offset < log.start_offset:
        return Start(_reset_start(log, reset),
                     f"{where}: committed record {pos.record} (offset {pos.offset}) was removed by "
                     f"retention (the log starts at {log.start_offset}); starting at {reset}")
    if pos.offset > log.end_offset:
        return Start(_reset_start(log, reset),
                     f"{where}: committed offset {pos.offset} is past the end {log.end_offset} "
                     f"(was the log recreated?); starting at {reset}")
    return Start(pos.offset)


def resolve_end(log: "Log", sel: Selection) -> int | None:
    """Where a reader stops (the end of the records appended at or before
    ``until``), or None: it follows the log."""
    if sel.until_ms is None:
        return None
    return log.time_end_position(sel.until_ms)
