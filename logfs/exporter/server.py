"""The exporter's server: the accept loop over the shared state (the store's
reader view, the inotify watcher, the metrics), and :func:`serve_exporter`.

Theory of operation (the whole package): the fast path (fastpath.py) accepts each
connection and answers, in C, the plain GETs of a fixed span on the local disk; it
hands every other request, with what the client sent, to
:meth:`ExporterServer.take_over` (with ``LOGFS_EXPORTER_FASTPATH=0``,
:meth:`ExporterServer.accept_loop` accepts instead). Each socket handed over gets one
task (connection.py) that reads a request under a deadline, routes it (protocol.py),
plans the bytes over the core's reader view (planner.py) and sends them with
``os.sendfile`` (streaming.py): no segment byte enters Python memory. Followers
sleep until inotify reports a change in their log's directory (logfs/watch.py). The
storage core's exceptions are turned into HTTP answers in one place (errors.py),
around each request's dispatch.

Bounded cost per client: the head is limited (431/414), its arrival is timed
(``request_timeout_s``), a client that accepts no bytes for ``send_timeout_s`` is
dropped (by either path), past ``max_connections`` (connections on both paths
counted together) new clients get 503 (after at most a second spent
reading their head; at most as many rejections run at once as connections are
allowed, more are closed unanswered), and follow streams watch their socket so a
vanished client ends its stream at once.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket as _stdsocket

import trio

from logfs.core import GroupStore, LogStore, open_log_store
from logfs.tier.recorded import recorded_remote
from logfs.watch import DirectoryWatcher

from .connection import HttpConnection
from .fastpath import FastPath, fast_path_enabled
from .listing import log_gauges
from .metrics import ExporterMetrics
from .protocol import HttpError, Limits
from .streaming import FOLLOW_FALLBACK_S, ClientGone

logger = logging.getLogger(__name__)

__all__ = ["ExporterServer", "serve_exporter"]


class ExporterServer:
    """The state shared by all connections: the store, its consumer groups (read
    only), the watcher, the metrics."""

    def __init__(self, store: LogStore, limits: Limits, token: bytes | None) -> None:
        self.store = store
        self.groups = GroupStore(store.data_dir)
        self.limits = limits
        self.token = token
        self.metrics = ExporterMetrics()
        self.watcher = DirectoryWatcher(FOLLOW_FALLBACK_S)
        self.rejecting = 0
        self.fast: FastPath | None = None   # the C connection loop, when it serves
        self._nursery: trio.Nursery | None = None

    def spawn(self, fn, *args) -> None:
        """Start ``fn(*args)`` in the server's nursery (a remote chunk's read-ahead)."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def render_metrics(self) -> bytes:
        """The Prometheus text of ``GET /metrics``: the counters and every log's gauges.
        Raises the core's errors if DATA cannot be listed at all."""
        m = self.metrics
        m.inotify_events = self.watcher.events
        m.inotify_watches = self.watcher.watch_count
        if self.fast is not None:  # its figures and the trio path's, summed
            f = self.fast.stats()
            m = dataclasses.replace(
                m, connections_open=m.connections_open + f["open"],
                connections_total=m.connections_total + f["accepted"],
                bytes_sent=m.bytes_sent + f["body_bytes"],
                other_bytes_sent=m.other_bytes_sent + f["head_bytes"],
                sendfile_calls=m.sendfile_calls + f["sendfile_calls"],
                sendfile_would_block=m.sendfile_would_block + f["would_block"],
                timeouts=m.timeouts + f["timeouts"])
        return m.render(log_gauges(self.store))

    def _count_open(self, change: int) -> None:
        self.metrics.connections_open += change
        if self.fast is not None:  # counted against max_connections by the C loop too
            self.fast.loop.extra_open = self.metrics.connections_open

    async def handle(self, sock: trio.socket.SocketType, client: str, received: bytes = b"",
                     accepted_by_fast_path: bool = False) -> None:
        conn = HttpConnection(self, sock, client, received)
        self._count_open(1)
        if not accepted_by_fast_path:  # (the fast path counts what it accepts)
            self.metrics.connections_total += 1
        try:
            await conn.run()
        except Exception:
            logger.exception("connection from %s failed", client)
        finally:
            self._count_open(-1)

    async def reject(self, sock: trio.socket.SocketType, client: str, received: bytes = b"") -> None:
        """Past max_connections: read the head briefly, answer 503, close."""
        conn = HttpConnection(self, sock, client, received)
        self.rejecting += 1
        self.metrics.connections_rejected += 1
        try:
            with trio.move_on_after(min(1.0, self.limits.request_timeout_s)):
                try:
                    await conn.read_request()
                except HttpError:
                    pass
            await conn.refuse_raw(HttpError(503, f"too many connections (limit "
                                                  f"{self.limits.max_connections}); retry later",
                                             [(b"retry-after", b"1")]))
        except ClientGone:
            pass
        finally:
            self.rejecting -= 1
            await conn.close()

    async def refuse_late(self, sock: trio.socket.SocketType, client: str, received: bytes) -> None:
        """A head the fast path saw begin and not end in time: 408, as the trio path's
        read_request answers it."""
        conn = HttpConnection(self, sock, client, received)
        try:
            await conn.refuse_raw(HttpError(408, f"request not complete within "
                                                  f"{self.limits.request_timeout_s:g} s"))
        finally:
            await conn.close()

    def _admit(self, sock: trio.socket.SocketType, client: str, received: bytes = b"",
               accepted_by_fast_path: bool = False) -> None:
        """Start the trio path on *sock*, or refuse it past max_connections."""
        nursery = self._nursery
        held = self.fast.open_connections() if self.fast is not None else 0
        if self.metrics.connections_open + held >= self.limits.max_connections:
            if self.rejecting < self.limits.max_connections:
                nursery.start_soon(self.reject, sock, client, received)
            else:
                sock.close()
            return
        nursery.start_soon(self.handle, sock, client, received, accepted_by_fast_path)

    def take_over(self, sock: trio.socket.SocketType, client: str, received: bytes,
                  timed_out: bool) -> None:
        """A connection the fast path hands over (fastpath.py), with what it read."""
        if timed_out:
            self._nursery.start_soon(self.refuse_late, sock, client, received)
        else:
            self._admit(sock, client, received, accepted_by_fast_path=True)

    async def accept_loop(self, listener: trio.socket.SocketType) -> None:
        """The trio path's accept loop (the fast path off): a task per connection."""
        while True:
            try:
                sock, peer = await listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    logger.error("accept failed: %s; pausing", exc)
                    await trio.sleep(0.1)
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    raise
                continue
            try:
                sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            except OSError:  # already reset by the client
                sock.close()
                continue
            self._admit(sock, f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer))


async def serve_exporter(data_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                         token: bytes | None = None, limits: Limits | None = None,
                         task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve DATA read-only over HTTP until cancelled. ``task_status.started`` gets
    the bound ``(host, port)``. Raises OSError if the address cannot be bound and
    logfs.core.NotFound if DATA is missing."""
    limits = limits or Limits()
    store = open_log_store(data_dir, readonly=True, remote=recorded_remote(data_dir))
    server = ExporterServer(store, limits, token)
    family = _stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET
    listener = trio.socket.socket(family, _stdsocket.SOCK_STREAM)
    try:
        listener.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
        await listener.bind((host, port))
        listener.listen(1024)
        bound = listener.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            server._nursery = nursery
            nursery.start_soon(server.watcher.run)
            task_status.started(bound)
            if fast_path_enabled():
                server.fast = FastPath(server, listener, server.take_over)
                await server.fast.serve()
            else:
                await server.accept_loop(listener)
    finally:
        listener.close()
        store.close()
