"""The control channel between `logfs config|describe|umount` and a running daemon.

Why a socket and not extended attributes: a FUSE filesystem that implements
``getxattr`` at all makes the kernel send ``GETXATTR security.capability`` before
every write, roughly doubling the cost of a small append (docs/fuse.md, "No extended
attributes", has the figures). So the mount
answers no xattr calls, and the CLI talks to the daemon over a unix stream socket,
``DATA/.logfs/control.sock`` (mode 0600: only the mounting user, or root, can
change configuration). The CLI finds DATA from the mount's source field in
``/proc/self/mountinfo`` (the daemon mounts with ``fsname=DATA``).

Protocol: the client sends one JSON object on one line, the daemon answers one
JSON object on one line and closes::

    {"op": "describe", "path": ["orders", "eu"]}   -> {"ok": true, "result": {...}}
    {"op": "config", "path": ["orders"], "set": {"retention.ms": "60000"}}
    {"op": "ping"}                                 -> {"ok": true, "result": {"pid": ...}}
    any failure                                    -> {"ok": false, "error": "message"}

Unix socket paths are limited to 107 bytes; long DATA paths are reached through
``/proc/self/fd/N/control.sock`` on an open descriptor of the directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from dataclasses import asdict, is_dataclass
from typing import Any, Callable, Iterator, Mapping

import trio

from logfs.core.config import UNSET, effective_config, parse_config
from logfs.core.naming import STORE_META_DIR

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 1 << 20
REQUEST_TIMEOUT_S = 5.0


def control_dir(data_dir: str) -> str:
    """DATA's metadata directory, where the control socket and the daemon's pid and
    log files live."""
    return os.path.join(data_dir, STORE_META_DIR)


@contextlib.contextmanager
def short_socket_path(directory: str, name: str = SOCKET_NAME) -> Iterator[str]:
    """A path to ``directory/name`` short enough for ``sockaddr_un``."""
    path = os.path.join(directory, name)
    if len(os.fsencode(path)) < 100:
        yield path
        return
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


# ------------------------------------------------------------------ the server

Handler = Callable[[dict[str, Any]], Any]


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


async def _serve_one(stream: trio.SocketStream, handle: Handler) -> None:
    try:
        buf = b""
        with trio.move_on_after(REQUEST_TIMEOUT_S):
            while b"\n" not in buf and len(buf) < MAX_REQUEST:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                buf += chunk
        try:
            request = json.loads(buf.split(b"\n", 1)[0] or b"null")
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            reply = {"ok": True, "result": handle(request)}
        except Exception as exc:  # noqa: BLE001 - every failure is an answer
            log.info("control request refused: %s", exc)
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
        data = json.dumps(reply, default=_jsonable).encode() + b"\n"
        with trio.move_on_after(REQUEST_TIMEOUT_S):
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        log.debug("control client went away: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()


async def serve_control(data_dir: str, handle: Handler, *,
                        task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve control requests on DATA/.logfs/control.sock until cancelled."""
    directory = control_dir(data_dir)
    os.makedirs(directory, exist_ok=True)
    real_path = os.path.join(directory, SOCKET_NAME)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(real_path)  # stale, from a daemon that died; we hold the store lock
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        with short_socket_path(directory) as path:
            await sock.bind(path)
    finally:
        os.umask(old_umask)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(real_path)
            while True:
                stream = await listener.accept()
                nursery.start_soon(_serve_one, stream, handle)
    finally:
        with contextlib.suppress(Exception):
            await listener.aclose()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(real_path)


# ------------------------------------------------- what describe and config answer
#
# Used by the daemon (its control handler) and by the CLI on a data directory that
# is not mounted (a read-only store), so both give the same figures. Every config
# value is an integer, or None for "none" (flush.ms unset): overrides, defaults and
# effective values alike (docs/config.md).

def typed_config(values: Mapping[str, object]) -> dict[str, int | None]:
    """Config values (strings from -o or the core's override listings) as integers."""
    return {k: v for k, v in sorted(parse_config(dict(values)).items()) if v is not UNSET}


def describe_topic(store, topic: str) -> dict[str, Any]:
    return {"kind": "topic", "topic": topic, "logs": store.logs(topic),
            "config_overrides": typed_config(store.topic_config(topic))}


def describe_log(store, topic: str, name: str) -> dict[str, Any]:
    lg = store.log(topic, name)
    d = {"kind": "log", **lg.describe()}
    d["config_overrides"] = typed_config(d.get("config_overrides") or {})
    tiering = getattr(store, "tiering", None)
    if tiering is not None and lg.config.tiered:
        d["tiering"] = tiering.describe(lg)
    return d


def _sources(keys, *layers: tuple[str, Mapping[str, object]]) -> dict[str, str]:
    return {k: next((name for name, layer in layers if k in layer), "default") for k in keys}


def config_view(store, parts: tuple[str, ...], defaults: Mapping[str, object]) -> dict[str, Any]:
    """The config of the mount (its -o defaults), a topic or a log: overrides, the
    effective values and where each comes from (log, topic, mount or default)."""
    mount = typed_config(defaults)
    if not parts:
        return {"kind": "mount", "defaults": mount}
    topic = typed_config(store.topic_config(parts[0]))
    if len(parts) == 1:
        effective = effective_config(topic, mount).as_kafka_dict()
        return {"kind": "topic", "topic": parts[0], "overrides": topic, "effective": effective,
                "sources": _sources(effective, ("topic", topic), ("mount", mount))}
    lg = store.log(*parts)
    own = typed_config(lg.config_overrides)
    effective = lg.config.as_kafka_dict()
    return {"kind": "log", "topic": parts[0], "log": parts[1], "overrides": own,
            "effective": effective,
            "sources": _sources(effective, ("log", own), ("topic", topic), ("mount", mount))}


# ------------------------------------------------------------------ the client

class ControlError(Exception):
    """The daemon refused a request, or could not be reached; the message says which."""


class DaemonUnreachable(ControlError):
    """No daemon answers on DATA's control socket (none runs, or it was killed)."""


def request(data_dir: str, message: dict[str, Any], timeout: float = 30.0) -> Any:
    """Send one request to the daemon serving ``data_dir``; blocks; ControlError."""
    directory = control_dir(data_dir)
    try:
        with short_socket_path(directory) as path, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(message).encode() + b"\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        raise DaemonUnreachable(f"cannot reach the logfs daemon for {data_dir} "
                           f"({os.path.join(directory, SOCKET_NAME)}): {exc.strerror or exc}"
                           ) from None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise ControlError("the logfs daemon sent no valid answer") from None
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "refused"))
    return reply.get("result")
