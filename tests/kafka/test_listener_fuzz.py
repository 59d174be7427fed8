"""The listener never dies for a client's bytes (docs/kafka.md "Limits and bad
input"): random frames, truncated frames, huge and negative size prefixes, valid
headers with garbage bodies, well-framed Produce requests carrying corrupt record
batches (the C decoder's input), and many connections opened and dropped. After each
example the same `logfs kafka` process still answers ApiVersions v0 and v3 correctly
on a new connection, and its log has no new ERROR or Traceback (one warning line per
refused connection is expected)."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_kit import (api_versions_request, bad_log_lines, check_api_versions, ck_produce,
                       frame, read_response)

API_KEYS = [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 32, 42]


@pytest.fixture(scope="module")
def fuzzed(module_listener):
    ck_produce(module_listener.bootstrap, "fz", ["seed"], 0)  # something to fetch and list
    return module_listener


# ---------------------------------------------------------------- what is sent

def header(key: int, version: int, corr: int, client: bytes | None) -> bytes:
    if client is None:
        return struct.pack(">hhih", key, version, corr, -1)
    return struct.pack(">hhih", key, version, corr, len(client)) + client


def record_batch(attrs: int, count: int, body: bytes, base_seq: int, fix_crc: bool,
                 length_delta: int) -> bytes:
    """A RecordBatch v2 whose records section is *body* (garbage or half-valid), with
    its CRC right unless told otherwise."""
    tail = struct.pack(">hiqqqhii", attrs, max(count - 1, 0), 0, 0, -1, -1, base_seq, count)
    crc = crc32c(tail + body) if fix_crc else 0xDEADBEEF
    length = 49 + len(body) + length_delta
    return struct.pack(">qiibI", 0, length, 0, 2, crc) + tail + body


def produce_request(corr: int, records: bytes, topic: bytes = b"fz", partition: int = 0) -> bytes:
    """Produce v3 (acks=1) of *records* to *topic*/*partition*."""
    body = struct.pack(">h", -1) + struct.pack(">hi", 1, 2000)
    body += struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic
    body += struct.pack(">i", 1) + struct.pack(">i", partition)
    body += struct.pack(">i", len(records)) + records
    return frame(header(0, 3, corr, b"fuzz") + body)


def varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def record(value: bytes | None, key_len: int, headers: int, length_delta: int) -> bytes:
    inner = b"\0" + varint(0) + varint(0) + varint(key_len) + b"k" * max(key_len, 0)
    inner += varint(-1) if value is None else varint(len(value)) + value
    inner += varint(headers)
    return varint(len(inner) + length_delta) + inner


random_frame = st.binary(max_size=400).map(lambda b: ("raw", b))
size_prefix = st.tuples(st.integers(-(2**31), 2**31 - 1), st.binary(max_size=64)).map(
    lambda t: ("raw", struct.pack(">i", t[0]) + t[1]))
garbage_body = st.tuples(
    st.sampled_from(API_KEYS) | st.integers(-(2**15), 2**15 - 1),
    st.integers(-2, 14), st.integers(-(2**31), 2**31 - 1),
    st.none() | st.binary(max_size=20), st.binary(max_size=300),
).map(lambda t: ("raw", frame(header(t[0], t[1], t[2], t[3]) + t[4])))
truncated = st.tuples(
    st.sampled_from([api_versions_request(1, 0), api_versions_request(2, 3),
                     produce_request(3, record_batch(0, 1, record(b"v", 0, 0, 0), -1, True, 0))]),
    st.floats(0, 1, exclude_max=True),
).map(lambda t: ("raw", t[0][: int(len(t[0]) * t[1])]))
corrupt_batch = st.builds(
    lambda attrs, count, recs, junk, seq, fix, delta, mode: (
        "raw", produce_request(9, record_batch(attrs, count, junk if mode else b"".join(recs),
                                               seq, fix, delta))),
    st.just(0) | st.integers(0, 0x7F),                    # attributes: codec bits, flags
    st.integers(0, 4) | st.integers(-3, 6),              # record count (right, then any)
    st.lists(st.builds(record,
                       st.none() | st.binary(max_size=12).filter(lambda b: b"\n" not in b),
                       st.just(0) | st.integers(-2, 3), st.just(0) | st.integers(-1, 2),
                       st.just(0) | st.integers(-3, 3)), max_size=4),
    st.binary(max_size=120), st.integers(-2, 5),
    st.just(True) | st.booleans(),                       # CRC right (mostly)
    st.just(0) | st.integers(-8, 8),                     # batch length right (mostly)
    st.booleans())                                       # records half-valid, or junk
connections = st.tuples(st.integers(1, 40), st.booleans(), st.binary(max_size=8)).map(
    lambda t: ("conns",) + t)
actions = st.lists(random_frame | size_prefix | garbage_body | truncated | corrupt_batch
                   | connections, min_size=1, max_size=4)


# ---------------------------------------------------------------- how it is sent

def _rst(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def send_and_drop(host: str, port: int, data: bytes, reset: bool) -> None:
    with socket.create_connection((host, port), timeout=2) as s:
        try:
            s.sendall(data)
            s.settimeout(0.01)  # let the listener take it in and answer (or close)
            while s.recv(65536):
                pass
        except OSError:
            pass
        if reset:
            _rst(s)


def many(host: str, port: int, n: int, reset: bool, prefix: bytes) -> None:
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection((host, port), timeout=2)
            socks.append(s)
            if prefix:
                s.sendall(prefix)
    finally:
        for i, s in enumerate(socks):
            if reset and i % 2:
                _rst(s)
            s.close()


def new_problems(listener, seen: int) -> tuple[list[str], int]:
    text = listener.stderr()
    return bad_log_lines(text[seen:]), len(text)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=actions, reset=st.booleans())
def test_listener_survives_bad_bytes(fuzzed, plan, reset):
    host, port = fuzzed.host, fuzzed.port
    seen = len(fuzzed.stderr())
    for action in plan:
        if action[0] == "raw":
            send_and_drop(host, port, action[1], reset)
        else:
            _, n, rst, prefix = action
            many(host, port, n, rst, prefix)
    assert fuzzed.alive(), f"logfs kafka died: {fuzzed.stderr()[-3000:]}"
    check_api_versions(host, port, 0)
    check_api_versions(host, port, 3)
    bad, _ = new_problems(fuzzed, seen)
    assert not bad, "\n".join(bad[:10])


def test_listener_still_serves_clients_after_fuzz(fuzzed):
    """Runs after the fuzz (same module listener): real clients still work, the
    process is alive and its log never had a Traceback."""
    from kafka_kit import ck_consume, offsets_values
    t0 = time.monotonic()
    ck_produce(fuzzed.bootstrap, "after-fuzz", ["ok"], 0)
    assert offsets_values(ck_consume(fuzzed.bootstrap, "after-fuzz", 0, 0, 1)) == [(0, "ok")]
    assert time.monotonic() - t0 < 10
    assert fuzzed.alive()
    assert "Traceback" not in fuzzed.stderr()


def test_oversized_frame_closes_only_that_connection(fuzzed):
    """A 2 GiB size prefix: that connection is closed at once (no 2 GiB buffer),
    with one log line; a connection opened before it keeps working."""
    host, port = fuzzed.host, fuzzed.port
    with socket.create_connection((host, port), timeout=5) as keep:
        keep.settimeout(5)
        with socket.create_connection((host, port), timeout=5) as bad:
            bad.settimeout(5)
            bad.sendall(struct.pack(">i", 2**31 - 1) + b"\0" * 100)
            assert bad.recv(10) == b""  # closed by the listener
        keep.sendall(api_versions_request(42, 0))
        from kafka_kit import read_response
        assert struct.unpack_from(">ih", read_response(keep)) == (42, 0)
    assert "request of 2147483647 bytes" in fuzzed.stderr()


def test_unknown_api_key_log_line_makes_sense(fuzzed):
    with socket.create_connection((fuzzed.host, fuzzed.port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(frame(header(77, 0, 1, b"fuzz")))
        assert s.recv(10) == b""  # closed
    time.sleep(0.1)
    (line,) = [x for x in fuzzed.stderr().splitlines() if "API key 77" in x][-1:]
    assert "--1" not in line and "not one logfs answers" in line, line


def test_api_versions_v3_has_no_optional_tagged_fields_and_every_api_from_v0(fuzzed):
    """kcat 1.7 (librdkafka 2.0.2) fails with "Read underflow" on tagged fields in the
    v3 answer, and librdkafka turns features on only when whole ranges from v0 are
    advertised (Produce 3, Fetch 4, OffsetCommit 1-2...)."""
    with socket.create_connection((fuzzed.host, fuzzed.port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(api_versions_request(7, 3))
        body = read_response(s)
    keys = check_api_versions(fuzzed.host, fuzzed.port, 3)
    # correlation id, error, compact array of (key, min, max, no tags), throttle, no tags
    assert len(body) == 4 + 2 + 1 + 7 * len(keys) + 4 + 1, body.hex()
    assert body[-1] == 0 and all(body[7 + 7 * i + 6] == 0 for i in range(len(keys)))
    assert all(lo == 0 for lo, _hi in keys.values()), keys
    for key, least in ((0, 7), (1, 11), (3, 9), (8, 2), (9, 1), (10, 0), (11, 0), (22, 0)):
        assert keys[key][1] >= least, (key, keys[key])


def test_api_versions_above_ours_gets_error_35_and_a_v0_body(fuzzed):
    """KIP-511: a client that asks ApiVersions in a newer version than the broker's
    gets UNSUPPORTED_VERSION with the v0 answer's layout, and then asks again."""
    with socket.create_connection((fuzzed.host, fuzzed.port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(api_versions_request(99, 9))  # a version no broker has
        body = read_response(s)
        corr, err, n = struct.unpack_from(">ihi", body)
        assert (corr, err) == (99, 35), (corr, err)
        keys = {struct.unpack_from(">h", body, 10 + 6 * i)[0] for i in range(n)}
        assert len(body) == 10 + 6 * n and {0, 1, 3, 18} <= keys
        s.sendall(api_versions_request(100, 3))  # the same connection goes on
        assert struct.unpack_from(">ih", read_response(s)) == (100, 0)
