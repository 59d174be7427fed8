"""The exporter's server: a trio accept loop over the shared state (the store's
reader view, the inotify watcher, the metrics), and :func:`serve_exporter`.

Theory of operation (the whole package): each accepted socket gets one task
(connection.py) that reads a request under a deadline, routes it (protocol.py),
plans the bytes over the core's reader view (planner.py) and sends them with
``os.sendfile`` (streaming.py): no segment byte enters Python memory. Followers
sleep until inotify reports a change in their log's directory (logfs/watch.py). The
storage core's exceptions are turned into HTTP answers in one place (errors.py),
around each request's dispatch.

Bounded cost per client: the head is limited (431/414), its arrival is timed
(``request_timeout_s``), a client that accepts no bytes for ``send_timeout_s`` is
dropped, past ``max_connections`` new clients get 503 (after at most a second spent
reading their head; at most as many rejections run at once as connections are
allowed, more are closed unanswered), and follow streams watch their socket so a
vanished client ends its stream at once.
"""

from __future__ import annotations

import errno
import logging
import socket as _stdsocket

import trio

from logfs.core import GroupStore, LogStore, open_log_store
from logfs.tier.recorded import recorded_remote
from logfs.watch import DirectoryWatcher

from .connection import HttpConnection
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
        self._nursery: trio.Nursery | None = None

    def spawn(self, fn, *args) -> None:
        """Start ``fn(*args)`` in the server's nursery (a remote chunk's read-ahead)."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def render_metrics(self) -> bytes:
        """The Prometheus text of ``GET /metrics``: the counters and every log's gauges.
        Raises the core's errors if DATA cannot be listed at all."""
        self.metrics.inotify_events = self.watcher.events
        self.metrics.inotify_watches = self.watcher.watch_count
        return self.metrics.render(log_gauges(self.store))

    async def handle(self, sock: trio.socket.SocketType, peer) -> None:
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        conn = HttpConnection(self, sock, client)
        self.metrics.connections_open += 1
        self.metrics.connections_total += 1
        try:
            await conn.run()
        except Exception:
            logger.exception("connection from %s failed", client)
        finally:
            self.metrics.connections_open -= 1

    async def reject(self, sock: trio.socket.SocketType, peer) -> None:
        """Past max_connections: read the head briefly, answer 503, close."""
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        conn = HttpConnection(self, sock, client)
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

    async def accept_loop(self, listener: trio.socket.SocketType, nursery: trio.Nursery) -> None:
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
            if self.metrics.connections_open >= self.limits.max_connections:
                if self.rejecting < self.limits.max_connections:
                    nursery.start_soon(self.reject, sock, peer)
                else:
                    sock.close()
                continue
            nursery.start_soon(self.handle, sock, peer)


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
            await server.accept_loop(listener, nursery)
    finally:
        listener.close()
        store.close()
