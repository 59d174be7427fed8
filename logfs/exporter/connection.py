"""One client connection: h11 state, the non-blocking socket, the request cycle.

Each accepted socket gets one task running :meth:`HttpConnection.run`. It reads a
request head under a deadline (idle or half-sent requests are closed; a refusal
before h11 has a request is written raw), checks limits and the token, routes the
target (protocol.py) and answers: JSON and errors as bytes, log bodies through
streaming.py. Heads and framing go through h11; log bytes go as :class:`FileSlice`
placeholders that h11's ``send_with_data_passthrough`` hands back untouched and
:meth:`HttpConnection.send_file` turns into ``os.sendfile`` on the non-blocking
socket, waiting in ``trio.lowlevel.wait_writable`` while it is full (at most
``send_timeout_s``: a client that accepts nothing that long is dropped).

Errors: :meth:`HttpConnection.dispatch` runs each request inside the exporter's one
storage error boundary (errors.py), so the storage core's exceptions arrive in
:meth:`HttpConnection.handle` as HttpErrors: answered with their status while no
response has started, and ending the connection (a body cut short, one warning
line) once one has. Anything else is a bug: logged with its traceback, 500.

The connection knows the server only through :class:`SharedState`, a small
``typing.Protocol`` (server.ExporterServer is one), so this module does not import
server.py.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket as _stdsocket
import time
from dataclasses import dataclass
from typing import Protocol

import h11
import trio

from logfs.core import GroupStore, LogStore, StorageError
from logfs.watch import DirectoryWatcher

from .errors import storage_errors_as_http
from .listing import describe_all, describe_topic
from .metrics import ExporterMetrics
from .planner import now_ms, open_reachable_log, plan_log_read, prepare_remote_seeks
from .protocol import (REASONS, FileSlice, HttpError, Limits, Route, check_auth,
                       check_request_head, direct_head, error_response, json_response, parse_target,
                       request_head_error, text_response)
from .streaming import ClientGone, send_log

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("logfs.exporter.access")

__all__ = ["HttpConnection", "SharedState", "raw_error"]

RECV_SIZE = 65536
MAX_IGNORED_INPUT = 65536    # bytes a follow client may send before being dropped


@dataclass
class Exchange:
    """One request/response, for the access log."""

    client: str
    method: str = "-"
    path: str = "-"
    status: int = 0
    bytes: int = 0
    started: float = 0.0
    complete: bool = False


def raw_error(status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete ``Connection: close`` response for errors before h11 has a request."""
    body = (message + "\n").encode()
    head = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b"")),
            b"server: logfs-exporter", b"content-type: text/plain; charset=utf-8",
            b"content-length: %d" % len(body), b"connection: close"]
    head += [name + b": " + value for name, value in extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_json_string = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) quotes with
_utc_second: list = [None, ""]                 # [epoch second, its "YYYY-MM-DDTHH:MM:SS"]


def access_line(ex: Exchange, wall: float, mono: float) -> str:
    """The access log's JSON line for *ex*, ended at *wall* (epoch seconds) and *mono*
    (time.monotonic): the text ``json.dumps`` gives (same keys, order and
    separators), built directly, since one is written per request (docs/exporter.md)."""
    second = int(wall)
    if _utc_second[0] != second:
        _utc_second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    millis = min(999, int((wall - second) * 1000))
    duration = round((mono - ex.started) * 1000, 3)
    return (f'{{"ts": "{_utc_second[1]}.{millis:03d}Z", "client": {_json_string(ex.client)}, '
            f'"method": {_json_string(ex.method)}, "path": {_json_string(ex.path)}, '
            f'"status": {ex.status}, "bytes": {ex.bytes}, "duration_ms": {duration!r}, '
            f'"complete": {"true" if ex.complete else "false"}}}')


class SharedState(Protocol):
    """What every connection shares (server.ExporterServer is one)."""

    store: LogStore
    groups: GroupStore          # the consumer groups of DATA, read for ?group= (never written)
    limits: Limits
    token: bytes | None
    metrics: ExporterMetrics
    watcher: DirectoryWatcher

    def render_metrics(self) -> bytes:
        """The Prometheus text of ``GET /metrics``."""

    def spawn(self, fn, *args) -> None:
        """Start ``fn(*args)`` (async) in the server's nursery."""


# refusals after which the connection closes (the request may not have been read whole,
# or a storage failure may persist)
_CLOSE_AFTER = frozenset({405, 408, 413, 414, 431, 500, 505})


