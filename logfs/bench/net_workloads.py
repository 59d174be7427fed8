"""W5(a), W6 and W7: the HTTP workloads.

W6 downloads with curl (one process; ``--parallel`` for the concurrent case), several
sizes, the servers in alternating order, and charges each server the CPU seconds (user
+ system, all its processes and threads, from /proc) it used meanwhile. W5 times
follow-mode deliveries at several rates and after quiet spells. W7
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
from dataclasses import dataclass

from logfs.bench.fs_workloads import _worker, latency_run
from logfs.bench.systems import Server, cpu_between
from logfs.bench.worker import make_line

MiB = 1 << 20
GiB = 1 << 30
MB = 1_000_000


def _curl(urls: list[str], parallel: int) -> int:
    """Download every URL to /dev/null with one curl process (one after the other on a
    kept-alive connection, or ``parallel`` at once); the total bytes curl received."""
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


@dataclass(frozen=True)
class DownloadCase:
    """One W6 measurement: ``count`` downloads of file ``rel`` (``mib`` MiB), one
    after the other, or all at once when ``parallel``."""

    key: str          # results key prefix: single_10MiB, concurrent, ...
    rel: str
    mib: int
    count: int
    parallel: bool = False


def w6_cases(single_mib: list[int], clients: int, client_mib: int, small_count: int) -> list[DownloadCase]:
    cases = []
    for mib in single_mib:
        # enough downloads that each measurement moves >= ~200 MiB (the CPU figures are
        # in 10 ms ticks when a thread came or went)
        count = max(1, min(small_count, -(-200 // mib)))
        cases.append(DownloadCase(f"single_{mib}MiB", f"w6_{mib}", mib, count))
    cases.append(DownloadCase("concurrent", f"w6_{client_mib}", client_mib, clients, parallel=True))
    return cases


def w6_downloads(servers: list[Server], cases: list[DownloadCase], rounds: int) -> dict[str, dict]:
    """Every case on every server, in rounds; the order of the servers alternates from
    round to round (the first of a pair can find a different machine: the page cache,
    the host). Per case and server: the best throughput (MB/s) and the lowest CPU
    seconds per GiB served (user + system of all the server's processes and threads,
    from /proc) over the rounds, every run beside them. The client is curl."""
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for case in cases:
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            if r % 2:
                order = order[::-1]
            for server in order:
                url = f"http://127.0.0.1:{server.port}{server.url_path(case.rel)}"
                expect = case.mib * MiB * case.count
                c0, t0 = server.cpu(), time.perf_counter()
                got = _curl([url] * case.count, case.count if case.parallel else 1)
                dt, cpu = time.perf_counter() - t0, cpu_between(c0, server.cpu())
                if got != expect:
                    raise AssertionError(f"{server.name} W6 {case.key}: {got} bytes, expected {expect}")
                runs.setdefault((server.name, case.key), []).append(
                    (round(got / MB / dt, 1), round(cpu / (got / GiB), 4)))
    out: dict[str, dict] = {s.name: {} for s in servers}
    for (name, key), rs in runs.items():
        mbs, cpus = [r[0] for r in rs], [r[1] for r in rs]
        out[name].update({f"{key}_MB_s": max(mbs), f"{key}_cpu_s_per_GiB": min(cpus),
                          f"{key}_runs_MB_s": mbs, f"{key}_runs_cpu_s_per_GiB": cpus})
    for case in cases:
        for name in out:
            out[name][f"{case.key}_downloads"] = case.count
    return out


W5_RATES = (1, 10, 100, 1000)


def w5_follow(serve: Server, write_path: str, url_rel: str, lines_at: dict[int, int],
              quiet_lines: int, quiet_s: float = 1.0) -> dict:
    """Producer appends through the mount; a consumer process follows through the
    exporter (``?follow=1&last=0``). At each rate of *lines_at* (lines/s -> how many
    lines), and *quiet_lines* times a single line after *quiet_s* of quiet, each with a
    new follower. Latency is from write()'s return in the producer to the line's
    arrival in the consumer (CLOCK_MONOTONIC in both); 0 when it came first."""
    open(write_path, "ab").close()
    time.sleep(0.1)
    url = serve.url_path(url_rel) + "?follow=1&last=0"
    out: dict = {}
    for rate, n in lines_at.items():
        res = latency_run(_worker("follow", "127.0.0.1", str(serve.port), url, str(n)), write_path, n, rate)
        out.update({f"r{rate}_{k}": v for k, v in res.items() if k.endswith("_ms")})
        out[f"r{rate}_lines"] = n
    lat: list[float] = []
    for _ in range(quiet_lines):
        res = latency_run(_worker("follow", "127.0.0.1", str(serve.port), url, "1"), write_path, 1, 1,
                          warmup_s=quiet_s)
        lat.append(res["max_ms"])
    if lat:
        lat.sort()
        out.update({"quiet_p50_ms": lat[len(lat) // 2], "quiet_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                    "quiet_max_ms": lat[-1], "quiet_lines": len(lat), "quiet_s": quiet_s})
    # the headline figures: the worst p50 and p99 over every rate and the quiet line
    p50s = [v for k, v in out.items() if k.endswith("p50_ms")]
    p99s = [v for k, v in out.items() if k.endswith("p99_ms")]
    out["p50_ms"], out["p99_ms"] = max(p50s), max(p99s)
    return out


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
