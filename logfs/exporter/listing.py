"""What the exporter lists: ``GET /`` (every topic and log), ``GET /<topic>``, and
the per-log gauges of ``GET /metrics``. Synchronous, over the core's reader view.

Only real directories inside DATA are listed (no symlinks: planner.is_real_dir). A
listing never fails because of one log: a log that went away meanwhile is left out
silently, one that cannot be read is left out with one warning line (the metrics
gauges leave it out silently: a scrape every few seconds would repeat the line).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

from logfs.core import Log, LogStore

from .errors import storage_errors_as_http
from .planner import is_real_dir, open_reachable_log
from .protocol import HttpError

logger = logging.getLogger(__name__)

__all__ = ["describe_all", "describe_log", "describe_topic", "log_gauges", "topic_logs"]

T = TypeVar("T")


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe_log(log: Log) -> dict[str, Any]:
    """The figures a client needs to read a log (GET / and GET /<topic>)."""
    last = log.last_append_ms
    return {
        "topic": log.topic,
        "log": log.name,
        "start_offset": log.start_offset,
        "end_offset": log.end_offset,
        "records": log.records,
        "start_record": log.start_record,
        "segments": log.segment_count,
        "last_append_ms": last,
        "last_append": _iso(last),
    }


def topic_logs(store: LogStore, topic: str) -> list[str]:
    """The logs of *topic* that are real directories. HttpError(404) if the topic is
    not a real directory in DATA; the core's errors otherwise."""
    tdir = os.path.join(store.data_dir, topic)
    if not is_real_dir(tdir):
        raise HttpError(404, f"no such topic {topic}")
    return [n for n in store.logs(topic) if is_real_dir(os.path.join(tdir, n))]


def _or_none(what: str, quiet: bool, fn: Callable[..., T], *args: Any) -> T | None:
    """``fn(*args)``, or None when it is refused: 404 (gone meanwhile) silently, any
    other refusal with one warning line naming *what* unless *quiet*."""
    try:
        with storage_errors_as_http():
            return fn(*args)
    except HttpError as err:
        if err.status != 404 and not quiet:
            logger.warning("listing: left out %s: %s", what, err.message)
        return None


def _described(store: LogStore, topic: str, name: str) -> dict[str, Any]:
    return describe_log(open_reachable_log(store, topic, name))


def describe_topic(store: LogStore, topic: str) -> list[dict[str, Any]]:
    """``GET /<topic>``: its readable logs. HttpError(404) for no such topic; the
    core's errors if the topic cannot be listed at all."""
    logs = []
    for name in topic_logs(store, topic):
        d = _or_none(f"{topic}/{name}", False, _described, store, topic, name)
        if d is not None:
            logs.append(d)
    return logs


def describe_all(store: LogStore) -> list[dict[str, Any]]:
    """``GET /``: every reachable topic and its readable logs."""
    out = []
    for topic in store.topics():
        names = _or_none(f"topic {topic}", False, topic_logs, store, topic)
        if names is None:
            continue
        logs = []
        for name in names:
            d = _or_none(f"{topic}/{name}", False, _described, store, topic, name)
            if d is not None:
                logs.append(d)
        out.append({"topic": topic, "logs": logs})
    return out


def _gauges(store: LogStore, topic: str, name: str) -> dict[str, Any]:
    log = open_reachable_log(store, topic, name)
    return {"topic": topic, "log": name, "start_offset": log.start_offset,
            "end_offset": log.end_offset, "segments": log.segment_count, **log.tier_figures()}


def log_gauges(store: LogStore) -> list[dict[str, Any]]:
    """Per-log figures for ``/metrics``; unreadable logs and topics left out silently."""
    out = []
    for topic in store.topics():
        for name in _or_none(f"topic {topic}", True, topic_logs, store, topic) or ():
            g = _or_none(f"{topic}/{name}", True, _gauges, store, topic, name)
            if g is not None:
                out.append(g)
    return out