class HttpConnection:
    """One client connection: h11 state plus the raw non-blocking socket."""

    def __init__(self, server: SharedState, sock: trio.socket.SocketType, client: str,
                 received: bytes = b"") -> None:
        """*received*: what the client already sent on *sock* (a connection handed
        over by the fast path, fastpath.py), parsed before anything read from it."""
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()  # read, written and waited on directly (non-blocking)
        self.client = client
        self.limits = server.limits
        self.metrics = server.metrics
        self.conn = self._new_h11()
        if received:
            self.conn.receive_data(received)
        self.gone = False
        self.direct_heads = False   # this request's fixed body may skip h11 (send_direct_head)
        self._direct_sent = False   # a response head went out without h11
        self.exchange: Exchange | None = None
        self._corked = False

    def set_cork(self, on: bool) -> None:
        """TCP_CORK on (hold partial segments) or off (send what is held, now)."""
        if on != self._corked:
            self._corked = on
            try:
                self.sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_CORK, int(on))
            except OSError:  # reset by the client meanwhile: the next send says so
                pass

    def spawn(self, fn, *args) -> None:
        self.server.spawn(fn, *args)

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)

    @property
    def response_started(self) -> bool:
        """Some of this request's response has been sent (an error can only cut it short)."""
        return self._direct_sent or self.conn.our_state is not h11.SEND_RESPONSE

    # -- sending -------------------------------------------------------------------
    async def _wait_writable(self) -> None:
        with trio.move_on_after(self.limits.send_timeout_s) as scope:
            await trio.lowlevel.wait_writable(self.fd)
        if scope.cancelled_caught:
            self.metrics.timeouts += 1
            logger.info("%s: accepted no bytes for %.1f s, closing", self.client, self.limits.send_timeout_s)
            raise ClientGone("send timeout")

    async def send_bytes(self, data: bytes) -> None:
        """Write *data* to the socket, waiting (at most send_timeout_s each time) while
        it is full. Raises ClientGone."""
        view = memoryview(data)
        while view:
            if self.gone:
                raise ClientGone("closed")
            try:
                n = os.write(self.fd, view)  # send(2) without flags
            except BlockingIOError:
                await self._wait_writable()
                continue
            except OSError as exc:
                raise ClientGone(str(exc)) from None
            view = view[n:]
            self.metrics.other_bytes_sent += n

    async def send_file(self, piece: FileSlice) -> None:
        """sendfile *piece* to the socket, waiting while the socket is full. Raises
        ClientGone; StorageError or OSError if the segment file fails."""
        fd = self.fd
        offset, remaining = piece.position, piece.length
        while remaining:
            if self.gone:
                raise ClientGone("closed")
            try:
                n = os.sendfile(fd, piece.fd, offset, remaining)
            except BlockingIOError:
                self.metrics.sendfile_would_block += 1
                await self._wait_writable()
                continue
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN):
                    raise ClientGone(str(exc)) from None
                raise  # the segment file's error: for the storage error boundary
            if n == 0:
                raise StorageError(f"segment file ended early at {offset} (sendfile returned 0)")
            self.metrics.sendfile_calls += 1
            self.metrics.bytes_sent += n
            if self.exchange is not None:
                self.exchange.bytes += n
            offset += n
            remaining -= n
            if remaining:
                # A short count means the socket buffer is full: wait for room rather
                # than retry into EAGAIN (a wasted system call and a raised exception).
                await self._wait_writable()
            else:
                await trio.lowlevel.checkpoint()  # let other clients run between calls

    async def send_event(self, event: h11.Event) -> None:
        """Send one h11 event: bytes with send, FileSlice placeholders with sendfile.
        Raises ClientGone; StorageError or OSError if a segment file fails."""
        pieces = self.conn.send_with_data_passthrough(event)
        pending: list[bytes] = []
        for piece in pieces or ():
            if isinstance(piece, FileSlice):
                if pending:
                    await self.send_bytes(b"".join(pending))
                    pending = []
                await self.send_file(piece)
            else:
                pending.append(piece)
        if pending:
            await self.send_bytes(b"".join(pending))

    async def send_direct_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """The head of a fixed-length response (``content-length`` in *headers*),
        written without h11, when :attr:`direct_heads` allows it (a plain HTTP/1.1
        request, keep-alive, no ``Connection`` header) and no header value could break
        the framing; the body then goes with :meth:`send_file` and
        :meth:`end_direct_response` ends it. False (nothing sent) when h11 must send it.
        The same bytes h11 would write, without its per-header validation and state
        machine on the hot path of every download (docs/performance.md, W6)."""
        if not self.direct_heads:
            return False
        head = direct_head(status, headers)
        if head is None:
            return False
        self._direct_sent = True
        await self.send_bytes(head)
        return True

    def end_direct_response(self) -> None:
        """The direct response is complete: the next request starts a new h11
        connection state, with what the client has already sent (pipelined)."""
        data, closed = self.conn.trailing_data
        self.conn = self._new_h11()
        if data:
            self.conn.receive_data(data)
        if closed:
            self.conn.receive_data(b"")
        self._direct_sent = False

    async def send_body(self, response: h11.Response, body: bytes, head_only: bool) -> None:
        await self.send_event(response)
        if body and not head_only:
            await self.send_event(h11.Data(data=body))
            if self.exchange is not None:
                self.exchange.bytes += len(body)
        await self.send_event(h11.EndOfMessage())

    # -- receiving -----------------------------------------------------------------
    def _receive_nowait(self) -> bytes | None:
        """What the socket holds now (b"" once the client closed or reset); None if
        nothing has arrived yet. A plain read(2) of the non-blocking socket: the
        request cycle's common case, without the scheduler trips of trio's socket
        methods (run() checkpoints once per request)."""
        try:
            return os.read(self.fd, RECV_SIZE)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    async def _receive(self) -> bytes:
        """The next bytes from the client, waiting for them (under the caller's
        deadline); b"" once it closed or reset."""
        while True:
            data = self._receive_nowait()
            if data is not None:
                return data
            await trio.lowlevel.wait_readable(self.fd)

    async def read_request(self) -> h11.Request | None:
        """The next request head; None when the client closed or timed out idle.
        Raises HttpError for a malformed or oversized head (before h11 has it)."""
        deadline = trio.current_time() + self.limits.request_timeout_s
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:
                raise request_head_error(bytes(self.conn.trailing_data[0]), self.limits) from None
            if event is h11.NEED_DATA:
                data = self._receive_nowait()
                if data is None:  # wait, under the head's deadline (a scope only then)
                    with trio.move_on_at(deadline) as scope:
                        data = await self._receive()
                    if scope.cancelled_caught:
                        break
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                return event
            return None  # ConnectionClosed (h11 gives nothing else here)
        # the deadline passed: an idle connection just ends, a half-sent head is a 408
        self.metrics.timeouts += 1
        if bytes(self.conn.trailing_data[0]).strip():
            raise HttpError(408, f"request not complete within {self.limits.request_timeout_s:g} s")
        return None

    async def read_body_end(self) -> None:
        """Consume the (normally empty) request body up to EndOfMessage."""
        size = 0
        deadline = trio.current_time() + self.limits.request_timeout_s
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(400, f"malformed request body: {exc}") from None
            if event is h11.NEED_DATA:  # (a GET's empty body ends with its head)
                with trio.move_on_at(deadline) as scope:
                    self.conn.receive_data(await self._receive())
                if scope.cancelled_caught:
                    raise HttpError(408, "request body not complete in time")
                continue
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.limits.max_request_body:
                    raise HttpError(413, f"request body larger than {self.limits.max_request_body} bytes")
                continue
            if isinstance(event, h11.EndOfMessage):
                return
            raise ClientGone("closed during the request body")

    async def watch_for_close(self, cancel_scope: trio.CancelScope) -> None:
        """During a follow stream: end it as soon as the client closes or resets."""
        ignored = 0
        while True:
            data = await self._receive()
            if not data:
                self.gone = True
                cancel_scope.cancel()
                return
            ignored += len(data)
            if ignored > MAX_IGNORED_INPUT:
                self.gone = True
                cancel_scope.cancel()
                return

    # -- the connection's life -----------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                try:
                    request = await self.read_request()
                except HttpError as err:
                    await self.refuse_raw(err)
                    return
                if request is None:
                    return
                keep = await self.handle(request)
                if not keep:
                    return
                # the socket calls above wait only when they must: let other clients
                # run between requests (a client's pipelined requests are read at once)
                await trio.lowlevel.checkpoint()
                if self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE:
                    continue  # a direct response ended with a fresh h11 state
                if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
        except ClientGone:
            pass
        finally:
            await self.close()

    async def refuse_raw(self, err: HttpError) -> None:
        """Answer *err* with a raw ``Connection: close`` response (no h11 request)."""
        ex = Exchange(self.client, started=time.monotonic(), status=err.status)
        try:
            await self.send_bytes(raw_error(err.status, err.message, err.headers))
            ex.complete = True
        except ClientGone:
            pass
        self.metrics.count_request("-", err.status)
        self._access(ex)

    async def close(self) -> None:
        try:
            if not self.gone:
                try:
                    self.sock.shutdown(_stdsocket.SHUT_WR)
                except OSError:
                    pass
                # drain briefly so the kernel sends FIN, not RST, after our response
                with trio.move_on_after(0.2):
                    for _ in range(16):
                        if not await self._receive():
                            break
        finally:
            self.sock.close()

    def _access(self, ex: Exchange) -> None:
        access_logger.info(access_line(ex, time.time(), time.monotonic()))

    async def handle(self, request: h11.Request) -> bool:
        """Answer one request; False if the connection must close afterwards."""
        ex = self.exchange = Exchange(self.client, method=request.method.decode("latin-1"),
                                      path=request.target.decode("latin-1"), started=time.monotonic())
        keep = True
        try:
            try:
                headers = list(request.headers)  # (h11's Headers iterate slowly)
                check_request_head(request, self.limits, headers)
                # h11 keeps an HTTP/1.1 connection alive unless "Connection: close"
                self.direct_heads = request.http_version == b"1.1" and \
                    not any(name == b"connection" for name, _ in headers)
                if request.method not in (b"GET", b"HEAD"):
                    raise HttpError(405, "the exporter is read-only: use GET or HEAD",
                                    [(b"allow", b"GET, HEAD")])
                await self.read_body_end()
                check_auth(headers, self.server.token)
                route = parse_target(request.target)
                keep = await self.dispatch(request, route, headers)
                ex.complete = True
            except HttpError as err:
                if self.response_started:
                    # the response had started: nothing to do but close, short
                    logger.warning("%s %s from %s: response cut short: %s", ex.method, ex.path,
                                   self.client, err.message)
                    return False
                ex.status = err.status
                if err.status >= 500:
                    logger.warning("%s %s from %s: %s", ex.method, ex.path, self.client, err.message)
                close = err.status in _CLOSE_AFTER or self.conn.their_state is not h11.DONE
                response, body = error_response(err, close=close)
                await self.send_body(response, body, request.method == b"HEAD")
                ex.complete = True
                keep = not close
            except ClientGone:
                ex.status = ex.status or 499
                raise
            except Exception:
                logger.exception("%s %s from %s failed", ex.method, ex.path, self.client)
                ex.status = 500
                if not self.response_started:
                    response, body = error_response(HttpError(500, "internal error"), close=True)
                    await self.send_body(response, body, False)
                return False
            return keep
        finally:
            self.direct_heads = False
            self.metrics.count_request(ex.method if ex.method in ("GET", "HEAD") else "other", ex.status)
            self._access(ex)
            self.exchange = None

    async def dispatch(self, request: h11.Request, route: Route,
                       headers: list[tuple[bytes, bytes]]) -> bool:
        """Answer a routed request; False if the connection must close afterwards.
        The storage error boundary: every storage error inside becomes an HttpError.
        Raises HttpError and ClientGone."""
        head_only = request.method == b"HEAD"
        ex = self.exchange
        store = self.server.store
        with storage_errors_as_http() as boundary:
            if route.kind == "log":
                log = boundary.log = open_reachable_log(store, route.topic, route.log)
                range_header = None
                for name, value in headers:
                    if name == b"range":
                        range_header = value
                if range_header is None:
                    await prepare_remote_seeks(log, route.query, now_ms())
                plan = plan_log_read(log, route.query, range_header, now_ms(), self.server.groups)
                ex.status = plan.status
                await send_log(self, plan, head_only, self.server.watcher)
                # a follow stream read (and dropped) whatever the client sent meanwhile
                return head_only or plan.end is not None
            if route.kind == "metrics":
                response, body = text_response(self.server.render_metrics(),
                                               b"text/plain; version=0.0.4; charset=utf-8")
            elif route.kind == "topic":
                logs = describe_topic(store, route.topic)
                response, body = json_response({"topic": route.topic, "logs": logs})
            else:
                response, body = json_response({"topics": describe_all(store)})
        ex.status = response.status_code
        await self.send_body(response, body, head_only)
        return True
