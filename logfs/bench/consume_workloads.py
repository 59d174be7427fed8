"""W9, W10 and W5(c): the consumer workloads (issue 12).

- W9: ``logfs consume`` of a log of many records (W7's, mounted) against ``cat`` of
  the same log through the mount, both into a pipe drained by ``cat > /dev/null``
  (a consumer's output goes somewhere: a pipe is the common case), the whole command
  timed, its start included; best of a few runs each, alternating; and the same
  with ``--group`` (commits every 10,000 records, each an fdatasync).
- W10: the consumer-group store's commit rate on the benchmark's disk: one log per
  commit, and 100 logs per commit (a consumer of a topic with 100 logs commits them
  all at once), each commit fdatasync'ed before the next.
- W5(c): ``logfs consume --follow`` latency, from a producer's ``write()`` through the
  mount to the line's arrival on the consumer's stdout, at several rates and after
  quiet spells: the exporter follower's W5 with the consumer in its place.

``python -m logfs.bench.consume_workloads follow PATH N -- CMD...`` is the W5(c)
reader process: it starts CMD (a ``logfs consume --follow``), waits until CMD
prints a marker line it appends to PATH (so the consumer is in place), prints
``ready``, then stamps the arrival of N lines on CMD's stdout and prints them as JSON
(logfs/bench/worker.py's protocol).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from logfs.bench.fs_workloads import latency_run
from logfs.bench.worker import make_line, seq_of

MB = 1_000_000
MARKER_TAG = 99  # worker lines with this tag are the reader's own markers


def _consume_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "logfs.cli", "consume", *args]


def _timed_pipeline(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd | wc -c`` (the pipe's reader counts and drops the bytes); (seconds
    from the start of cmd to the reader's end, bytes cmd wrote)."""
    counter = subprocess.Popen(["wc", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    t0 = time.perf_counter()
    producer = subprocess.Popen(cmd, stdout=counter.stdin, stderr=subprocess.PIPE)
    counter.stdin.close()
    err = producer.stderr.read()
    producer.wait()
    out = counter.stdout.read()
    counter.wait()
    dt = time.perf_counter() - t0
    if producer.returncode != 0:
        raise AssertionError(f"{cmd[:4]} exited {producer.returncode}: {err[-300:]!r}")
    return dt, int(out.split()[0])


def w9_consume(mount_path: str, records: int, reps: int) -> dict[str, dict]:
    """cat through the mount, logfs consume and logfs consume --group of one log."""
    cases = {"cat_mount": ["cat", mount_path],
             "logfs_consume": _consume_cmd(mount_path)}
    runs: dict[str, list[float]] = {k: [] for k in cases}
    runs["logfs_consume_group"] = []
    size = None
    for r in range(max(1, reps) + 1):  # the first round warms the page caches
        order = list(cases.items())
        if r % 2:
            order.reverse()
        for name, cmd in order:
            dt, n = _timed_pipeline(cmd)
            if size is None:
                size = n
            if n != size:
                raise AssertionError(f"W9 {name}: {n} bytes, expected {size}")
            if r:
                runs[name].append(dt)
        if r:
            dt, n = _timed_pipeline(_consume_cmd("--group", f"w9-{r}", mount_path))
            if n != size:
                raise AssertionError(f"W9 logfs_consume_group: {n} bytes, expected {size}")
            runs["logfs_consume_group"].append(dt)
    out: dict[str, dict] = {}
    for name, times in runs.items():
        best = min(times)
        out[name] = {"seconds": round(best, 3), "MB_s": round(size / MB / best, 1),
                     "records_s": round(records / best), "runs_s": [round(t, 3) for t in times],
                     "bytes": size, "records": records}
    return out


def w10_commit_rate(data_dir: str, seconds: float) -> dict:
    """Commits per second of one log and of 100 logs at once (each fdatasync'ed)."""
    from logfs.core import GroupStore
    groups = GroupStore(data_dir)
    out: dict = {}
    for key, nlogs in (("one", 1), ("batch100", 100)):
        group = groups.group(f"w10-{key}")
        logs = [("bench", f"p{i}") for i in range(nlogs)]
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += 1
            group.commit({k: (n, n * 100) for k in logs})
        dt = time.perf_counter() - t0
        out[f"{key}_commits_s"] = round(n / dt)
        out[f"{key}_us_per_commit"] = round(dt / n * 1e6, 1)
        out[f"{key}_positions_s"] = round(n * nlogs / dt)
        got = group.position("bench", "p0")
        if got is None or got.record != n:
            raise AssertionError(f"W10 {key}: read back {got}, expected record {n}")
        group.delete()
    return out


def w5_consume(path: str, lines_at: dict[int, int], quiet_lines: int, quiet_s: float = 1.0) -> dict:
    """Producer appends to *path* (in a mount); a ``logfs consume --follow`` prints
    the lines; latency from write()'s return to arrival (0 when it came first). Each
    rate of *lines_at* and each quiet line with a new consumer."""
    open(path, "ab").close()
    cmd = _consume_cmd("--follow", "--from", "latest", path)
    out: dict = {}
    for rate, n in lines_at.items():
        res = latency_run(_reader(path, n, cmd), path, n, rate)
        out.update({f"r{rate}_{k}": v for k, v in res.items() if k.endswith("_ms")})
        out[f"r{rate}_lines"] = n
    lat: list[float] = []
    for _ in range(quiet_lines):
        lat.append(latency_run(_reader(path, 1, cmd), path, 1, 1, warmup_s=quiet_s)["max_ms"])
    if lat:
        lat.sort()
        out.update({"quiet_p50_ms": lat[len(lat) // 2], "quiet_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                    "quiet_max_ms": lat[-1], "quiet_lines": len(lat), "quiet_s": quiet_s})
    out["p50_ms"] = max(v for k, v in out.items() if k.endswith("p50_ms"))
    out["p99_ms"] = max(v for k, v in out.items() if k.endswith("p99_ms"))
    return out


def _reader(path: str, n: int, cmd: list[str]) -> list[str]:
    return [sys.executable, "-m", "logfs.bench.consume_workloads", "follow", path, str(n), "--", *cmd]


def follow_reader(path: str, n: int, cmd: list[str]) -> dict:
    """The W5(c) reader (see the module docstring)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    fd = p.stdout.fileno()
    os.set_blocking(fd, False)
    arrivals: dict[int, int] = {}
    pending = b""
    marker = 0
    ready = False
    try:
        deadline = time.monotonic() + 30
        next_marker = 0.0
        while len(arrivals) < n:
            if not ready:
                if time.monotonic() > deadline:
                    raise SystemExit("consume printed none of the reader's markers")
                if time.monotonic() >= next_marker:  # until one comes back: the consumer is in place
                    with open(path, "ab") as f:
                        f.write(make_line(MARKER_TAG, marker))
                    marker += 1
                    next_marker = time.monotonic() + 0.05
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                import select
                select.select([fd], [], [], 0.01 if not ready else None)
                continue
            if not data:
                raise SystemExit("consume ended")
            now = time.monotonic_ns()
            pending += data
            *whole, pending = pending.split(b"\n")
            for line in whole:
                if line.startswith(b"%02d " % MARKER_TAG):
                    if not ready:
                        ready = True
                        print("ready", flush=True)
                elif line:
                    arrivals[seq_of(line)] = now
    finally:
        p.kill()
        p.wait()
    return {"arrivals": arrivals}


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "follow" and argv[3] == "--":
        print(json.dumps(follow_reader(argv[1], int(argv[2]), argv[4:])), flush=True)
        return 0
    print("usage: python -m logfs.bench.consume_workloads follow PATH N -- CMD...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
