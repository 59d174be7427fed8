"""When the storage fails under the exporter: a missing segment, a follower that falls
behind retention, a log that cannot be opened. Each becomes an HTTP answer (or, once a
body is under way, a connection closed before the body ends) and one warning line,
never a traceback (the fixture fails a test whose exporter logged one), and never a
failure of the listing of the other logs (logfs/exporter/errors.py)."""

from __future__ import annotations

import json
import socket
import time

from exporter_helpers import decode_chunked


def _warnings(exporter) -> list[str]:
    return [line for line in exporter.stderr_path.read_text(errors="replace").splitlines()
            if " WARNING " in line]


def _raw_response(exporter, request: bytes, timeout: float = 10.0) -> tuple[bytes, bytes]:
    head, _, body = exporter.raw(request, timeout=timeout).partition(b"\r\n\r\n")
    return head, body


def _wait_access(exporter, path: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in exporter.access_log():
            if entry["path"] == path:
                return entry
        time.sleep(0.02)
    raise AssertionError(f"no access log line for {path}: {exporter.access_log()}")


def test_a_missing_segment_cuts_the_body_short_with_one_line(store, data_dir, exporter):
    store.create_topic("t")
    log = store.create_log("t", "l")
    store.set_log_config("t", "l", {"segment.bytes": "1000"})
    for i in range(40):
        log.append(f"{i:04d}".encode() + b"." * 95 + b"\n")
    assert log.segment_count >= 4
    store.flush_all()  # nothing left for the writer to fsync in the file removed below
    middle = sorted((data_dir / "t" / "l").glob("*.log"))[1]
    inside = int(middle.stem) + 10
    middle.unlink()
    target = f"/t/l?offset={inside}"
    head, body = _raw_response(exporter, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 200 "), head
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    assert len(body) < length, "the body must end early, so the client sees an error"
    entry = _wait_access(exporter, target)
    assert (entry["status"], entry["complete"]) == (200, False), entry
    cut = [line for line in _warnings(exporter) if target in line]
    assert len(cut) == 1 and "cut short" in cut[0] and "missing" in cut[0], cut
    # the listing still shows the log (its figures need no segment data) and the others
    store.create_log("t", "ok").append(b"fine\n")
    status, _h, listing = exporter.get("/")
    assert status == 200
    assert {d["log"] for d in json.loads(listing)["topics"][0]["logs"]} == {"l", "ok"}
    assert exporter.get("/t/ok")[2] == b"fine\n"


def test_a_follower_that_falls_behind_retention_is_cut_off(store, exporter):
    """Retention deletes the segment a slow follower is reading: the stream ends
    without its final chunk (the client must not take it for a complete log), with
    one warning line; the next request gets 416 with the new start."""
    store.create_topic("t")
    log = store.create_log("t", "l")
    store.set_log_config("t", "l", {"segment.bytes": str(1 << 20), "retention.bytes": str(2 << 20)})
    line = b"y" * ((64 << 10) - 1) + b"\n"
    log.append(line)
    with socket.create_connection((exporter.host, exporter.port), timeout=10) as s:
        s.sendall(b"GET /t/l?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        exporter.wait_metric("logfs_exporter_streams_open", lambda v: v == 1)
        for _ in range(64 * 16):  # 64 MiB unread: far more than the socket buffers hold
            log.append(line)
        assert log.start_offset > 32 << 20
        raw = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    data, complete = decode_chunked(body)
    assert not complete, "a follower cut off by retention must not see a complete response"
    assert 0 < len(data) < log.end_offset
    cut = [w for w in _warnings(exporter) if "/t/l?follow=1" in w]
    assert len(cut) == 1 and "cut short" in cut[0], cut
    status, headers, _b = exporter.get("/t/l?offset=0")
    assert status == 416 and headers["logfs-start-offset"] == str(log.start_offset)


def test_a_log_that_cannot_be_opened_is_500_and_left_out_of_listings(store, data_dir, exporter):
    store.create_topic("t")
    for name in ("a", "b", "c"):
        store.create_log("t", name).append(name.encode() + b"\n")
    store.flush_all()
    checkpoint = data_dir / "t" / "b" / "checkpoint"
    checkpoint.unlink()
    checkpoint.mkdir()  # the reader cannot open the log b any more
    status, _h, body = exporter.get("/t/b")
    assert status == 500 and b"storage error" in body, (status, body)
    status, _h, body = exporter.get("/t")
    assert status == 200, (status, body)
    assert [d["log"] for d in json.loads(body)["logs"]] == ["a", "c"]
    status, _h, body = exporter.get("/")
    assert status == 200
    assert [d["log"] for d in json.loads(body)["topics"][0]["logs"]] == ["a", "c"]
    assert exporter.get("/t/c")[2] == b"c\n"
    assert b'log="b"' not in exporter.get("/metrics")[2]
    lines = _warnings(exporter)
    assert len([w for w in lines if "GET /t/b from" in w]) == 1, lines
    assert len([w for w in lines if "left out t/b" in w]) == 2, lines  # GET /t and GET /
    checkpoint.rmdir()  # for the writer's close
