"""W1–W5(b) and W8: the filesystem workloads, run the same way on each filesystem.

Every workload writes and reads through ``target.path(...)`` with ordinary tools and
system calls (dd, write(), read()) from processes other than the daemon under test.
Each returns a plain dict of figures; nothing here knows which filesystem it is on.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

from logfs.bench.systems import FsTarget, open_fds, proc_memory
from logfs.bench.worker import LINE, make_line, seq_of

MiB = 1 << 20
MB = 1_000_000


def quantile(ordered: list[float], q: float) -> float:
    """The *q* quantile (0..1) of a sorted list: the value at index floor(n*q)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def sync() -> None:
    os.sync()


def drop_caches(paths: list[str]) -> str:
    """Empty the page cache: drop_caches when allowed (root), else fadvise(DONTNEED)
    on each file given (which drops that file's cached pages, FUSE ones included)."""
    sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "drop_caches"
    except OSError:
        for p in paths:
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        return "fadvise"


def available_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


PAGE_REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"
NO_REPORTING_ORDER = "11"  # above the buddy allocator's largest order: nothing is reported


@contextlib.contextmanager
def free_pages_kept():
    """While the block runs, the guest does not report free memory to the host
    (virtio-balloon free page reporting hands pages the guest frees back to the host,
    which then costs the next user a first touch again). Restored on the way out.
    Yields what was done, for the report; does nothing where the knob is missing or
    not writable."""
    try:
        with open(PAGE_REPORTING_ORDER) as f:
            old = f.read().strip()
        with open(PAGE_REPORTING_ORDER, "w") as f:
            f.write(NO_REPORTING_ORDER)
    except OSError as exc:
        yield f"free page reporting left as it is ({exc.strerror or exc})"
        return
    try:
        yield f"free page reporting paused during the run (page_reporting_order {old} -> {NO_REPORTING_ORDER})"
    finally:
        with open(PAGE_REPORTING_ORDER, "w") as f:
            f.write(old)


def touch_memory(mib: int, chunk_mib: int = 1024) -> dict:
    """Write one byte into every page of *mib* MiB of fresh anonymous memory, a GiB at
    a time, then give it back. On a VM whose host hands the guest memory lazily, the
    first touch of a page costs milliseconds per MiB (docs/performance.md, "the
    machine"); page-cache-heavy workloads (W1) measure that, not the filesystem, unless
    the memory was touched once before. Returns the time it took per MiB."""
    import mmap
    t0 = time.perf_counter()
    done = 0
    while done < mib:
        n = min(chunk_mib, mib - done) * MiB
        m = mmap.mmap(-1, n)
        try:
            m[::4096] = b"\x01" * (n // 4096)
        finally:
            m.close()
        done += n // MiB
    dt = time.perf_counter() - t0
    return {"MiB": mib, "seconds": round(dt, 2), "ms_per_MiB": round(dt * 1000 / max(mib, 1), 3)}


def w1_append_chunks(t: FsTarget, size_mib: int) -> dict:
    """dd appending SIZE in 1 MiB writes (page cache; no fsync, as dd does by default)
    to a new file (a previous round's is removed first)."""
    path = t.path("w1")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sync()
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={size_mib}",
                    "oflag=append", "conv=notrunc", "status=none"], check=True)
    dt = time.perf_counter() - t0
    size = os.stat(path).st_size
    if size != size_mib * MiB:
        raise AssertionError(f"{t.name} W1: file is {size} bytes, expected {size_mib * MiB}")
    return {"seconds": round(dt, 3), "MB_s": round(size / MB / dt, 1)}


def best_of(runs: list[dict], key: str) -> dict:
    """The run with the highest *key*, with every run's *key* beside it: on a shared VM
    a run can only be slowed down (page allocation, other work), never sped up."""
    best = dict(max(runs, key=lambda r: r[key]))
    best[f"runs_{key}"] = [r[key] for r in runs]
    return best


