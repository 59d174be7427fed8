"""The sans-IO parts alone: targets, query strings, times, ranges, auth, limits.
No server, no sockets."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfs.exporter.protocol import (REASONS, FileSlice, HttpError, Limits, base_headers, check_auth,
                                     check_request_head, direct_head, parse_target, request_head_error)
from logfs.exporter.query import (BadRequest, ByteRange, LogQuery, parse_byte_range, parse_log_query,
                                  parse_time)

NOW = 1_800_000_000_000


def test_routes():
    assert parse_target(b"/").kind == "index"
    assert parse_target(b"/metrics").kind == "metrics"
    r = parse_target(b"/orders/eu%20west?since=10m")
    assert (r.kind, r.topic, r.log, r.query) == ("log", "orders", "eu west", b"since=10m")
    r = parse_target(b"/orders/")
    assert (r.kind, r.topic) == ("topic", "orders")
    assert parse_target("/caf%C3%A9/x".encode()).topic == "café"


@pytest.mark.parametrize("target,status", [
    (b"/..", 400), (b"/%2e%2E/x", 400), (b"/a/.", 400), (b"/a/%00", 400), (b"/a\x00", 400),
    (b"http://h/a/b", 400), (b"//etc", 400), (b"*", 400), (b"/a/%ff", 400),
    (b"/a%2fb/c", 404), (b"/.logfs", 404), (b"/a/.logfs-x", 404), (b"/a/b/c", 404), (b"/a//b", 404),
    (b"/a/" + b"x" * 256, 404),
])
def test_unreachable_targets(target, status):
    with pytest.raises(HttpError) as info:
        parse_target(target)
    assert info.value.status == status


def test_times():
    assert parse_time("10m", NOW) == NOW - 600_000
    assert parse_time("2h", NOW) == NOW - 7_200_000
    assert parse_time("7d", NOW) == NOW - 7 * 86_400_000
    assert parse_time("500ms", NOW) == NOW - 500
    assert parse_time("1700000000123", NOW) == 1_700_000_000_123
    assert parse_time("2023-11-14T22:13:20Z", NOW) == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20", NOW) == 1_700_000_000_000  # no zone: UTC
    assert parse_time("2023-11-14T23:13:20+01:00", NOW) == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20.5Z", NOW) == 1_700_000_000_500
    for bad in ("", "10x", "yesterday", "-5m", "2023-13-01"):
        with pytest.raises(BadRequest):
            parse_time(bad, NOW)


def test_queries():
    q = parse_log_query(b"record=5&follow=1", NOW)
    assert (q.record, q.follow, q.offset) == (5, True, None)
    q = parse_log_query(b"since=10m&until=2023-11-14T22:13:20Z", NOW)
    assert (q.since_ms, q.until_ms) == (NOW - 600_000, 1_700_000_000_000)
    assert parse_log_query(b"", NOW).has_start is False
    assert parse_log_query(b"follow", NOW).follow is True
    assert parse_log_query(b"follow=0", NOW).follow is False
    assert parse_log_query(b"since=2023-11-14T22%3A13%3A20Z", NOW).since_ms == 1_700_000_000_000
    for bad in (b"offset=1&record=1", b"last=-1", b"x=1", b"offset=1&offset=1", b"record=%00",
                b"follow=2", b"&".join([b"follow=1"] * 20), b"offset=\xff"):
        with pytest.raises(BadRequest):
            parse_log_query(bad, NOW)


def test_group_queries():
    """?group=G (and &reset=) parse through the core's shared selectors."""
    q = parse_log_query(b"group=billing%20eu&follow=1", NOW)
    assert (q.group, q.follow, q.reset, q.has_start) == ("billing eu", True, "earliest", True)
    assert parse_log_query(b"group=g&reset=latest&until=10m", NOW).reset == "latest"
    for bad in (b"group=", b"group=g&since=1h", b"reset=latest", b"group=g&reset=now",
                b"group=tab%09", b"group=" + b"x" * 250):
        with pytest.raises(BadRequest):
            parse_log_query(bad, NOW)


def test_ranges():
    assert parse_byte_range(b"bytes=0-99") == ByteRange(0, 99)
    assert parse_byte_range(b"bytes=100-") == ByteRange(100, None)
    assert parse_byte_range(b"bytes=-5") == ByteRange(None, None, suffix=5)
    assert parse_byte_range(b"Bytes = 1-2") == ByteRange(1, 2)
    for bad in (b"bytes=5-1", b"items=1-2", b"bytes=-", b"bytes=a-b", b"bytes=1", b"\xff"):
        with pytest.raises(BadRequest):
            parse_byte_range(bad)
    # several ranges: not served as multipart/byteranges, so ignored (RFC 9110 lets a
    # server ignore Range and send 200 with the whole body)
    assert parse_byte_range(b"bytes=1-2,4-5") is None
    assert parse_byte_range(b"bytes=0-0, -1") is None


