"""The exporter's HTTP protocol, without I/O: request targets to routes, the
safety rules on paths, authentication, limits, and the responses' heads.

The connection (connection.py) feeds bytes to an :class:`h11.Connection` and asks this
module what each request means; every refusal is an :class:`HttpError` carrying the
status and a one-line message for the client.

Path rules (nothing outside DATA is reachable: docs/spec.md#9-the-exporter): the
target must be origin-form (``/...``); it is split on ``/`` *before* percent-decoding,
and each decoded segment must be a valid logfs name: not empty, ``.``, ``..``, not
containing ``/`` or NUL, valid UTF-8, not logfs's own reserved ``.logfs*``. Anything
else is 400 (malformed) or 404 (no such topic/log). Existence and the no-symlink rule
are then checked against DATA by the caller (planner.py).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import h11

from logfs.core.naming import RESERVED_PREFIX

__all__ = ["FileSlice", "HttpError", "Limits", "Route", "base_headers", "check_auth",
           "check_request_head", "check_request_limits", "direct_head", "error_response", "json_response", "parse_target",
           "request_head_error", "text_response", "REASONS"]

SERVER_NAME = b"logfs-exporter"

REASONS = {200: b"OK", 206: b"Partial Content", 400: b"Bad Request", 401: b"Unauthorized",
           404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
           413: b"Content Too Large", 414: b"URI Too Long", 416: b"Range Not Satisfiable",
           431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
           503: b"Service Unavailable", 505: b"HTTP Version Not Supported"}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one client may cost."""

    max_request_line: int = 8192          # bytes; longer -> 414
    max_header_bytes: int = 16384         # whole head; larger -> 431
    max_header_count: int = 64            # more -> 431
    max_request_body: int = 4096          # a GET/HEAD body larger than this -> 413
    request_timeout_s: float = 10.0       # idle or half-sent request -> closed (408)
    send_timeout_s: float = 60.0          # a client accepting no bytes this long -> closed
    max_connections: int = 512            # more at once -> 503


class HttpError(Exception):
    """A refusal: *status* with *message* as a short text body."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


@dataclass(frozen=True)
class Route:
    """What a request target names. ``kind``: index | topic | log | metrics."""

    kind: str
    topic: str | None = None
    log: str | None = None
    query: bytes = b""


def _decode_segment(raw: bytes) -> str:
    if b"\0" in raw:
        raise HttpError(400, "NUL in path")
    if b"%" not in raw:
        decoded = raw  # (what unquote_to_bytes gives, without its cost)
    else:
        try:
            decoded = unquote_to_bytes(raw)
        except ValueError:  # pragma: no cover - unquote_to_bytes never raises on bytes
            raise HttpError(400, "bad percent-encoding in path") from None
    if b"\0" in decoded:
        raise HttpError(400, "NUL in path")
    if decoded in (b".", b".."):
        raise HttpError(400, "dot segments are not allowed in paths")
    if b"/" in decoded or b"\\" in decoded:
        raise HttpError(404, "no such topic or log")
    try:
        name = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "path is not UTF-8") from None
    if not name or len(decoded) > 255 or name.startswith(RESERVED_PREFIX):
        raise HttpError(404, "no such topic or log")
    return name


def parse_target(target: bytes) -> Route:
    """Route a request target. Raises HttpError (400 malformed, 404 unreachable)."""
    if not target.startswith(b"/") or target.startswith(b"//"):
        raise HttpError(400, "request target must be an absolute path (/topic/log)")
    path, _, query = target.partition(b"?")
    path, _, _fragment = path.partition(b"#")
    if path == b"/":
        return Route("index", query=query)
    if path == b"/metrics":
        return Route("metrics", query=query)
    raw_segments = path[1:].split(b"/")
    if raw_segments and raw_segments[-1] == b"" and len(raw_segments) == 2:
        raw_segments = raw_segments[:-1]  # /topic/ means /topic
    names = [_decode_segment(s) for s in raw_segments]
    if len(names) == 1:
        return Route("topic", topic=names[0], query=query)
    if len(names) == 2:
        return Route("log", topic=names[0], log=names[1], query=query)
    raise HttpError(404, "no such topic or log: paths are /, /<topic> and /<topic>/<log>")


def check_auth(headers: list[tuple[bytes, bytes]], token: bytes | None) -> None:
    """Raise HttpError(401) unless ``Authorization: Bearer <token>`` matches (a
    constant-time comparison). No token configured: everything passes."""
    if token is None:
        return
    given = b""
    for name, value in headers:
        if name == b"authorization":
            given = value
            break
    scheme, _, credentials = given.partition(b" ")
    ok = scheme.lower() == b"bearer"
    # compare even when the scheme is wrong, so timing says nothing about the token
    match = hmac.compare_digest(credentials.strip(), token)
    if not (ok and match):
        raise HttpError(401, "a valid bearer token is required",
                        [(b"www-authenticate", b'Bearer realm="logfs"')])


def request_head_error(received: bytes, limits: Limits) -> HttpError:
    """The refusal for a request head h11 could not accept: 414 when the request
    line alone is too long, 431 when the headers are, 400 otherwise."""
    line_end = received.find(b"\r\n")
    if line_end < 0 and len(received) > limits.max_request_line or line_end > limits.max_request_line:
        return HttpError(414, f"request line longer than {limits.max_request_line} bytes")
    if len(received) > limits.max_header_bytes:
        return HttpError(431, f"request head larger than {limits.max_header_bytes} bytes")
    return HttpError(400, "malformed request")


def check_request_head(request: h11.Request, limits: Limits,
                       headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Limits h11 does not apply itself: HTTP version, request-line length, header
    count, head size. *headers*: ``list(request.headers)``, if the caller has it."""
    if headers is None:
        headers = list(request.headers)
    check_request_limits(request.method, request.target, request.http_version, headers, limits)


