"""Reading logs over HTTP: listings, whole bodies, ranges, 416, and the start/end
selectors (offset, record, since, last, until), against the segment files on disk
and positions known from the writer."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

from exporter_helpers import START_MS, segment_bytes


def _fill(store, clock, topic="orders", name="eu", n=500, step_ms=1000):
    """n lines of varied length, one append each, the clock advancing step_ms per
    line. Returns [(offset, time_ms, line)]."""
    if topic not in store.topics():
        store.create_topic(topic)
    log = store.create_log(topic, name)
    written = []
    for i in range(n):
        line = (f'{{"id":{i},"pad":"' + "x" * (i % 37) + '"}\n').encode()
        pos = log.append(line)
        written.append((pos, clock.now_ms(), line))
        clock.advance(step_ms)
    return log, written


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def test_index_lists_topics_and_logs(store, clock, exporter):
    log, _ = _fill(store, clock, n=200)
    store.create_topic("empty")
    status, headers, body = exporter.get("/")
    assert status == 200 and headers["content-type"] == "application/json"
    listing = json.loads(body)
    topics = {t["topic"]: t["logs"] for t in listing["topics"]}
    assert topics["empty"] == []
    (eu,) = topics["orders"]
    assert eu["log"] == "eu"
    assert (eu["start_offset"], eu["end_offset"], eu["records"]) == (0, log.end_offset, 200)
    assert eu["segments"] == log.segment_count and eu["segments"] > 1
    assert eu["last_append_ms"] == log.last_append_ms
    status, _h, body = exporter.get("/orders")
    assert status == 200 and json.loads(body)["logs"][0]["end_offset"] == log.end_offset


def test_full_body_is_the_segment_files_byte_for_byte(store, clock, exporter, data_dir):
    log, written = _fill(store, clock, n=2000)
    assert log.segment_count >= 10
    on_disk = segment_bytes(data_dir, "orders", "eu")
    assert on_disk == b"".join(w[2] for w in written)
    status, headers, body = exporter.get("/orders/eu")
    assert status == 200
    assert body == on_disk
    assert int(headers["content-length"]) == len(on_disk)
    assert headers["logfs-start-offset"] == "0" and headers["logfs-end-offset"] == str(len(on_disk))
    # and with curl, as a user would
    out = subprocess.run(["curl", "-sS", "--fail", f"{exporter.url}/orders/eu"], capture_output=True,
                         timeout=30, check=True).stdout
    assert out == on_disk


def test_ranges_inside_and_across_segments(store, clock, exporter, data_dir):
    log, _ = _fill(store, clock, n=800)
    data = segment_bytes(data_dir, "orders", "eu")
    bases = [s.base for s in log.segments()]
    assert len(bases) >= 4
    end = len(data)
    cases = [(0, 0), (10, 99), (bases[1] - 5, bases[1] + 5), (bases[1], bases[3] + 17),
             (bases[2] + 1, end - 1), (end - 1, end - 1), (5, end + 1000)]
    for a, b in cases:
        status, headers, body = exporter.get("/orders/eu", {"Range": f"bytes={a}-{b}"})
        last = min(b, end - 1)
        assert status == 206, (a, b, body)
        assert body == data[a:last + 1], (a, b)
        assert headers["content-range"] == f"bytes {a}-{last}/{end}"
        assert int(headers["content-length"]) == last + 1 - a
    status, headers, body = exporter.get("/orders/eu", {"Range": f"bytes={bases[2] - 3}-"})
    assert status == 206 and body == data[bases[2] - 3:]
    status, headers, body = exporter.get("/orders/eu", {"Range": "bytes=-100"})
    assert status == 206 and body == data[-100:]
    assert headers["content-range"] == f"bytes {end - 100}-{end - 1}/{end}"
    # beyond the end: 416 with the complete length
    status, headers, body = exporter.get("/orders/eu", {"Range": f"bytes={end}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{end}"
    # a range crossing segments with curl -r
    a, b = bases[1] - 3, bases[2] + 3
    out = subprocess.run(["curl", "-sS", "-r", f"{a}-{b}", f"{exporter.url}/orders/eu"],
                         capture_output=True, timeout=30, check=True).stdout
    assert out == data[a:b + 1]


def test_416_below_the_start_after_retention(store, clock, exporter, data_dir):
    log, written = _fill(store, clock, n=800)
    end = log.end_offset
    store.set_log_config("orders", "eu", {"retention.bytes": "10000"})
    store.run_maintenance()
    start = log.start_offset
    assert start > 0, "retention should have removed segments"
    data = segment_bytes(data_dir, "orders", "eu")
    assert len(data) == end - start
    # the whole log now starts at `start`
    status, headers, body = exporter.get("/orders/eu")
    assert status == 200 and body == data
    assert headers["logfs-start-offset"] == str(start) and headers["logfs-offset"] == str(start)
    # a range below the start: 416, and it says where data begins
    status, headers, body = exporter.get("/orders/eu", {"Range": f"bytes={start - 1}-{start + 10}"})
    assert status == 416
    assert headers["content-range"] == f"bytes */{end}"
    assert headers["logfs-start-offset"] == str(start)
    assert f"data begins at offset {start}" in body.decode()
    # the first retained byte is fine
    status, _h, body = exporter.get("/orders/eu", {"Range": f"bytes={start}-{start + 9}"})
    assert status == 206 and body == data[:10]
    # offset and record below the start: 416 too
    status, headers, _b = exporter.get(f"/orders/eu?offset={start - 1}")
    assert status == 416 and headers["logfs-start-offset"] == str(start)
    status, _h, body = exporter.get("/orders/eu?record=0")
    assert status == 416 and str(log.start_record) in body.decode()
    # curl shows the 416
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-r", "0-10",
                          f"{exporter.url}/orders/eu"], capture_output=True, timeout=30).stdout
    assert out == b"416"


def test_offset_record_last_select_the_start(store, clock, exporter, data_dir):
    log, written = _fill(store, clock, n=600)
    data = segment_bytes(data_dir, "orders", "eu")
    for i in (0, 1, 99, 300, 599):
        pos = written[i][0]
        status, headers, body = exporter.get(f"/orders/eu?record={i}")
        assert status == 200 and body == data[pos:], i
        assert headers["logfs-offset"] == str(pos)
        status, _h, body = exporter.get(f"/orders/eu?offset={pos + 3}")
        assert status == 200 and body == data[pos + 3:]
    status, _h, body = exporter.get("/orders/eu?record=600")
    assert status == 200 and body == b""
    status, _h, body = exporter.get("/orders/eu?last=3")
    assert body == b"".join(w[2] for w in written[-3:])
    status, _h, body = exporter.get("/orders/eu?last=0")
    assert status == 200 and body == b""
    status, _h, body = exporter.get("/orders/eu?last=100000")
    assert body == data
    status, _h, _b = exporter.get(f"/orders/eu?offset={len(data) + 1}")
    assert status == 416


def test_since_and_until_read_a_time_window(store, clock, exporter, data_dir):
    log, written = _fill(store, clock, n=400, step_ms=1000)
    data = segment_bytes(data_dir, "orders", "eu")
    for i in (0, 1, 57, 200, 399):
        t = written[i][1]
        for form in (str(t), _iso(t)):
            status, headers, body = exporter.get(f"/orders/eu?since={form}")
            assert status == 200
            first = int(headers["logfs-offset"])
            # the record appended at t is included; the core may start up to one
            # index interval early (here: one append)
            assert written[max(0, i - 1)][0] <= first <= written[i][0], (i, form, first)
            assert body == data[first:]
    # a window: since t(100) until t(199) holds records 100..199
    t_a, t_b = written[100][1], written[199][1]
    status, headers, body = exporter.get(f"/orders/eu?since={_iso(t_a)}&until={_iso(t_b)}")
    assert status == 200
    lines = body.splitlines(keepends=True)
    expect = [w[2] for w in written[100:200]]
    assert lines[-100:] == expect and len(lines) <= 101
    # until alone: everything up to t(i), and nothing of t(i+1) (every append is
    # indexed here), in every segment
    assert log.segment_count >= 3
    for i in list(range(0, 400, 37)) + [399]:
        status, _h, body = exporter.get(f"/orders/eu?until={written[i][1]}")
        assert body == b"".join(w[2] for w in written[:i + 1]), i
    status, _h, body = exporter.get(f"/orders/eu?until={written[0][1] - 1}")
    assert status == 200 and body == b""
    # durations are relative to the exporter's clock (now); START_MS is in the past, so
    # since=1m gives at most the last record (the core starts one index entry early)
    # and since=3650d everything
    assert START_MS + 400_000 < datetime.now(timezone.utc).timestamp() * 1000
    status, _h, body = exporter.get("/orders/eu?since=1m")
    assert status == 200 and body in (b"", written[-1][2])
    status, _h, body = exporter.get("/orders/eu?since=3650d")
    assert body == data


def test_since_in_a_quiet_gap_starts_at_the_first_record_after_it(store, clock, exporter):
    """Writes of many records each, a quiet spell, more writes: ?since= a time inside
    the quiet spell starts exactly at the first record written after it (issue 9),
    as does a curl of it."""
    store.create_topic("gap")
    log = store.create_log("gap", "l")
    store.set_log_config("gap", "l", {"index.interval.bytes": "4096", "segment.bytes": str(1 << 20)})
    write = b"".join(b"%063d\n" % i for i in range(1000))
    for _ in range(5):
        log.append(write)
        clock.advance(2)
    t = clock.now_ms() + 1200
    clock.set(t + 200)
    second_half = log.end_offset
    for _ in range(5):
        log.append(write)
        clock.advance(2)
    status, headers, body = exporter.get(f"/gap/l?since={t}")
    assert status == 200
    assert len(body) == log.end_offset - second_half, \
        f"since= started {log.end_offset - second_half - len(body)} bytes early"
    curl = subprocess.run(["curl", "-s", f"{exporter.url}/gap/l?since={_iso(t)}"], capture_output=True,
                          timeout=30)
    assert curl.stdout == body == write * 5


def test_head_gives_the_same_headers_without_a_body(store, clock, exporter):
    log, _ = _fill(store, clock, n=100)
    status, headers, body = exporter.request("HEAD", "/orders/eu")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == log.end_offset
    status, headers, _b = exporter.request("HEAD", "/orders/eu", {"Range": "bytes=10-19"})
    assert status == 206 and headers["content-length"] == "10"


def test_keep_alive_serves_several_requests_on_one_connection(store, clock, exporter):
    import http.client
    log, _ = _fill(store, clock, n=100)
    conn = http.client.HTTPConnection(exporter.host, exporter.port, timeout=10)
    try:
        for i in range(5):
            conn.request("GET", f"/orders/eu?record={i}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and len(body) == log.end_offset - log.record_position(i)
    finally:
        conn.close()


def test_bad_queries_are_400(store, clock, exporter):
    _fill(store, clock, n=10)
    for q in ("offset=x", "record=-1", "since=yesterday", "offset=1&record=2", "bogus=1",
              "offset=1&offset=2", "follow=maybe", "last=1e3"):
        status, _h, body = exporter.get(f"/orders/eu?{q}")
        assert status == 400, (q, body)
    status, _h, _b = exporter.get("/orders/eu?follow=1", {"Range": "bytes=1-2"})
    assert status == 400


def test_several_ranges_are_ignored_the_whole_log_is_200(store, clock, exporter, data_dir):
    """RFC 9110 (section 14.2): a server may ignore Range; the exporter does not serve
    multipart/byteranges, so it answers a request for several ranges with 200 and the
    whole body, as if there were no Range (not 400)."""
    log, _ = _fill(store, clock, n=100)
    expect = segment_bytes(data_dir, "orders", "eu")
    for value in ("bytes=1-2,5-6", "bytes=0-0, -1"):
        status, headers, body = exporter.get("/orders/eu", {"Range": value})
        assert status == 200, (value, body[:200])
        assert body == expect and "content-range" not in headers
        assert int(headers["content-length"]) == log.end_offset
    curl = subprocess.run(["curl", "-s", "-w", "%{http_code}", "-r", "1-2,5-6",
                           f"{exporter.url}/orders/eu"], capture_output=True, timeout=30)
    assert curl.stdout == expect + b"200"
    # with a start selector: the selector decides, the ranges are still ignored
    status, _h, body = exporter.get("/orders/eu?record=10", {"Range": "bytes=1-2,5-6"})
    assert status == 200 and body == expect[log.record_position(10):]


def test_since_stays_precise_while_the_log_grows(store, clock, exporter):
    """The exporter opened the log early; the writer then appended much more. A
    ``since`` still starts within one index entry of the asked time."""
    log, written = _fill(store, clock, n=100)
    store.set_log_config("orders", "eu", {"segment.bytes": str(1 << 20)})  # all in one segment
    assert exporter.get(f"/orders/eu?since={written[50][1]}")[0] == 200  # the reader opens its indexes
    for i in range(100, 3000):
        line = f'{{"id":{i}}}\n'.encode()
        written.append((log.append(line), clock.now_ms(), line))
        clock.advance(1000)
    for i in (2000, 2999, 150):
        status, headers, body = exporter.get(f"/orders/eu?since={written[i][1]}")
        first = int(headers["logfs-offset"])
        assert written[i - 1][0] <= first <= written[i][0], (i, first, written[i][0])
        assert len(body) <= log.end_offset - written[i - 1][0]


def _responses(raw: bytes) -> list[tuple[int, dict, bytes]]:
    """Split what a server sent on one connection into (status, headers, body)
    responses framed by Content-Length."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw[:200]
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        headers = {k.lower(): v for k, v in headers.items()}
        n = int(headers["content-length"])
        out.append((int(lines[0].split()[1]), headers, rest[:n]))
        raw = rest[n:]
    return out


