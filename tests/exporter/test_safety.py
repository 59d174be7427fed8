"""What a hostile or broken client cannot do: reach outside DATA, write, send
oversized or endless requests, skip the token, exceed the connection limit. And
what every request leaves behind: one parseable access-log line, metrics."""

from __future__ import annotations

import os
import socket
import time

import pytest

from exporter_helpers import segment_bytes


@pytest.fixture
def orders(store):
    store.create_topic("orders")
    log = store.create_log("orders", "eu")
    for i in range(100):
        log.append(f"order {i}\n".encode())
    return log


def _status(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw[9:12])


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode()


TRAVERSALS = [
    ("/../../etc/passwd", 400),
    ("/orders/../../../etc/passwd", 400),
    ("/%2e%2e/%2e%2e/etc/passwd", 400),
    ("/orders/eu/x/y", 404),  # three segments: not a route at all
    ("/%2e%2e", 400),
    ("/orders/%2E%2E", 400),
    ("/orders/.", 400),
    ("/orders/..%2f..%2fetc", 404),
    ("/%2Fetc%2Fpasswd", 404),
    ("/orders/eu%2f..", 404),
    ("http://localhost/orders/eu", 400),
    ("//etc/passwd", 400),
    ("/orders/eu%00", 400),
    ("/orders/%00", 400),
    ("/etc/passwd", 404),
    ("/.logfs/lock", 404),
    ("/.logfs", 404),
    ("/orders/eu/00000000000000000000.log", 404),
    ("/orders/eu/checkpoint", 404),
    ("/orders/%ff", 400),
    ("/nosuch", 404),
    ("/orders/nosuch", 404),
]


def test_paths_outside_the_logs_are_unreachable(orders, exporter):
    wrong = []
    for target, expect in TRAVERSALS:
        raw = exporter.raw(_get(target))
        if _status(raw) != expect or b"root:" in raw or b"order 0" in raw:
            wrong.append((target, expect, raw[:200]))
    assert not wrong


def test_symlinks_are_not_followed(orders, exporter, data_dir, tmp_path):
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "00000000000000000000.log").write_bytes(b"secret data\n")
    os.symlink(outside, data_dir / "evil")                       # a topic that is a symlink
    os.symlink(outside / "secret", data_dir / "orders" / "leak")  # a log that is a symlink
    os.symlink(data_dir / "orders" / "eu", data_dir / "orders" / "alias")
    for path in ("/evil", "/evil/secret", "/orders/leak", "/orders/alias"):
        status, _h, body = exporter.get(path)
        assert status == 404, (path, body)
        assert b"secret data" not in body
    status, _h, body = exporter.get("/")
    assert b"evil" not in body and b"leak" not in body and b"alias" not in body


def test_other_methods_are_405(orders, exporter, data_dir):
    before = segment_bytes(data_dir, "orders", "eu")
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        raw = exporter.raw(f"{method} /orders/eu HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".encode())
        assert _status(raw) == 405, method
        assert b"\r\nallow: GET, HEAD\r\n" in raw
    assert segment_bytes(data_dir, "orders", "eu") == before