def _read_all(path: str, bs: int = MiB) -> tuple[int, float]:
    buf = bytearray(bs)
    fd = os.open(path, os.O_RDONLY)
    total = 0
    try:
        t0 = time.perf_counter()
        while True:
            n = os.readv(fd, [buf])
            if not n:
                break
            total += n
        dt = time.perf_counter() - t0
    finally:
        os.close(fd)
    return total, dt


def w4_reads(t: FsTarget, backing_files: list[str], warm_runs: int = 2, cold_runs: int = 3) -> dict:
    """Read the W1 file with 1 MiB read()s: cold (after dropping caches; best of
    ``cold_runs``, each after its own drop, since what the VM's host still caches of the
    disk swings single cold reads by 5x), warm (best of ``warm_runs``), and warm again
    right after a 100-byte append (after the 1 s attribute timeout, as a reader that
    comes back later would)."""
    path = t.path("w1")
    colds = []
    for _ in range(cold_runs):
        how = drop_caches([path] + backing_files)
        n, dt = _read_all(path)
        colds.append(round(n / MB / dt, 1))
    out = {"cold_MB_s": max(colds), "runs_cold_MB_s": colds, "cache_drop": how}
    served = getattr(t, "daemon_read_bytes", None)
    before = served("w1") if served else 0
    best = min(_read_all(path)[1] for _ in range(warm_runs))
    out["warm_MB_s"] = round(n / MB / best, 1)
    if served:  # evidence that warm reads never reached the daemon
        out["daemon_bytes_during_warm_reads"] = served("w1") - before
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, make_line(0, 0))
    finally:
        os.close(fd)
    time.sleep(1.1)
    n2, dt = _read_all(path)
    if n2 != n + LINE:
        raise AssertionError(f"{t.name} W4: read {n2} bytes after the append, expected {n + LINE}")
    out["warm_after_append_MB_s"] = round(n2 / MB / dt, 1)
    return out


def _worker(*args: str) -> list[str]:
    return [sys.executable, "-m", "logfs.bench.worker", *args]


def timed_lines(path: str, n: int) -> float:
    """Seconds one worker process takes to append *n* 100-byte lines to *path*, one
    write() each."""
    r = subprocess.run(_worker("lines", path, str(n), "0"), capture_output=True, text=True, check=True)
    res = json.loads(r.stdout)
    return (res["t1_ns"] - res["t0_ns"]) / 1e9


def w2_lines(t: FsTarget, n: int) -> dict:
    """One process appends n 100-byte lines, one write() each."""
    path = t.path("w2")
    sync()
    dt = timed_lines(path, n)
    size = os.stat(path).st_size
    if size != n * LINE:
        raise AssertionError(f"{t.name} W2: file is {size} bytes, expected {n * LINE}")
    return {"seconds": round(dt, 3), "lines_s": round(n / dt), "MB_s": round(n * LINE / MB / dt, 2),
            "us_per_write": round(dt / n * 1e6, 2)}


