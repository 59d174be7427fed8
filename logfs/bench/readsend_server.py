"""The naive HTTP file server the benchmark compares with: read() into a buffer, send().

    python -m logfs.bench.readsend_server ROOT [--port N]

A pool of 128 threads, one connection each at a time, HTTP/1.1 keep-alive, GET of a file under ROOT with an
optional single ``Range: bytes=a-b``; the body is copied through a 1 MiB Python buffer
(``readinto`` + ``sendall``). It is what a straightforward Python server does, so the
W6 comparison shows what sendfile buys. Prints ``listening on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import sys
import threading

CHUNK = 1 << 20
THREADS = 128


def _serve_connection(conn: socket.socket, root: str) -> None:
    try:
        _serve(conn, root)
    except (OSError, ValueError):
        pass  # a client that went away or sent garbage: drop it
    finally:
        conn.close()


def _serve(conn: socket.socket, root: str) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    pending = b""
    while True:
        while b"\r\n\r\n" not in pending:
            got = conn.recv(65536)
            if not got:
                return
            pending += got
        head, pending = pending.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        path = os.path.realpath(os.path.join(root, target.split("?", 1)[0].lstrip("/")))
        if method != "GET" or not path.startswith(root + os.sep) or not os.path.isfile(path):
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            continue
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            first, last, status = 0, size - 1, "200 OK"
            extra = ""
            rng = headers.get("range", "")
            if rng.startswith("bytes="):
                a, _, b = rng[6:].partition("-")
                first, last = int(a), min(size - 1, int(b) if b else size - 1)
                status = "206 Partial Content"
                extra = f"Content-Range: bytes {first}-{last}/{size}\r\n"
            length = last - first + 1
            conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\n{extra}"
                         "Content-Type: application/octet-stream\r\n\r\n".encode())
            f.seek(first)
            left = length
            while left > 0:
                n = f.readinto(view[:min(CHUNK, left)])
                if not n:
                    return  # the file shrank: drop the connection
                conn.sendall(view[:n])
                left -= n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m logfs.bench.readsend_server")
    p.add_argument("root")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    root = os.path.realpath(a.root)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))
    srv.listen(1024)
    print(f"listening on http://127.0.0.1:{srv.getsockname()[1]}", flush=True)
    conns: queue.Queue = queue.Queue()

    def worker() -> None:  # long-lived threads: their CPU time stays visible in /proc
        while True:
            _serve_connection(conns.get(), root)

    for _ in range(THREADS):
        threading.Thread(target=worker, daemon=True).start()
    try:
        while True:
            conns.put(srv.accept()[0])
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
