"""Sending a log's bytes: a fixed span (Content-Length) or a follow stream
(chunked), each piece a :class:`FileSlice` sent with sendfile by the connection.

Streaming talks to the connection only through :class:`BodySink`, a small
``typing.Protocol`` (h11 events out, TCP_CORK, the socket's close), so this module
imports nothing of connection.py.

The core's descriptors are valid only until the next call into the store, and other
tasks call into the store while this one waits for its socket, so every slice is
``os.dup``-ed before the first await and closed once sent.

A follower loops: send what the log holds past its position, then wait until the
writer publishes a new end (its checkpoint write, seen through inotify: logfs/watch.py)
or the log's directory changes, at most ``FOLLOW_FALLBACK_S``; a second task watches
the socket so a client that closes or resets ends the stream at once. The stream
ends normally (the final chunk) when the log is deleted or renamed, or once the
clock passes ``until``.

Storage errors are not caught here: they reach the connection's error boundary,
which closes a response already under way without its final chunk (errors.py). A
follower that falls behind retention is one of them (OffsetOutOfRange): the client
must see an error, not a complete log.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import AsyncIterator, Protocol

import h11
import trio

from logfs.core import NotFound, StorageError
from logfs.core.naming import CHECKPOINT_FILE
from logfs.tier.task import fetch_remote
from logfs.watch import DirectoryWatcher

from .metrics import ExporterMetrics
from .planner import LogPlan, now_ms, until_position
from .protocol import REASONS, FileSlice

__all__ = ["BodySink", "ClientGone", "FOLLOW_FALLBACK_S", "follow", "send_log", "send_span"]

FOLLOW_FALLBACK_S = 1.0      # a follower re-checks at least this often without events
CORK_MIN_BYTES = 1 << 20     # fixed bodies this long or longer go out corked


class ClientGone(Exception):
    """The client closed, reset, or stopped reading for too long."""


class BodySink(Protocol):
    """What streaming needs of a connection (connection.HttpConnection is one)."""

    gone: bool                  # the client closed or reset
    metrics: ExporterMetrics

    async def send_event(self, event: h11.Event) -> None:
        """Send one h11 event; FileSlice data goes out with sendfile. Raises ClientGone."""

    async def send_direct_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """Send a fixed-length response's head without h11, if the request allows it
        (False: nothing sent, use send_event). Raises ClientGone."""

    async def send_file(self, piece: FileSlice) -> None:
        """sendfile one slice as (direct) body bytes. Raises ClientGone."""

    def end_direct_response(self) -> None:
        """The direct response is complete."""

    def set_cork(self, on: bool) -> None:
        """TCP_CORK on (hold partial segments) or off (send what is held, now)."""

    def spawn(self, fn, *args) -> None:
        """Run ``fn(*args)`` (async) in the background, beyond this request (read-ahead)."""

    async def watch_for_close(self, cancel_scope: trio.CancelScope) -> None:
        """Return (after cancelling *cancel_scope*) once the client closes or resets."""


async def send_span(conn: BodySink, plan: LogPlan, a: int, b: int, direct: bool = False) -> int:
    """Send the log's bytes [a, b) as body data (*direct*: straight to the socket,
    after a head sent without h11); returns where it stopped (b, or
    less if the log ends earlier). Raises ClientGone and the core's errors. Bytes of
    remote segments go a chunk at a time: the chunk is fetched off the trio thread
    (the first byte waits for one GET), and the next one is fetched in the background
    meanwhile."""
    log = plan.log
    while a < b:
        stop = b
        if log.remote_missing(a, b):
            stop = min(b, log.remote_chunk_end(a))
            await fetch_remote(log, a, stop, conn.spawn)
        ranges = log.read_range(a, stop)
        if not ranges:
            break
        slices = [FileSlice(os.dup(r.fd), r.position, r.length, r.log_offset) for r in ranges]
        try:
            for piece in slices:
                if direct:
                    await conn.send_file(piece)
                else:
                    await conn.send_event(h11.Data(data=piece))
                a += piece.length
        finally:
            for piece in slices:
                os.close(piece.fd)
    return a


async def send_log(conn: BodySink, plan: LogPlan, head_only: bool, watcher: DirectoryWatcher) -> None:
    """The response to a log GET or HEAD. The socket is corked (TCP_CORK, nginx's
    ``tcp_nopush``) while the head and a fixed body of CORK_MIN_BYTES or more go out,
    so the kernel sends full segments only (measured: about a fifth less CPU per GiB
    than TCP_NODELAY alone), and uncorked at the end of the body and after each piece
    of a follow stream, so nothing waits in the socket. A shorter body goes without
    (the uncork is a system call that sends the segment; for a short body that was a
    sixth of the request's CPU). The head of a fixed body is written directly, not
    through h11, when the request allows it (connection.py: ``send_direct_head``).
    Raises ClientGone and the core's errors."""
    cork = not head_only and (plan.end is None or plan.end - plan.start >= CORK_MIN_BYTES)
    if cork:
        conn.set_cork(True)
    try:
        # a fixed body's head goes without h11 when the request allows (connection.py)
        direct = not head_only and plan.end is not None and \
            await conn.send_direct_head(plan.status, plan.headers)
        if not direct:
            await conn.send_event(h11.Response(status_code=plan.status, headers=plan.headers,
                                               reason=REASONS.get(plan.status, b"")))
        if head_only:
            await conn.send_event(h11.EndOfMessage())
            return
        if plan.end is None:
            await follow(conn, plan, watcher)
            return
        reached = await send_span(conn, plan, plan.start, plan.end, direct)
        if reached != plan.end:
            raise StorageError(f"{plan.log.topic}/{plan.log.name} ended at {reached}, before "
                               f"the planned {plan.end}")
        if direct:
            conn.end_direct_response()
        else:
            await conn.send_event(h11.EndOfMessage())
    finally:
        if cork:
            conn.set_cork(False)


async def follow(conn: BodySink, plan: LogPlan, watcher: DirectoryWatcher) -> None:
    """Stream the log from plan.start as it grows, until the client leaves, the
    log is deleted, or (with until) the clock passes until. Raises ClientGone and the
    core's errors (OffsetOutOfRange once retention deleted what it was sending)."""
    log = plan.log
    watched = watcher.subscribe(log.directory, CHECKPOINT_FILE)
    conn.metrics.streams_open += 1
    conn.metrics.inotify_watches = watcher.watch_count
    pos = plan.start
    finished = False
    try:
        async with _single_exceptions(), trio.open_nursery() as nursery:
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
                    conn.set_cork(True)
                    pos = await send_span(conn, plan, pos, end)
                if until_passed or watched.gone or not os.path.isdir(log.directory):
                    break
                delay = FOLLOW_FALLBACK_S
                if plan.until_ms is not None:
                    delay = min(delay, max(0.001, (plan.until_ms - now_ms()) / 1000 + 0.001))
                conn.set_cork(False)  # push what was sent before sleeping
                generation = await watched.wait_change(generation, delay)
            finished = True
            nursery.cancel_scope.cancel()
    finally:
        watcher.unsubscribe(watched)
        conn.metrics.streams_open -= 1
        conn.metrics.inotify_watches = watcher.watch_count
    if conn.gone or not finished:
        raise ClientGone("follower left")
    await conn.send_event(h11.EndOfMessage())


@asynccontextmanager
async def _single_exceptions() -> AsyncIterator[None]:
    """A nursery wraps what its tasks raise in an ExceptionGroup; a group of one
    exception comes out as that exception (a ClientGone, or a storage error for the
    connection's boundary), a group of ClientGones as one ClientGone."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        _gone, rest = group.split(ClientGone)
        if rest is None:
            raise ClientGone("client gone") from None
        raise
