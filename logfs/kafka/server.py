"""The Kafka listener: a trio accept loop and one task per connection.

A connection reads one frame at a time and answers it before reading the next, as
Kafka's broker does (responses leave in request order; a long-poll Fetch holds its
connection's later requests, which clients expect). Bounded cost per client: a frame
larger than ``message.max.bytes`` plus headroom, a frame that does not parse, or an API
version logfs cannot decode closes that connection only (one log line); a client idle
for ``idle_timeout_s`` or that accepts no bytes for ``send_timeout_s`` is dropped; past
``max_connections`` new connections are closed at once.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import trio

from . import apis
from .broker import Broker, api_version_list
from .errors import Err
from .wire import (MalformedRequest, build, decode_request, encode_response, parse_header,
                   request_class, response_class)

__all__ = ["serve_kafka"]

log = logging.getLogger(__name__)

FRAME_HEADROOM = 64 << 10  # request headers, topic names, several partitions


class ConnectionClosed(Exception):
    """Why a connection was dropped (logged once)."""


class KafkaConnection:
    def __init__(self, broker: Broker, stream: trio.SocketStream, peer: str) -> None:
        self.broker = broker
        self.stream = stream
        self.peer = peer
        self.buf = bytearray()
        self.max_frame = broker.options.message_max_bytes + FRAME_HEADROOM

    async def _read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.stream.receive_some(max(65536, n - len(self.buf)))
            if not chunk:
                if self.buf:
                    raise ConnectionClosed("closed in the middle of a request")
                raise EOFError
            self.buf += chunk
        if len(self.buf) == n:  # the common case: the buffer holds just this frame
            out = bytes(self.buf)
            self.buf.clear()
            return out
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_frame(self) -> bytes:
        with trio.move_on_after(self.broker.options.idle_timeout_s) as scope:
            head = await self._read_exactly(4)
            (size,) = struct.unpack(">i", head)
            if size < 8 or size > self.max_frame:
                raise ConnectionClosed(f"request of {size} bytes (the limit is "
                                       f"message.max.bytes {self.broker.options.message_max_bytes}"
                                       " plus headers)")
            return await self._read_exactly(size)
        assert scope.cancelled_caught
        raise ConnectionClosed(f"idle for {self.broker.options.idle_timeout_s:g} s")

    async def send(self, frame: bytes) -> None:
        with trio.move_on_after(self.broker.options.send_timeout_s) as scope:
            await self.stream.send_all(frame)
        if scope.cancelled_caught:
            raise ConnectionClosed(f"accepted no bytes for {self.broker.options.send_timeout_s:g} s")

    async def run(self) -> None:
        try:
            while True:
                payload = await self.read_frame()
                frame = await self.answer(payload)
                if frame is not None:
                    await self.send(frame)
        except EOFError:
            pass
        except ConnectionClosed as exc:
            log.warning("kafka: client %s: %s: connection closed", self.peer, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass

    async def answer(self, payload: bytes) -> bytes | None:
        """The response frame for one request frame (None: no response)."""
        try:
            head = parse_header(payload)
        except MalformedRequest as exc:
            raise ConnectionClosed(str(exc)) from None
        key, version = head.api_key, head.api_version
        if key == apis.API_VERSIONS_KEY and version > apis.ADVERTISED[key][1]:
            return self._unsupported_api_versions(head.correlation_id)
        name, max_version = apis.ADVERTISED.get(key, (None, -1))
        cls = request_class(key, version) if 0 <= version <= max_version else None
        if name is None:
            raise ConnectionClosed(f"API key {key} (version {version}) is not one logfs "
                                   "answers (docs/kafka.md lists them)")
        if cls is None:
            raise ConnectionClosed(f"{name} v{version} is not supported (logfs answers "
                                   f"{name} v{apis.KIO_MIN.get(key, 0)}-{max_version})")
        try:
            head = parse_header(payload, cls.__header_schema__.__flexible__)
            req = decode_request(cls, payload, head.body_offset)
        except MalformedRequest as exc:
            raise ConnectionClosed(str(exc)) from None
        if key == apis.JOIN_GROUP:  # DescribeGroups shows who the members are
            result = await self.broker.coordinator.join_group(
                req, version, client_id=head.client_id or "", client_host=self.peer.rpartition(":")[0])
        else:
            result = await self.broker.handlers[key](req, version)
        if result is None:
            return None
        rcls = response_class(key, version)
        return encode_response(rcls, head.correlation_id, build(rcls, result))

    def _unsupported_api_versions(self, correlation_id: int) -> bytes:
        """KIP-511: an ApiVersions version above ours gets error 35 and a v0 body."""
        rcls = response_class(apis.API_VERSIONS_KEY, 0)
        body = build(rcls, {"error_code": Err.UNSUPPORTED_VERSION, "api_keys": api_version_list()})
        return encode_response(rcls, correlation_id, body)


async def _handle(broker: Broker, stream: trio.SocketStream, state: dict[str, Any]) -> None:
    try:
        peer = stream.socket.getpeername()
        peer_s = f"{peer[0]}:{peer[1]}"
    except OSError:
        peer_s = "?"
    if state["open"] >= broker.options.max_connections:
        log.warning("kafka: client %s: more than %d connections: closed", peer_s,
                    broker.options.max_connections)
        await stream.aclose()
        return
    state["open"] += 1
    try:
        await KafkaConnection(broker, stream, peer_s).run()
    except Exception:  # noqa: BLE001 - one connection's failure never ends the listener
        log.exception("kafka: client %s: connection failed", peer_s)
    finally:
        state["open"] -= 1
        await stream.aclose()


async def serve_kafka(broker: Broker, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Listen on options.host:port and serve until cancelled. ``task_status.started``
    gets the (host, port) actually bound (port 0: the kernel's choice)."""
    o = broker.options
    listeners = await trio.open_tcp_listeners(o.port, host=o.host)
    sockname = listeners[0].socket.getsockname()
    if not o.port:
        o.port = sockname[1]
    state = {"open": 0}
    log.info("kafka: listening on %s:%d (advertised as %s:%d)", sockname[0], sockname[1],
             *broker.advertised)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(broker.run)
        task_status.started((sockname[0], sockname[1]))
        await trio.serve_listeners(lambda s: _handle(broker, s, state), listeners)
