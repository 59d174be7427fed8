"""Where a consumer starts reading a log, as a record number and the byte offset
where that record begins.

The words are those of Kafka's console consumer and ``kafka-consumer-groups
--reset-offsets``: ``earliest`` (the first retained record), ``latest`` (after the
last complete record: only what comes next), a TIME (the first record appended at
or after it, through the time index: logfs/core/selection.py) and ``record=N``. A
consumer group's committed position comes first when the group has one; a position
retention removed, or one past the end (the log was recreated), resolves by the
*reset* policy (Kafka's ``auto.offset.reset``), with a note for the person.

Only whole records are ever read, so a start is always a record boundary. When the
record to start at is not complete yet (``record=N`` past the end, or a log whose
first retained bytes belong to a record begun before them and which has no newline
since), the offset is None: the consumer resolves it once the record exists.

Every function reads the log's indexes (binary searches and a scan of at most an
index interval) and blocks briefly on the disk; call them inside ``log.pinned()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from logfs.core import GroupStore, Log
from logfs.core.selection import (RESETS, BadSelection, Selection, parse_time,
                                  resolve_start)

__all__ = ["FROM_WORDS", "FromSpec", "StartPoint", "at", "earliest", "latest", "parse_from",
           "record_at", "start_of"]

FROM_WORDS = ("earliest", "latest")


@dataclass(frozen=True)
class FromSpec:
    """A parsed ``--from`` / ``--to``: earliest, latest, a time or a record."""

    kind: str                 # "earliest" | "latest" | "time" | "record"
    value: int | None = None  # epoch ms for "time", the record for "record"

    def __str__(self) -> str:
        if self.kind == "time":
            return f"time {self.value}"
        if self.kind == "record":
            return f"record={self.value}"
        return self.kind


@dataclass(frozen=True)
class StartPoint:
    """A start: record *record*, beginning at byte *offset* (None: not complete yet),
    and a note to show the person (a reset, and why) or None."""

    record: int
    offset: int | None
    note: str | None = None


def parse_from(text: str, now_ms: int) -> FromSpec:
    """``earliest``, ``latest``, ``record=N`` or a TIME (ISO 8601, a duration before
    now, epoch ms). Raises BadSelection."""
    text = text.strip()
    if text in FROM_WORDS:
        return FromSpec(text)
    if text.startswith("record="):
        n = text[len("record="):]
        if not n.isdigit() or len(n) > 19:
            raise BadSelection(f"{text!r}: record= takes a record number (0, 1, ...)")
        return FromSpec("record", int(n))
    try:
        return FromSpec("time", parse_time(text, now_ms))
    except BadSelection:
        raise BadSelection(f"{text!r}: use earliest, latest, record=N or a time (ISO 8601 like "
                           "2026-12-01T09:00:00Z, a duration before now like 10m or 2h, or epoch "
                           "milliseconds)") from None


def earliest(log: Log) -> StartPoint:
    """The first whole record retention left."""
    first = log.start_record
    if first > log.records:  # the bytes after the start end no record yet
        return StartPoint(first, None)
    return StartPoint(first, log.record_position(first))


def latest(log: Log) -> StartPoint:
    """Just after the last complete record (an incomplete last line is read once its
    newline comes)."""
    records = log.records
    if records < log.start_record:
        return StartPoint(log.start_record, None)
    return StartPoint(records, log.record_position(records))


def _reset(log: Log, reset: str) -> StartPoint:
    if reset not in RESETS:
        raise BadSelection(f"reset {reset!r}: use one of {', '.join(RESETS)}")
    return earliest(log) if reset == "earliest" else latest(log)


def record_at(log: Log, offset: int) -> int:
    """The number of the record that starts at byte *offset* (a record boundary at
    or after the first whole record): the core's offset-to-record lookup."""
    return log.record_at(offset)


def at(log: Log, spec: FromSpec, reset: str) -> StartPoint:
    """Where ``--from``/``--to`` *spec* starts in *log*; a record retention removed
    resolves by *reset*, with a note."""
    if spec.kind == "earliest":
        return earliest(log)
    if spec.kind == "latest":
        return latest(log)
    where = f"{log.topic}/{log.name}"
    if spec.kind == "record":
        n = spec.value or 0
        if n < log.start_record:
            point = _reset(log, reset)
            return StartPoint(point.record, point.offset,
                              f"{where}: record {n} was removed by retention (the first retained "
                              f"record is {log.start_record}); starting at {reset}")
        if n > log.records:
            return StartPoint(n, None)  # read once it exists
        return StartPoint(n, log.record_position(n))
    offset = resolve_start(log, Selection(since_ms=spec.value)).offset
    first = earliest(log)
    if first.offset is None or offset <= first.offset:
        return first
    return StartPoint(record_at(log, offset), offset)


def start_of(log: Log, spec: FromSpec, reset: str, groups: GroupStore | None,
             group: str | None) -> StartPoint:
    """Where a consumer starts in *log*: *group*'s committed position when it has one
    (removed by retention or past the end: by *reset*, with a note), else *spec*.
    Raises StorageError (an unreadable group file), BadSelection."""
    if group is None or groups is None:
        return at(log, spec, reset)
    pos = groups.group(group).position(log.topic, log.name)
    if pos is None:
        return at(log, spec, reset)
    # the core's judgement of a position: kept, or resolved by reset with a note
    start = resolve_start(log, Selection(group=group), groups, reset)
    if start.note is None:
        return StartPoint(pos.record, pos.offset)
    point = _reset(log, reset)
    return StartPoint(point.record, point.offset, start.note)