def check_whole_lines(path: str, procs: int, per_proc: int) -> str | None:
    """None if the file is exactly procs*per_proc whole 100-byte lines with each
    writer's lines in order; else what is wrong."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != procs * per_proc * LINE:
        return f"{len(data)} bytes, expected {procs * per_proc * LINE}"
    if data.count(b"\n") != procs * per_proc or data[LINE - 1::LINE].count(b"\n") != procs * per_proc:
        return "a line was split or interleaved"
    nxt = [0] * procs
    for i in range(0, len(data), LINE):
        line = data[i:i + LINE]
        tag, seq = int(line[:2]), seq_of(line)
        if tag >= procs or seq != nxt[tag]:
            return f"writer {tag}: line {seq} where {nxt[tag] if tag < procs else '?'} was expected"
        nxt[tag] += 1
    return None


def w3_lines_concurrent(t: FsTarget, n: int, procs: int = 8) -> dict:
    """procs processes append n lines in all into one file at the same time."""
    path = t.path("w3")
    per = n // procs
    open(path, "ab").close()
    sync()
    ps = [subprocess.Popen(_worker("lines", path, str(per), str(k), "wait"), stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True) for k in range(procs)]
    try:
        for p in ps:  # every writer has built its lines and opened the file
            if p.stdout.readline().strip() != "ready":
                raise AssertionError(f"{t.name} W3: a writer did not start")
        for p in ps:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = []
        for p in ps:
            out, _ = p.communicate()
            if p.returncode != 0:
                raise AssertionError(f"{t.name} W3: a writer failed")
            outs.append(json.loads(out))
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()
    dt = (max(o["t1_ns"] for o in outs) - min(o["t0_ns"] for o in outs)) / 1e9
    problem = check_whole_lines(path, procs, per)
    return {"seconds": round(dt, 3), "lines_s": round(per * procs / dt), "processes": procs,
            "MB_s": round(per * procs * LINE / MB / dt, 2), "whole_lines": problem is None,
            "problem": problem}


def produce_paced(path: str, n: int, rate: float) -> list[int]:
    """Append n lines at ``rate`` lines/s; the time each write() returned."""
    sent = [0] * n
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lines = [make_line(0, i) for i in range(n)]
    period = 1.0 / rate
    try:
        nxt = time.monotonic()
        for i in range(n):
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            os.write(fd, lines[i])
            sent[i] = time.monotonic_ns()
            nxt += period
    finally:
        os.close(fd)
    return sent


def latency_run(consumer: list[str], path: str, n: int, rate: float, warmup_s: float = 0.0) -> dict:
    """Start the consumer, wait for its ``ready``, stay quiet *warmup_s*, produce n
    paced lines into path, and return p50/p99/max of (consumer saw the line) -
    (producer's write() returned), in ms; 0 for a line the consumer saw before the
    producer's clock read (the delivery beat the return of write() to the producer)."""
    p = subprocess.Popen(consumer, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = p.stdout.readline().strip()
        if ready != "ready":
            raise AssertionError(f"consumer did not start: {ready!r} {p.stderr.read()[-500:]}")
        if warmup_s:
            time.sleep(warmup_s)
        sent = produce_paced(path, n, rate)
        out, err = p.communicate(timeout=30)
        if p.returncode != 0:
            raise AssertionError(f"consumer failed: {err[-500:]}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    arrivals = {int(k): v for k, v in json.loads(out)["arrivals"].items()}
    lat = sorted(max(0.0, (arrivals[i] - sent[i]) / 1e6) for i in range(n) if i in arrivals)
    if len(lat) != n:
        raise AssertionError(f"consumer saw {len(lat)} of {n} lines")

    def q(f: float) -> float:
        return round(quantile(lat, f), 3)

    return {"lines": n, "rate": rate, "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": round(lat[-1], 3)}


def w5_poll(t: FsTarget, n: int, rate: float, interval_s: float = 0.001) -> dict:
    """A reader that polls the file (read() at EOF, then sleep ``interval_s``)."""
    path = t.path("w5")
    open(path, "ab").close()
    res = latency_run(_worker("poll", path, str(n), str(interval_s)), path, n, rate)
    res["poll_interval_ms"] = interval_s * 1000
    return res


class ResourceSampler:
    """W8: samples RSS and open descriptors of some processes every ``period`` s."""

    def __init__(self, pids: dict[str, list[int]], period: float = 0.02) -> None:
        self.pids, self.period = pids, period
        self.peak: dict[str, dict] = {k: {"rss_bytes": 0, "fds": 0, "hwm_bytes": 0} for k in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, pids in self.pids.items():
            rss = sum(proc_memory(p)[0] for p in pids)
            hwm = sum(proc_memory(p)[1] for p in pids)
            fds = sum(open_fds(p) for p in pids)
            pk = self.peak[name]
            pk["rss_bytes"] = max(pk["rss_bytes"], rss)
            pk["hwm_bytes"] = max(pk["hwm_bytes"], hwm)
            pk["fds"] = max(pk["fds"], fds)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def __enter__(self) -> "ResourceSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def results(self) -> dict:
        return {k: {"peak_rss_MiB": round(v["rss_bytes"] / MiB, 1), "vm_hwm_MiB": round(v["hwm_bytes"] / MiB, 1),
                    "peak_fds": v["fds"]} for k, v in self.peak.items()}