def test_pipelined_requests_are_answered_in_order_whichever_way_each_head_goes(store, clock, exporter):
    """Requests sent at once on one connection: log bodies (their heads written
    directly), a listing, an error and a range (through h11) come back in order,
    each framed right; the last asks to close, and the server then closes."""
    log, _ = _fill(store, clock, n=50)
    whole = log.read(0, log.end_offset)
    req = "GET {} HTTP/1.1\r\nHost: x\r\n{}\r\n"
    data = "".join([req.format("/orders/eu", ""), req.format("/orders", ""),
                    req.format("/orders/eu?record=3", ""), req.format("/orders/nosuch", ""),
                    req.format("/orders/eu", "Range: bytes=5-9\r\n"),
                    req.format("/orders/eu?record=49", "Connection: close\r\n")]).encode()
    got = _responses(exporter.raw(data, timeout=10))
    assert [status for status, _h, _b in got] == [200, 200, 200, 404, 206, 200]
    assert got[0][2] == whole
    assert json.loads(got[1][2])["topic"] == "orders"
    assert got[2][2] == whole[log.record_position(3):]
    assert got[4][2] == whole[5:10] and got[4][1]["content-range"] == f"bytes 5-9/{log.end_offset}"
    assert got[5][2] == whole[log.record_position(49):] and got[5][1].get("connection") == "close"
    # a direct head carries what h11 would have sent
    assert got[0][1]["content-length"] == str(len(whole)) and got[0][1]["server"] == "logfs-exporter"


def test_http_1_0_and_connection_close_get_whole_bodies_then_the_close(store, clock, exporter):
    log, _ = _fill(store, clock, n=20)
    whole = log.read(0, log.end_offset)
    for request in (b"GET /orders/eu HTTP/1.0\r\n\r\n",
                    b"GET /orders/eu HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        got = _responses(exporter.raw(request, timeout=10))
        assert len(got) == 1 and got[0][0] == 200 and got[0][2] == whole, request
        assert got[0][1].get("connection") == "close"
