"""The fast path: plain log downloads answered by a connection loop in C
(``_fastpath.c``), with no trio task, cancel scope or h11 state per connection.

Theory of operation. A new connection costs ``logfs serve`` far more than the bytes
of a short download: trio's accept, a task, cancel scopes, h11's set-up, a
scheduler trip per readable or writable socket (docs/performance.md, W6). The C
loop owns the listening socket and the connections it serves in an epoll set of
its own; :meth:`FastPath.serve` waits for that set with trio and lets the loop do
what is ready. For each request head the loop calls :meth:`FastPath.plan`, which
answers only the simplest and commonest request, and only when it is sure:

- ``GET <target> HTTP/1.1`` with a strict subset of the header syntax h11 accepts
  (:func:`parse_simple_head`): exactly one ``Host``, no ``Connection``,
  ``Content-Length``, ``Transfer-Encoding`` or ``Expect``;
- the target is a log (``/topic/log``), the token (if any) matches, and the plan is
  a fixed span (200 or 206) of segments on the local disk.

Then the plan is the same one the trio path makes (planner.py, with the same
limits and checks), the head is the bytes ``send_direct_head`` writes, and the body
is the core's file ranges, ``dup``-ed for the loop, which sends them with sendfile
(corked from CORK_MIN_BYTES, like streaming.py) and closes them. Anything else
(a follow stream, HEAD, a listing, /metrics, an error of any kind, a remote
segment, a head the strict parser does not take) returns None: the loop hands the
socket and every byte it read to :meth:`FastPath.handoff`, and the trio path
(connection.py) answers it from the start, h11 and all. Nothing is answered twice
and nothing differs: the fast path answers a subset of requests exactly as the trio
path would.

``LOGFS_EXPORTER_FASTPATH=0`` in the environment turns it off (every connection
takes the trio path): the benchmark's A/B, and a way out should it misbehave.
"""

from __future__ import annotations

import logging
import os
import re
import socket as _stdsocket
import time
from typing import Callable

import trio

from logfs.core import StorageError

from ._fastpath import DONE_FILE_ERROR, DONE_OK, DONE_TIMEOUT, Loop
from .connection import Exchange, SharedState, access_line
from .planner import now_ms, open_reachable_log, plan_log_read
from .protocol import HttpError, check_auth, check_request_limits, direct_head, parse_target
from .streaming import CORK_MIN_BYTES

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("logfs.exporter.access")

__all__ = ["FastPath", "fast_path_enabled", "parse_simple_head"]

_REQUEST_LINE = re.compile(rb"GET (/[\x21-\x7e]*) HTTP/1\.1\r\n")
# a token, ":", optional whitespace, a value of visible characters (obs-text too)
# separated by spaces or tabs, optional whitespace; possessive, so linear
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]++):[ \t]*+"
                    rb"((?:[\x21-\x7e\x80-\xff]++(?:[ \t]++[\x21-\x7e\x80-\xff]++)*+)?)[ \t]*+\r\n")
# headers whose meaning the trio path (h11) must decide
_NOT_SIMPLE = frozenset({b"connection", b"content-length", b"transfer-encoding", b"expect"})


def fast_path_enabled() -> bool:
    """False when ``LOGFS_EXPORTER_FASTPATH=0`` (every connection takes the trio path)."""
    return os.environ.get("LOGFS_EXPORTER_FASTPATH", "1") != "0"


def parse_simple_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """(target, headers) of a head the fast path may answer: ``GET target HTTP/1.1``,
    fields in a strict subset of what h11 accepts (names lowercased, values without
    surrounding whitespace, as h11 gives them), exactly one Host, none of Connection,
    Content-Length, Transfer-Encoding, Expect. None for anything else (h11 decides).
    *head* ends with its blank line."""
    m = _REQUEST_LINE.match(head)
    if m is None:
        return None
    headers = []
    pos = m.end()
    hosts = 0
    end = len(head) - 2
    while pos < end:
        f = _FIELD.match(head, pos)
        if f is None:
            return None
        name = f[1].lower()
        if name in _NOT_SIMPLE:
            return None
        if name == b"host":
            hosts += 1
        headers.append((name, f[2]))
        pos = f.end()
    if pos != end or head[end:] != b"\r\n" or hosts != 1:
        return None
    return m[1], headers


