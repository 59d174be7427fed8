"""Retention: which segments a log deletes, and when its active segment rolls by age.

Kafka's rules with Kafka's names: sealed segments go oldest first while the log
without the oldest is still at least ``retention.bytes`` long, or while the oldest
one's newest data is older than ``retention.ms``; the active segment is never
deleted, and rolls once its first append is ``segment.ms`` old. Decisions only:
the log deletes the files (log.py), so these are pure functions of plain values.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import LogConfig
from .segment import Segment


def rolls_by_age(active: Segment, now_ms: int, segment_ms: int, tentative: bool) -> bool:
    """The active segment is ``segment.ms`` old and may roll (it has data, and its
    last append was not the first part of a write still to come)."""
    return active.size > 0 and not tentative and active.first_ms is not None and \
        now_ms - active.first_ms >= segment_ms


def oldest_expired(segments: Sequence[Segment], end: int, config: LogConfig, now_ms: int) -> str | None:
    """Why the oldest segment must be deleted (``"retention.bytes"`` or
    ``"retention.ms"``), or None if it stays (it is the active one, or within both
    limits). *end* is the log's end offset. May read the segment's time index."""
    return oldest_beyond(segments, end, config.retention_bytes, config.retention_ms, now_ms, "retention")


def oldest_local_expired(segments: Sequence[Segment], end: int, config: LogConfig, now_ms: int) -> str | None:
    """For a tiered log: why the oldest local segment's local copy may go
    (``local.retention.bytes`` / ``local.retention.ms``, -2 meaning the same as
    retention.*), or None. The caller checks it is in the manifest first."""
    return oldest_beyond(segments, end, config.local_bytes_limit, config.local_ms_limit, now_ms,
                         "local.retention")


def oldest_beyond(segments: Sequence[Segment], end: int, bytes_limit: int, ms_limit: int,
                  now_ms: int, name: str) -> str | None:
    """The rule of both: the log without the oldest is still at least *bytes_limit*
    long, or the oldest one's newest data is older than *ms_limit* (-1: no limit)."""
    if len(segments) < 2:
        return None
    oldest = segments[0]
    if bytes_limit >= 0 and end - oldest.base - oldest.size >= bytes_limit:
        return f"{name}.bytes"
    if ms_limit >= 0:
        ts = oldest.largest_timestamp()
        if ts is not None and now_ms - ts > ms_limit:
            return f"{name}.ms"
    return None
