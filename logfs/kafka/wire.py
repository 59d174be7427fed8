"""Kafka's framing and message codec: request headers by hand (a fixed layout, the hot
path), bodies through kio, whose message classes are generated from Kafka's own JSON
schemas (clients/src/main/resources/common/message/*.json).

A frame is ``int32 size | payload``. A request payload is ``api_key int16 |
api_version int16 | correlation_id int32 | client_id nullable string (int16 length)``,
then, for a flexible version (header v2), tagged fields, then the body. A response is
``correlation_id int32`` (+ tagged fields in header v1), then the body.

Handlers build responses as plain values (dicts and lists); :func:`build` turns them
into the kio entities of the version asked for, dropping keys that version lacks and
filling fields the handler did not name with their zero values, so one handler serves
every version.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import struct
import typing
import uuid
from functools import lru_cache
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

__all__ = ["MalformedRequest", "RequestHeader", "build", "decode_request", "encode_response",
           "ms", "parse_header", "request_class", "response_class"]

_HEAD = struct.Struct(">hhih")
_UTC = datetime.timezone.utc


class MalformedRequest(Exception):
    """A frame that does not parse as the request it claims to be."""


@dataclasses.dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def _skip_tagged(buf: bytes, pos: int) -> int:
    """Skip a tagged-field section (count, then tag/size/bytes), returning the end."""
    count, pos = _uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = _uvarint(buf, pos)
        size, pos = _uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise MalformedRequest("tagged field runs past the end of the request")
    return pos


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if pos >= len(buf) or shift > 28:
            raise MalformedRequest("bad varint in request header")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def parse_header(payload: bytes, flexible: bool | None = None) -> RequestHeader:
    """The request header of *payload*. *flexible*: whether its header is v2 (decided
    by the caller from the API and version; None reads only the fixed part)."""
    if len(payload) < _HEAD.size:
        raise MalformedRequest(f"request of {len(payload)} bytes is shorter than its header")
    key, version, corr, n = _HEAD.unpack_from(payload)
    pos = _HEAD.size
    client = None
    if n >= 0:
        if pos + n > len(payload):
            raise MalformedRequest("client id runs past the end of the request")
        client = payload[pos:pos + n].decode("utf-8", "replace")
        pos += n
    elif n != -1:
        raise MalformedRequest(f"bad client id length {n}")
    if flexible:
        pos = _skip_tagged(payload, pos)
    return RequestHeader(key, version, corr, client, pos)


@lru_cache(maxsize=None)
def request_class(api_key: int, version: int) -> type | None:
    """kio's request class of an API version, or None if kio has none."""
    try:
        return load_request_schema(api_key, version)
    except Exception:  # noqa: BLE001 - kio raises its own errors for unknown keys/versions
        return None


@lru_cache(maxsize=None)
def response_class(api_key: int, version: int) -> type:
    return load_response_schema(api_key, version)


@lru_cache(maxsize=None)
def _reader(cls: type):
    return entity_reader(cls)


@lru_cache(maxsize=None)
def _writer(cls: type):
    return entity_writer(cls)


def decode_request(cls: type, payload: bytes, offset: int) -> Any:
    """The body of a request as a kio entity; MalformedRequest if it does not parse."""
    try:
        value, _size = _reader(cls)(payload, offset)
    except Exception as exc:  # noqa: BLE001 - the native reader raises several kinds
        raise MalformedRequest(f"{cls.__name__} does not parse: {exc}") from None
    return value


def encode_response(cls: type, correlation_id: int, body: Any) -> bytes:
    """One response frame (size prefix included) for a kio response entity."""
    out = io.BytesIO()
    out.write(b"\0\0\0\0")
    out.write(struct.pack(">i", correlation_id))
    if cls.__header_schema__.__flexible__:
        out.write(b"\0")  # no tagged fields
    _writer(cls)(out, body)
    frame = out.getbuffer()
    struct.pack_into(">i", frame, 0, len(frame) - 4)
    del frame
    return out.getvalue()


def ms(td: datetime.timedelta | int | None) -> int:
    """Milliseconds of one of kio's timedelta fields."""
    if td is None:
        return 0
    if isinstance(td, datetime.timedelta):
        return int(td.total_seconds() * 1000)
    return int(td)


# ---------------------------------------------------------------------- building


def _entity_of(tp: Any) -> tuple[str, type | None]:
    """How to build a field of type *tp*: ("entity", cls), ("entities", cls),
    ("tuple", None) or ("plain", None); Optional[...] is looked through."""
    args = typing.get_args(tp)
    if type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _entity_of(inner[0])
    if dataclasses.is_dataclass(tp):
        return "entity", tp
    if typing.get_origin(tp) is tuple:
        if args and dataclasses.is_dataclass(args[0]):
            return "entities", args[0]
        return "tuple", None
    return "plain", None


def _nullable(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _zero(f: dataclasses.Field, kind: str, sub: type | None) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    if _nullable(f.type):
        return None
    kt = f.metadata.get("kafka_type")
    if kind == "entity":
        return build(sub, {})
    if kind in ("entities", "tuple"):
        return ()
    if kt == "string":
        return ""
    if kt in ("bytes", "records"):
        return b""
    if kt == "bool":
        return False
    if kt == "uuid":
        return uuid.UUID(int=0)
    if kt == "error_code":
        return ErrorCode.none
    if kt in ("timedelta_i32", "timedelta_i64"):
        return datetime.timedelta(0)
    return 0


@lru_cache(maxsize=None)
def _plan(cls: type) -> tuple:
    plan = []
    for f in dataclasses.fields(cls):  # kio's annotations are real types, not strings
        kind, sub = _entity_of(f.type)
        plan.append((f.name, kind, sub, f.metadata.get("kafka_type"), f))
    return tuple(plan)


def _convert(kind: str, sub: type | None, kt: str | None, v: Any) -> Any:
    if v is None:
        return None
    if kind == "entity":
        return v if dataclasses.is_dataclass(v) else build(sub, v)
    if kind == "entities":
        return tuple(x if dataclasses.is_dataclass(x) else build(sub, x) for x in v)
    if kind == "tuple":
        return tuple(v)
    if kt == "error_code":
        return v if isinstance(v, ErrorCode) else ErrorCode(int(v))
    if kt in ("timedelta_i32", "timedelta_i64"):
        return v if isinstance(v, datetime.timedelta) else datetime.timedelta(milliseconds=v)
    if kt == "datetime_i64":
        if isinstance(v, datetime.datetime):
            return v
        return None if v < 0 else datetime.datetime.fromtimestamp(v / 1000, _UTC)
    return v


def build(cls: type, values: dict[str, Any]) -> Any:
    """A kio entity of *cls* from plain *values* (nested dicts and lists for nested
    entities); keys *cls* lacks are dropped, fields not given take their zero."""
    kwargs = {}
    for name, kind, sub, kt, f in _plan(cls):
        if name in values:
            kwargs[name] = _convert(kind, sub, kt, values[name])
        else:
            kwargs[name] = _zero(f, kind, sub)
    return cls(**kwargs)