class FastPath:
    """The C loop over *listener*, with the callbacks that plan its responses and
    take over what it hands off. *handoff* starts the trio path on a socket:
    ``handoff(sock, client, received, timed_out)``."""

    def __init__(self, server: SharedState, listener: trio.socket.SocketType,
                 handoff: Callable[[trio.socket.SocketType, str, bytes, bool], None]) -> None:
        self.server = server
        self.limits = server.limits
        self.metrics = server.metrics
        self._handoff = handoff
        self.loop = Loop(listener.fileno(), self.plan, self.done, self.handoff,
                         self.limits.request_timeout_s, self.limits.send_timeout_s,
                         self.limits.max_header_bytes, self.limits.max_connections)

    # -- the loop's callbacks (called from run(), on the trio thread) ------------------
    def plan(self, head: bytes, client: str):
        """The response to *head* as (head bytes, ((fd, position, length), ...), cork,
        exchange), or None: the trio path answers it. Never raises for a request."""
        parsed = parse_simple_head(head)
        if parsed is None:
            return None
        target, headers = parsed
        server = self.server
        try:
            check_request_limits(b"GET", target, b"1.1", headers, self.limits)
            check_auth(headers, server.token)
            route = parse_target(target)
            if route.kind != "log":
                return None
            log = open_reachable_log(server.store, route.topic, route.log)
            range_header = None
            for name, value in headers:
                if name == b"range":
                    range_header = value
            if range_header is None and log.has_remote_segments:
                return None  # a seek may need remote index files: the trio path fetches them
            plan = plan_log_read(log, route.query, range_header, now_ms(), server.groups)
            if plan.end is None or log.remote_missing(plan.start, plan.end):
                return None
            ranges = log.read_range(plan.start, plan.end)
        except (HttpError, StorageError, OSError):
            return None  # the trio path answers it, and logs what needs logging
        if sum(r.length for r in ranges) != plan.end - plan.start:
            return None  # the log ends early: the trio path reports it
        out = direct_head(plan.status, plan.headers)
        if out is None:
            return None
        slices = []
        try:
            for r in ranges:
                slices.append((os.dup(r.fd), r.position, r.length))
        except OSError:
            for fd, _, _ in slices:
                os.close(fd)
            return None
        ex = Exchange(client, method="GET", path=target.decode("latin-1"), status=plan.status,
                      started=time.monotonic())
        return out, tuple(slices), plan.end - plan.start >= CORK_MIN_BYTES, ex

    def done(self, ex: Exchange, sent: int, how: int) -> None:
        """A planned response ended: *sent* body bytes, *how* one of _fastpath.c's DONE_*."""
        ex.bytes = sent
        if how == DONE_OK:
            ex.complete = True
        elif how == DONE_TIMEOUT:
            logger.info("%s: accepted no bytes for %.1f s, closing", ex.client, self.limits.send_timeout_s)
        elif how == DONE_FILE_ERROR:
            logger.warning("%s %s from %s: response cut short: the segment file failed or ended early",
                           ex.method, ex.path, ex.client)
        self.metrics.count_request("GET", ex.status)
        self.metrics.fast_path_responses += 1
        access_logger.info(access_line(ex, time.time(), time.monotonic()))

    def handoff(self, fd: int, received: bytes, client: str, timed_out: bool) -> None:
        """The loop gives up the socket *fd*: the trio path takes it over."""
        try:
            sock = trio.socket.from_stdlib_socket(_stdsocket.socket(fileno=fd))
        except OSError:
            os.close(fd)
            return
        self._handoff(sock, client, received, timed_out)

    # -- running -------------------------------------------------------------------
    def open_connections(self) -> int:
        """Connections the loop holds now."""
        return self.loop.open

    def stats(self) -> dict:
        """The loop's counters (accepted, sendfile_calls, would_block, head_bytes,
        body_bytes, timeouts, open)."""
        return self.loop.stats()

    async def serve(self) -> None:
        """Run the loop until cancelled; closes its connections on the way out."""
        loop = self.loop
        epfd = loop.fileno()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire_loop)
                while True:
                    await trio.lowlevel.wait_readable(epfd)
                    if loop.run():
                        logger.error("accept failed: out of descriptors or memory; pausing")
                        await trio.sleep(0.1)
        finally:
            loop.close()

    async def _expire_loop(self) -> None:
        """Call the loop's deadlines in time: sleep until the earliest, at most a
        quarter of the shortest timeout (a connection accepted meanwhile has a later one)."""
        loop = self.loop
        cap = min(1.0, self.limits.request_timeout_s / 4, self.limits.send_timeout_s / 4)
        while True:
            deadline = loop.next_deadline()
            now = time.monotonic()
            wait = cap if deadline is None else min(cap, max(0.0, deadline - now))
            await trio.sleep(wait + 0.001)
            loop.expire()