def check_request_limits(method: bytes, target: bytes, http_version: bytes,
                         headers: list[tuple[bytes, bytes]], limits: Limits) -> None:
    """:func:`check_request_head` on a head's parts (the fast path has no h11 request)."""
    if http_version not in (b"1.0", b"1.1"):
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    if len(target) + len(method) + 10 > limits.max_request_line:
        raise HttpError(414, f"request line longer than {limits.max_request_line} bytes")
    if len(headers) > limits.max_header_count:
        raise HttpError(431, f"more than {limits.max_header_count} header fields")
    # h11 bounds only a head that arrives in pieces; one that came whole is measured here
    size = len(method) + len(target) + 12
    size += sum(len(name) + len(value) + 4 for name, value in headers)
    if size > limits.max_header_bytes:
        raise HttpError(431, f"request head larger than {limits.max_header_bytes} bytes")


def direct_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The HTTP/1.1 head h11 would write for *status* and *headers*, built directly
    (the hot path of every download); None if a header value could break the framing
    (CR, LF or NUL in it: h11 must refuse it)."""
    head = b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, REASONS.get(status, b""), b"".join(
        [name + b": " + value + b"\r\n" for name, value in headers]))
    # the status line, each field and the blank line end in the only CR LF each: any
    # other CR or LF (or a NUL) came in a value
    lines = len(headers) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        return None
    return head


def base_headers(content_type: bytes | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(b"server", SERVER_NAME)]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    return headers


def error_response(err: HttpError, close: bool = False) -> tuple[h11.Response, bytes]:
    body = (err.message + "\n").encode("utf-8", "replace")
    headers = base_headers(b"text/plain; charset=utf-8") + list(err.headers)
    headers.append((b"content-length", str(len(body)).encode()))
    if close:
        headers.append((b"connection", b"close"))
    return h11.Response(status_code=err.status, headers=headers,
                        reason=REASONS.get(err.status, b"")), body


def json_response(value: object, status: int = 200) -> tuple[h11.Response, bytes]:
    body = (json.dumps(value, indent=1, sort_keys=False) + "\n").encode()
    headers = base_headers(b"application/json")
    headers.append((b"content-length", str(len(body)).encode()))
    return h11.Response(status_code=status, headers=headers, reason=REASONS.get(status, b"")), body


def text_response(body: bytes, content_type: bytes, status: int = 200) -> tuple[h11.Response, bytes]:
    headers = base_headers(content_type)
    headers.append((b"content-length", str(len(body)).encode()))
    return h11.Response(status_code=status, headers=headers, reason=REASONS.get(status, b"")), body


@dataclass(eq=False)
class FileSlice:
    """A placeholder for ``length`` bytes of file descriptor ``fd`` at ``position``:
    passed to h11 as the data of a :class:`h11.Data` event and handed back untouched
    by ``send_with_data_passthrough``, so the I/O layer can ``sendfile`` it."""

    fd: int
    position: int
    length: int
    log_offset: int = 0

    def __len__(self) -> int:
        return self.length
