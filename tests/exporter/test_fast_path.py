"""The exporter's fast path (logfs/exporter/fastpath.py, _fastpath.c): the strict
head parser agrees with h11 on every head it takes; over real sockets the fast path
answers exactly what the trio path answers (LOGFS_EXPORTER_FASTPATH=0), byte for
byte, keep-alive, pipelined and handed over mid-connection; heads that arrive in
pieces, clients that vanish mid-body and the counters in /metrics."""

from __future__ import annotations

import socket
import struct
import time

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter_helpers import segment_bytes
from logfs.exporter.fastpath import parse_simple_head

OFF = {"LOGFS_EXPORTER_FASTPATH": "0"}


def _h11(head: bytes):
    """(method, version, target, headers) as h11 reads *head*, or None if it refuses it."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(event, h11.Request):
        return None
    return event.method, event.http_version, event.target, list(event.headers)


CURL = (b"GET /orders/eu?offset=10 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
HTTP_CLIENT = b"GET /orders/eu HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept-Encoding: identity\r\n\r\n"


@pytest.mark.parametrize("head", [
    CURL, HTTP_CLIENT,
    b"GET /t/l HTTP/1.1\r\nhost:x\r\nRange: bytes=0-9\r\n\r\n",
    b"GET /t/l HTTP/1.1\r\nHost: \t x \t\r\nX-Empty:\r\nX-Inner:  a \t b\r\n\r\n",
    b"GET /t/l HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xe9\r\nAuthorization: Bearer t0k\r\n\r\n",
])
def test_the_heads_it_takes_read_as_h11_reads_them(head):
    parsed = parse_simple_head(head)
    assert parsed is not None
    assert _h11(head) == (b"GET", b"1.1", parsed[0], parsed[1])


@pytest.mark.parametrize("head", [
    CURL.replace(b"GET", b"HEAD", 1),
    CURL.replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    CURL.replace(b"GET ", b"get ", 1),
    CURL.replace(b"GET ", b"GET  ", 1),
    CURL.replace(b"Accept: */*", b"Connection: close"),
    CURL.replace(b"Accept: */*", b"connection: keep-alive"),
    CURL.replace(b"Accept: */*", b"Content-Length: 0"),
    CURL.replace(b"Accept: */*", b"Transfer-Encoding: chunked"),
    CURL.replace(b"Accept: */*", b"Expect: 100-continue"),
    CURL.replace(b"Accept: */*", b"Host: y"),                # two Hosts
    CURL.replace(b"Host: 127.0.0.1:8080\r\n", b""),         # none
    CURL.replace(b"Accept: */*", b"Accept: */*\r\n folded"),  # obs-fold
    CURL.replace(b"Accept: */*", b"Accept : */*"),
    CURL.replace(b"Accept: */*", b"Acc ept: */*"),
    CURL.replace(b"Accept: */*", b"Accept: a\x00b"),
    CURL.replace(b"Accept: */*", b"Accept: a\x7fb"),
    CURL.replace(b"\r\n", b"\n"),
    CURL.replace(b"/orders/eu?offset=10", b"http://x/orders/eu"),
    CURL[:-2],
])
def test_everything_else_is_left_to_h11(head):
    assert parse_simple_head(head) is None


def _mostly(valid: list[bytes], odd: list[bytes]):
    """One of *valid* most of the time (so that many heads are ones the fast path
    takes), else one of *odd*."""
    return st.sampled_from(valid * (4 * len(odd)) + odd)


_line_parts = st.tuples(
    _mostly([b"GET"], [b"HEAD", b"get", b"POST"]),
    _mostly([b" "], [b"  ", b"\t"]),
    _mostly([b"/t/l", b"/t/l?offset=5", b"/"], [b"/a%20b", b"*", b"/\x80", b"/a b", b""]),
    _mostly([b" "], [b"  "]),
    _mostly([b"HTTP/1.1"], [b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "]),
    _mostly([b"\r\n"], [b"\n"]),
).map(b"".join)
_field = st.tuples(
    _mostly([b"Range", b"Accept", b"X-A", b"User-Agent"],
            [b"Host", b"host", b"HOST", b"Connection", b"Content-Length", b"Transfer-Encoding",
             b"Expect", b"X A", b"", b"X\x80", b" Host", b"X@"]),
    _mostly([b":", b": "], [b":\t", b" :", b":  \t "]),
    st.lists(_mostly([b"a", b"*/*", b" ", b"0", b"bytes=0-9", b","],
                     [b"\t", b"\x80", b"\x00", b"\x7f", b"\r", b"close"]), max_size=5).map(b"".join),
    _mostly([b""], [b" ", b"\t"]),
    _mostly([b"\r\n"], [b"\n", b"\r\n folded\r\n"]),
).map(b"".join)
_host = _mostly([b"Host: x\r\n", b"host:127.0.0.1:80\r\n"], [b"", b"Host: x\r\nHost: y\r\n", b"Host:\r\n"])
_heads = st.tuples(_line_parts, st.lists(_field, max_size=3).map(b"".join), _host,
                   st.lists(_field, max_size=3).map(b"".join),
                   _mostly([b"\r\n"], [b"\n"])).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(_heads)
def test_whatever_it_takes_h11_reads_the_same(head):
    parsed = parse_simple_head(head)
    if parsed is not None:
        assert _h11(head) == (b"GET", b"1.1", parsed[0], parsed[1])


# -- over sockets -------------------------------------------------------------------

@pytest.fixture
def orders(store):
    """About 30 KB of lines over several 4 KiB segments (the body is several slices)."""
    store.create_topic("orders")
    log = store.create_log("orders", "eu")
    for i in range(2000):
        log.append(f"order {i:05d}\n".encode())
    return log


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n{extra}\r\n".encode()


def _fast(exporter) -> float:
    return exporter.metrics()["logfs_exporter_fast_path_responses_total"]


def test_the_fast_path_answers_as_the_trio_path_byte_for_byte(orders, data_dir, exporter_factory):
    fast = exporter_factory()
    trio_only = exporter_factory(env=OFF)
    # fixed spans first (the fast path's), then what it hands over with the rest of the
    # pipeline (HEAD): from there the trio path answers that connection
    pipeline = b"".join([
        _get("/orders/eu"),
        _get("/orders/eu", "Range: bytes=100-4199\r\n"),
        _get("/orders/eu?record=1999"),
        _get("/orders/eu?offset=4096"),
        b"HEAD /orders/eu HTTP/1.1\r\nHost: x\r\n\r\n",
        _get("/orders/eu?record=7"),
        _get("/nosuch"),
        _get("/orders/eu?last=2", "Connection: close\r\n"),
    ])
    answers = [exp.raw(pipeline, timeout=10) for exp in (fast, trio_only)]
    assert answers[0] == answers[1]
    raw = answers[0]
    assert raw.count(b"HTTP/1.1 ") == 8, raw[:300]
    whole = segment_bytes(data_dir, "orders", "eu")
    assert len(whole) == orders.end_offset
    first = raw.split(b"\r\n\r\n", 1)
    assert first[0].startswith(b"HTTP/1.1 200 ") and first[1].startswith(whole)
    assert whole[100:4200] in raw and b"order 01999\n" in raw and whole[4096:] in raw
    assert raw.endswith(b"order 01998\norder 01999\n")
    assert _fast(fast) == 4 and _fast(trio_only) == 0
    # keep-alive: one connection, requests one after another, all on the fast path
    with socket.create_connection((fast.host, fast.port), timeout=5) as s:
        for i in (3, 1500, 42):
            s.sendall(_get("/orders/eu", f"Range: bytes={12 * i}-{12 * i + 11}\r\n"))
            want = f"order {i:05d}\n".encode()
            got = b""
            while not got.endswith(want):
                chunk = s.recv(65536)
                assert chunk, got
                got += chunk
            assert got.startswith(b"HTTP/1.1 206 ") and b"content-length: 12\r\n" in got
    assert _fast(fast) == 7
    # the same access log lines, but for time, duration and the client's port
    logs = [[{k: v for k, v in e.items() if k not in ("ts", "duration_ms", "client")}
             for e in exp.access_log() if e["path"] != "/metrics"] for exp in (fast, trio_only)]
    assert len(logs[0]) == 11 and logs[0][:8] == logs[1]
    assert logs[0][0] == {"method": "GET", "path": "/orders/eu", "status": 200,
                          "bytes": orders.end_offset, "complete": True}
    assert [e["status"] for e in logs[0]] == [200, 206, 200, 200, 200, 200, 404, 200, 206, 206, 206]


def test_a_head_in_pieces_and_a_pause_between_requests(orders, exporter):
    head = _get("/orders/eu", "Range: bytes=60-71\r\n")
    with socket.create_connection((exporter.host, exporter.port), timeout=5) as s:
        for i in range(0, len(head), 7):
            s.sendall(head[i:i + 7])
            time.sleep(0.01)
        got = b""
        while not got.endswith(b"order 00005\n"):
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 206 ")
        time.sleep(0.3)
        s.sendall(_get("/orders/eu?record=1999", "Connection: close\r\n"))  # handed over
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
        assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(b"\r\n\r\norder 01999\n")
    assert _fast(exporter) == 1


def test_a_client_gone_mid_body_is_logged_incomplete_and_counted(store, exporter):
    store.create_topic("big")
    store.set_topic_config("big", {"segment.bytes": str(64 << 20)})
    log = store.create_log("big", "b")
    chunk = b"x" * 1023 + b"\n"
    for _ in range(8 * 1024):  # 8 MiB in one segment
        log.append(chunk)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((exporter.host, exporter.port))
    s.sendall(_get("/big/b"))
    assert s.recv(100).startswith(b"HTTP/1.1 200 ")
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
    s.close()
    deadline = time.monotonic() + 5
    while not exporter.access_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    [entry] = exporter.access_log()
    assert entry["path"] == "/big/b" and entry["complete"] is False
    assert 0 < entry["bytes"] < log.end_offset
    m = exporter.metrics()
    assert m["logfs_exporter_fast_path_responses_total"] == 1
    assert m["logfs_exporter_body_bytes_sent_total"] == entry["bytes"]
    assert m["logfs_exporter_connections_open"] == 1  # this /metrics request's own
    # and the next client is served in full
    status, _h, body = exporter.get("/big/b", {"Range": "bytes=0-2047"})
    assert status == 206 and body == chunk * 2


def test_metrics_count_what_both_paths_did(orders, exporter):
    before = exporter.metrics()
    for _ in range(5):
        assert exporter.get("/orders/eu")[0] == 200          # fast
    assert exporter.request("HEAD", "/orders/eu")[0] == 200  # trio
    m = exporter.metrics()
    assert m["logfs_exporter_fast_path_responses_total"] - before["logfs_exporter_fast_path_responses_total"] == 5
    assert m["logfs_exporter_body_bytes_sent_total"] - before["logfs_exporter_body_bytes_sent_total"] == \
        5 * orders.end_offset
    assert m["logfs_exporter_connections_total"] - before["logfs_exporter_connections_total"] == 7
    assert m['logfs_exporter_requests_total{method="GET",code="200"}'] - \
        before.get('logfs_exporter_requests_total{method="GET",code="200"}', 0) == 6  # and one /metrics
    assert m['logfs_exporter_requests_total{method="HEAD",code="200"}'] == 1
    assert m["logfs_exporter_sendfile_calls_total"] >= 5
