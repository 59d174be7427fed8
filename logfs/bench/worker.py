"""The benchmark's client processes: ``python -m logfs.bench.worker KIND ...``.

Each worker is a separate process, so that the writers of W2/W3 and the consumers of W5
are ordinary programs doing ordinary system calls (the FUSE daemon and the servers
being measured run in processes of their own). Timestamps are ``time.monotonic_ns()``,
which is one clock for every process on the machine. Each worker prints one JSON
object on stdout when done (consumers print ``ready`` first, once they are in place).

    lines PATH N TAG [wait]    append N 100-byte lines, one write() each (O_APPEND);
                               with ``wait``, print ``ready`` and start at a line on stdin
    poll PATH N INTERVAL_S     read PATH from its current end, polling every INTERVAL_S,
                               until N lines came; the arrival time of each
    follow HOST PORT URLPATH N read an HTTP follow stream (chunked) until N lines came
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

LINE = 100


def make_line(tag: int, seq: int) -> bytes:
    """A 100-byte line: ``TT SSSSSSSSSS `` then filler, then ``\\n`` (tag, sequence)."""
    head = b"%02d %010d " % (tag % 100, seq)
    return head + b"x" * (LINE - 1 - len(head)) + b"\n"


def seq_of(line: bytes) -> int:
    return int(line[3:13])


def write_lines(path: str, n: int, tag: int, wait: bool = False) -> dict:
    lines = [make_line(tag, i) for i in range(n)]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    w = os.write
    if wait:  # start together with the other writers: "ready", then wait for "go"
        print("ready", flush=True)
        sys.stdin.readline()
    try:
        t0 = time.monotonic_ns()
        for b in lines:
            w(fd, b)
        t1 = time.monotonic_ns()
    finally:
        os.close(fd)
    return {"t0_ns": t0, "t1_ns": t1, "lines": n}


def poll_lines(path: str, n: int, interval_s: float) -> dict:
    fd = os.open(path, os.O_RDONLY)
    os.lseek(fd, 0, os.SEEK_END)
    print("ready", flush=True)
    arrivals: dict[int, int] = {}
    pending = b""
    try:
        while len(arrivals) < n:
            data = os.read(fd, 1 << 16)
            if not data:
                time.sleep(interval_s)
                continue
            now = time.monotonic_ns()
            pending += data
            *whole, pending = pending.split(b"\n")
            for line in whole:
                arrivals[seq_of(line)] = now
    finally:
        os.close(fd)
    return {"arrivals": arrivals}


def follow_lines(host: str, port: int, urlpath: str, n: int) -> dict:
    """GET a ``?follow=1`` URL and parse its chunked body incrementally."""
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(f"GET {urlpath} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = s.recv(65536)
        if not got:
            raise SystemExit("follow: connection closed before the response head")
        buf += got
    head, buf = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"follow: unexpected response {head[:200]!r}")
    print("ready", flush=True)
    arrivals: dict[int, int] = {}
    body = b""
    state, chunk_left = "size", 0
    while len(arrivals) < n:
        while True:  # decode as much chunk framing as buf holds
            if state == "size":
                nl = buf.find(b"\r\n")
                if nl < 0:
                    break
                chunk_left = int(buf[:nl].split(b";")[0], 16)
                buf = buf[nl + 2:]
                if chunk_left == 0:
                    raise SystemExit("follow: the stream ended")
                state = "data"
            elif state == "data":
                if not buf:
                    break
                take = buf[:chunk_left]
                body += take
                buf = buf[len(take):]
                chunk_left -= len(take)
                if chunk_left == 0:
                    state = "crlf"
            else:
                if len(buf) < 2:
                    break
                buf = buf[2:]
                state = "size"
        if b"\n" in body:
            now = time.monotonic_ns()
            *whole, body = body.split(b"\n")
            for line in whole:
                if line:
                    arrivals[seq_of(line)] = now
            continue
        got = s.recv(65536)
        if not got:
            raise SystemExit("follow: connection closed")
        buf += got
    s.close()
    return {"arrivals": arrivals}


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "lines":
        out = write_lines(argv[1], int(argv[2]), int(argv[3]), wait=argv[4:] == ["wait"])
    elif kind == "poll":
        out = poll_lines(argv[1], int(argv[2]), float(argv[3]))
    elif kind == "follow":
        out = follow_lines(argv[1], int(argv[2]), argv[3], int(argv[4]))
    else:
        print(f"unknown worker {kind!r}", file=sys.stderr)
        return 2
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