def test_malformed_and_oversized_requests(orders, exporter):
    assert _status(exporter.raw(b"GARBAGE\r\n\r\n")) == 400
    assert _status(exporter.raw(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")) == 400
    assert _status(exporter.raw(b"GET / HTTP/1.1\r\n\r\n")) == 400  # HTTP/1.1 needs Host
    assert _status(exporter.raw(_get("/orders/" + "a" * 10000))) == 414
    assert _status(exporter.raw(_get("/orders/eu?" + "a" * 20000))) == 414
    many = "".join(f"X-H{i}: v\r\n" for i in range(100))
    assert _status(exporter.raw(_get("/orders/eu", many))) == 431
    assert _status(exporter.raw(_get("/orders/eu", "X-Big: " + "b" * 20000 + "\r\n"))) == 431
    assert _status(exporter.raw(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000)) == 413
    assert _status(exporter.raw(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")) == 400
    assert _status(exporter.raw(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")) == 400
    assert _status(exporter.raw(b"GET / HTTP/7.0\r\nHost: x\r\n\r\n")) == 505
    # random bytes never kill it (and never log a traceback: see the fixture)
    import random
    rnd = random.Random(4)
    for _ in range(200):
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
        prefix = rnd.choice([b"", b"GET /", b"GET /orders/eu HTTP/1.1\r\n", b"HEAD / HTTP/1.1\r\nHost: x\r\n"])
        exporter.raw(prefix + junk + b"\r\n\r\n", timeout=2)
    # and it still serves
    status, _h, body = exporter.get("/orders/eu?record=99")
    assert status == 200 and body == b"order 99\n"


def test_idle_and_half_sent_requests_time_out(orders, exporter_factory):
    exporter = exporter_factory("--request-timeout", "1")
    t0 = time.monotonic()
    raw = exporter.raw(b"GET /orders/eu HTTP/1.1\r\nHost: x\r\n", timeout=5)  # never finished
    assert _status(raw) == 408 and 0.9 < time.monotonic() - t0 < 3
    t0 = time.monotonic()
    assert exporter.raw(b"", timeout=5) == b""  # says nothing: closed without a word
    assert time.monotonic() - t0 < 3
    # a slow drip of header bytes does not extend the deadline
    import select
    with socket.create_connection((exporter.host, exporter.port), timeout=5) as s:
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        answer = b""
        while time.monotonic() - t0 < 4:
            if select.select([s], [], [], 0.1)[0]:
                answer = s.recv(4096)
                break
            s.sendall(b"X-Drip: 1\r\n")
        elapsed = time.monotonic() - t0
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert elapsed < 2.5, elapsed
    assert exporter.metrics()["logfs_exporter_timeouts_total"] >= 2


def test_token_auth(orders, exporter_factory, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-t0ken\n")
    exporter = exporter_factory("--token-file", str(token_file))
    status, headers, _b = exporter.get("/orders/eu")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    for bad in ("Bearer wrong", "Bearer s3cr3t-t0ke", "Bearer s3cr3t-t0ken-and-more", "Basic s3cr3t-t0ken",
                "s3cr3t-t0ken"):
        status, _h, body = exporter.get("/orders/eu", {"Authorization": bad})
        assert status == 401, bad
        assert b"order" not in body
    assert exporter.get("/metrics")[0] == 401
    assert exporter.get("/")[0] == 401
    good = {"Authorization": "Bearer s3cr3t-t0ken"}
    status, _h, body = exporter.get("/orders/eu?record=99", good)
    assert status == 200 and body == b"order 99\n"
    import subprocess
    out = subprocess.run(["curl", "-sS", "-H", "Authorization: Bearer s3cr3t-t0ken",
                          f"{exporter.url}/orders/eu?last=1"], capture_output=True, timeout=10).stdout
    assert out == b"order 99\n"
    assert exporter.metrics(good)['logfs_exporter_requests_total{method="GET",code="401"}'] >= 8


def test_past_max_connections_new_clients_get_503(orders, exporter_factory):
    exporter = exporter_factory("--max-connections", "3")
    held = []
    try:
        for _ in range(3):
            s = socket.create_connection((exporter.host, exporter.port), timeout=5)
            s.sendall(_get("/orders/eu?follow=1"))
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            held.append(s)
        raw = exporter.raw(_get("/orders/eu"))
        assert _status(raw) == 503 and b"retry-after: 1" in raw.lower()
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            raw = exporter.raw(_get("/orders/eu?record=99"))
            if _status(raw) == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert _status(raw) == 200 and raw.endswith(b"order 99\n")
    finally:
        for s in held:
            s.close()


def test_one_access_log_line_per_request(orders, exporter):
    exporter.get("/orders/eu")
    exporter.get("/orders/eu", {"Range": "bytes=0-9"})
    exporter.get("/nosuch")
    exporter.raw(b"POST /orders/eu HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    deadline = time.monotonic() + 5
    while len(exporter.access_log()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = exporter.access_log()
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/orders/eu", 200), ("GET", "/orders/eu", 206), ("GET", "/nosuch", 404),
        ("POST", "/orders/eu", 405)]
    assert lines[0]["bytes"] == orders.end_offset and lines[1]["bytes"] == 10
    for e in lines:
        assert set(e) >= {"ts", "client", "method", "path", "status", "bytes", "duration_ms"}
        assert e["duration_ms"] >= 0


def test_metrics_are_prometheus_text(orders, exporter):
    exporter.get("/orders/eu")
    status, headers, body = exporter.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for name in ("logfs_exporter_requests_total", "logfs_exporter_body_bytes_sent_total",
                 "logfs_exporter_sendfile_calls_total", "logfs_exporter_streams_open",
                 "logfs_exporter_connections_open", "logfs_log_end_offset"):
        assert f"# TYPE {name} " in text
    m = exporter.metrics()
    assert m['logfs_exporter_requests_total{method="GET",code="200"}'] >= 1
    assert m["logfs_exporter_body_bytes_sent_total"] >= orders.end_offset
    assert m['logfs_log_end_offset{topic="orders",log="eu"}'] == orders.end_offset
