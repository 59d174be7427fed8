"""Sending a log's bytes: a fixed span (Content-Length) or a follow stream
(chunked), each piece a :class:`FileSlice` sent with sendfile by the connection.

The core's descriptors are valid only until the next call into the store, and other
tasks call into the store while this one waits for its socket, so every slice is
``os.dup``-ed before the first await and closed once sent.

A follower loops: publish what the log holds past its position, then wait for its
log directory to change (inotify.py), at most ``FOLLOW_FALLBACK_S``; a second task
watches the socket so a client that closes or resets ends the stream at once.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import h11
import trio

from logfs.core import Log, NotFound, OffsetOutOfRange, StorageError

from .planner import LogPlan, now_ms, until_position
from .protocol import REASONS, FileSlice

if TYPE_CHECKING:
    from .connection import HttpConnection

logger = logging.getLogger(__name__)

__all__ = ["ClientGone", "send_log", "send_span", "follow"]

FOLLOW_FALLBACK_S = 1.0      # a follower re-checks at least this often without events
CHECKPOINT_LAG_S = 0.005     # re-check delay when the file is ahead of the published end


class ClientGone(Exception):
    """The client closed, reset, or stopped reading for too long."""


async def send_span(conn: "HttpConnection", plan: LogPlan, a: int, b: int) -> int:
    """Send the log's bytes [a, b) as body data; returns where it stopped (b, or
    less if the log ends earlier)."""
    log = plan.log
    while a < b:
        ranges = log.read_range(a, b)
        if not ranges:
            break
        slices = [FileSlice(os.dup(r.fd), r.position, r.length, r.log_offset) for r in ranges]
        try:
            for piece in slices:
                await conn.send_event(h11.Data(data=piece))
                a += piece.length
        finally:
            for piece in slices:
                os.close(piece.fd)
    return a


async def send_log(conn: "HttpConnection", plan: LogPlan, head_only: bool) -> None:
    await conn.send_event(h11.Response(status_code=plan.status, headers=plan.headers,
                                       reason=REASONS.get(plan.status, b"")))
    if head_only:
        await conn.send_event(h11.EndOfMessage())
        return
    if plan.end is not None:
        try:
            reached = await send_span(conn, plan, plan.start, plan.end)
        except (OffsetOutOfRange, StorageError) as exc:
            logger.warning("%s: body of %s/%s cut short: %s", conn.client, plan.log.topic,
                           plan.log.name, exc)
            raise ClientGone("body cut short") from None
        if reached != plan.end:
            logger.warning("%s: %s/%s ended at %d before the planned %d", conn.client,
                           plan.log.topic, plan.log.name, reached, plan.end)
            raise ClientGone("body cut short")
        await conn.send_event(h11.EndOfMessage())
        return
    await follow(conn, plan)


async def follow(conn: "HttpConnection", plan: LogPlan) -> None:
    """Stream the log from plan.start as it grows, until the client leaves, the
    log is deleted, or (with until) the clock passes until."""
    log = plan.log
    watcher = conn.server.watcher
    watched = watcher.subscribe(log.directory)
    conn.metrics.streams_open += 1
    conn.metrics.inotify_watches = watcher.watch_count
    pos = plan.start
    finished = behind = False
    lag_seen, lag_delay = -1, CHECKPOINT_LAG_S
    try:
        async with _client_gone_unwrapped(), trio.open_nursery() as nursery:
            nursery.start_soon(conn.watch_for_close, nursery.cancel_scope)
            generation = watched.generation
            while True:
                try:
                    end = log.end_offset
                except NotFound:  # deleted or renamed by the writer: the stream ends
                    break
                until_passed = plan.until_ms is not None and now_ms() > plan.until_ms
                if until_passed:
                    end = min(end, max(pos, until_position(log, plan.until_ms)))
                if end > pos:
                    try:
                        pos = await send_span(conn, plan, pos, end)
                    except OffsetOutOfRange:
                        # end without the final chunk: the client must see an error,
                        # not a complete log
                        logger.warning("%s: follower of %s/%s fell behind retention at %d",
                                       conn.client, log.topic, log.name, pos)
                        behind = True
                        break
                if until_passed or watched.gone or not os.path.isdir(log.directory):
                    break
                delay = FOLLOW_FALLBACK_S
                if plan.until_ms is not None:
                    delay = min(delay, max(0.001, (plan.until_ms - now_ms()) / 1000 + 0.001))
                if _file_ahead(log, pos):
                    # the checkpoint will follow in a moment; back off if it does not
                    # (a writer that died between its write and its checkpoint)
                    lag_delay = CHECKPOINT_LAG_S if end > lag_seen else min(delay, lag_delay * 2)
                    lag_seen = end
                    delay = lag_delay
                generation = await watched.wait_change(generation, delay)
            finished = True
            nursery.cancel_scope.cancel()
    finally:
        watcher.unsubscribe(watched)
        conn.metrics.streams_open -= 1
        conn.metrics.inotify_watches = watcher.watch_count
    if conn.gone or not finished or behind:
        raise ClientGone("follower left or fell behind")
    await conn.send_event(h11.EndOfMessage())


@asynccontextmanager
async def _client_gone_unwrapped():
    """A nursery wraps what its tasks raise in an ExceptionGroup; a ClientGone
    alone comes out as itself."""
    try:
        yield
    except BaseExceptionGroup as group:
        _gone, rest = group.split(ClientGone)
        if rest is None:
            raise ClientGone("client gone") from None
        raise


def _file_ahead(log: Log, pos: int) -> bool:
    """True when the active segment file holds bytes the checkpoint does not
    publish yet (the writer is between its write and its checkpoint update)."""
    try:
        segments = log.segments()
        if not segments:
            return False
        last = segments[-1]
        return last.base + last.stat_size() > pos
    except (OSError, StorageError):
        return False
