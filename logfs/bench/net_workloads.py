"""W5(a), W6 and W7: the HTTP workloads.

W6 downloads with curl (one process; ``--parallel`` for the concurrent case) and charges
each server the CPU seconds (user + system, all its processes) it used meanwhile. W7
builds a log of many records with the storage core directly (appending through the
mount would take most of the run) and times the first byte of ``?record=N`` and
``?since=T`` responses.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time

from logfs.bench.fs_workloads import _worker, latency_run
from logfs.bench.systems import Server
from logfs.bench.worker import make_line

MiB = 1 << 20
GiB = 1 << 30
MB = 1_000_000


def _curl(urls: list[str], parallel: int) -> int:
    """Download every URL to /dev/null; the total bytes curl received."""
    args = ["curl", "-s", "--no-progress-meter", "-w", "%{http_code} %{size_download}\\n"]
    if parallel > 1:
        args += ["-Z", "--parallel-max", str(parallel), "--parallel-immediate"]
    for u in urls:
        args += ["-o", "/dev/null", u]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"curl exited {r.returncode}: {r.stderr[-300:]}")
    total = 0
    for line in r.stdout.strip().splitlines():
        code, size = line.split()
        if code not in ("200", "206"):
            raise AssertionError(f"HTTP {code} from {urls[0]}")
        total += int(size)
    return total


def w6_downloads(server: Server, big: str, small: str, big_bytes: int, small_bytes: int,
                 clients: int, reps: int) -> dict:
    """One download of ``big`` and ``clients`` concurrent downloads of ``small``; each
    repeated ``reps`` times, the median kept. Throughput in MB/s and the server's CPU
    seconds per GiB served."""
    base = f"http://127.0.0.1:{server.port}"
    out = {}
    for label, urls, expect, par in (("single", [base + server.url_path(big)], big_bytes, 1),
                                     ("concurrent", [base + server.url_path(small)] * clients,
                                      small_bytes * clients, clients)):
        runs = []
        for _ in range(reps):
            c0, t0 = server.cpu(), time.perf_counter()
            got = _curl(urls, par)
            dt, cpu = time.perf_counter() - t0, server.cpu() - c0
            if got != expect:
                raise AssertionError(f"{server.name} W6 {label}: {got} bytes, expected {expect}")
            runs.append((got / MB / dt, cpu / (got / GiB)))
        runs.sort()
        mbs, cpu_gib = runs[len(runs) // 2]
        out[f"{label}_MB_s"] = round(mbs, 1)
        out[f"{label}_cpu_s_per_GiB"] = round(cpu_gib, 4)
    return out


def w5_follow(serve: Server, write_path: str, url_rel: str, n: int, rate: float) -> dict:
    """Producer appends through the mount; consumer follows through the exporter."""
    open(write_path, "ab").close()
    time.sleep(0.1)
    res = latency_run(_worker("follow", "127.0.0.1", str(serve.port),
                              serve.url_path(url_rel) + "?follow=1&last=0", str(n)),
                      write_path, n, rate)
    return res


def build_record_log(data: str, records: int) -> tuple[int, int]:
    """A log bench/w7 of ``records`` 100-byte lines, written with the core in 128,000-byte
    appends (what ``cat FILE >> MOUNT/t/log`` sends through a pipe: 128 KiB writes), the
    clock advanced 1 ms per append. Returns the (first, last) append time in ms.

    The append size matters: the core indexes at most once per append, so a seek
    scans up to one append's bytes (docs/performance.md)."""
    from logfs.core import ManualClock, open_log_store
    per = 1280
    block = b"".join(make_line(0, i) for i in range(per))
    os.makedirs(data, exist_ok=True)
    t_first = int(time.time() * 1000) - 86_400_000
    clock = ManualClock(t_first)
    store = open_log_store(data, clock=clock)
    try:
        store.create_topic("bench")
        lg = store.create_log("bench", "w7")
        left = records
        while left > 0:
            k = min(per, left)
            lg.append(block if k == per else block[:k * len(block) // per])
            clock.advance(1)
            left -= k
        lg.fsync()
        assert lg.records == records, (lg.records, records)
    finally:
        store.close()
    return t_first, clock.now_ms()


def ttfb(port: int, path: str) -> float:
    """Seconds from connect to the first body byte of GET path."""
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        buf = b""
        while True:
            got = s.recv(65536)
            if not got:
                raise AssertionError(f"connection closed: {buf[:200]!r}")
            buf += got
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep and body:
                if not head.startswith(b"HTTP/1.1 200"):
                    raise AssertionError(f"GET {path}: {head[:100]!r}")
                return time.perf_counter() - t0
    finally:
        s.close()


def w7_ttfb(serve: Server, records: int, t_first: int, t_last: int, samples: int) -> dict:
    rnd = random.Random(7)
    out = {"records": records}
    for key, values in (("record", [rnd.randrange(records) for _ in range(samples)]),
                        ("since", [rnd.randrange(t_first, t_last) for _ in range(samples)])):
        lat = sorted(ttfb(serve.port, serve.url_path("w7") + f"?{key}={v}") * 1000 for v in values)
        out[f"{key}_p50_ms"] = round(lat[len(lat) // 2], 3)
        out[f"{key}_p99_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3)
        out[f"{key}_max_ms"] = round(lat[-1], 3)
    return out


def fill_file(path: str, nbytes: int) -> None:
    """Write nbytes of 100-byte lines to path with 1 MB-ish writes (through whatever
    filesystem path is on)."""
    block = b"".join(make_line(0, i) for i in range(10_486))  # 1,048,600 bytes
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, block[:min(left, len(block))])
    finally:
        os.close(fd)