def test_auth():
    check_auth([], None)
    check_auth([(b"authorization", b"Bearer tok")], b"tok")
    check_auth([(b"authorization", b"bearer tok")], b"tok")
    for headers in ([], [(b"authorization", b"Bearer to")], [(b"authorization", b"Basic tok")],
                    [(b"authorization", b"tok")]):
        with pytest.raises(HttpError) as info:
            check_auth(headers, b"tok")
        assert info.value.status == 401


def test_head_limits():
    limits = Limits()
    assert request_head_error(b"GET /" + b"a" * 9000, limits).status == 414
    assert request_head_error(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 4000, limits).status == 431
    assert request_head_error(b"BAD\r\n\r\n", limits).status == 400
    many = h11.Request(method="GET", target="/", headers=[("Host", "x")] + [(f"x-{i}", "v") for i in range(80)])
    with pytest.raises(HttpError) as info:
        check_request_head(many, limits)
    assert info.value.status == 431


def test_file_slices_pass_through_h11_untouched():
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET /t/l?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    conn.send(h11.Response(status_code=200, headers=[]))
    piece = FileSlice(fd=7, position=100, length=42)
    out = conn.send_with_data_passthrough(h11.Data(data=piece))
    assert out == [b"2a\r\n", piece, b"\r\n"]


def test_the_direct_head_is_what_h11_writes():
    headers = base_headers(b"text/plain") + [(b"content-length", b"5"), (b"logfs-offset", b"12"),
                                             (b"x-empty", b""), (b"x-obs", b"caf\xe9 au lait")]
    for status in (200, 206, 404):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert isinstance(conn.next_event(), h11.Request)
        want = conn.send(h11.Response(status_code=status, headers=headers, reason=REASONS[status]))
        assert direct_head(status, headers) == want
    for bad in (b"a\rb", b"a\nb", b"a\0b", b"\r\n", b"a\r\nx-injected: 1"):
        assert direct_head(200, headers + [(b"x-bad", bad)]) is None  # h11 refuses them too
        assert direct_head(200, [(b"x-bad", bad)] + headers) is None


def test_a_query_with_nothing_in_it_is_the_default():
    assert parse_log_query(b"", NOW) == parse_log_query(b"&", NOW) == LogQuery()
    assert parse_target(b"/t/l").query == b"" and parse_target(b"/t%2dx/l").topic == "t-x"


# -- fuzzing: the parsers refuse with their own errors, never anything else -------------

_target_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([b"/", b".", b"..", b"%2e", b"%2E", b"%2f", b"%00", b"\x00", b"a", b"%",
                              b"%ff", b"?", b"#", b"&", b"=", b".logfs", b"\xc3\xa9", b"//"]),
             max_size=20).map(b"".join),
)


@settings(max_examples=500, deadline=None)
@given(_target_bytes)
def test_parse_target_never_escapes(target):
    try:
        route = parse_target(target)
    except HttpError as err:
        assert err.status in (400, 404)
        return
    for name in (route.topic, route.log):
        if name is not None:
            assert name not in (".", "..") and "/" not in name and "\0" not in name
            assert not name.startswith(".logfs") and name


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_query_and_range_parsers_only_raise_bad_request(raw):
    for parse in (lambda: parse_log_query(raw, NOW), lambda: parse_byte_range(raw)):
        try:
            parse()
        except BadRequest:
            pass


def test_the_access_line_is_what_json_dumps_gives():
    """connection.access_line builds the access log's line directly (one per
    request); it must be the text json.dumps(ensure_ascii=False) gives, for any path
    a client can send (quotes, backslashes, controls, non-ASCII from latin-1)."""
    import json
    from datetime import datetime, timezone

    from logfs.exporter.connection import Exchange, access_line
    wall = 1_800_000_123.4567
    for path in ("/orders/eu?since=10m", 'a"b\\c', "\x00\x01\x1f\x7f", "/\xe9\xff\x85", "-"):
        for complete, status, size in ((True, 200, 0), (False, 499, 123456789)):
            ex = Exchange("127.0.0.1:5555", "GET", path, status, size, started=100.0, complete=complete)
            expect = json.dumps({
                "ts": datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "client": ex.client, "method": ex.method, "path": ex.path, "status": status,
                "bytes": size, "duration_ms": round(12.3456789, 3), "complete": complete},
                ensure_ascii=False)
            assert access_line(ex, wall, 100.0123456789) == expect
