"""Measure the FUSE layer's caching choices (the figures in docs/fuse.md).

    .venv/bin/python tests/fuse/measure_fuse.py [--size-mib 256]

Mounts throwaway data directories under /tmp and always unmounts them. Prints a
markdown table per experiment. Not a test (no test_ prefix): it takes a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(__file__))
from fuse_helpers import LOGFS  # noqa: E402

MiB = 1024 * 1024


@contextmanager
def mounted(*options: str):
    base = tempfile.mkdtemp(prefix="logfs-measure-")
    data, mnt = os.path.join(base, "data"), os.path.join(base, "mnt")
    os.mkdir(data)
    os.mkdir(mnt)
    args = [LOGFS, "mount"] + [a for o in options for a in ("-o", o)] + [data, mnt]
    subprocess.run(args, check=True)
    try:
        yield data, mnt, args
    finally:
        subprocess.run([LOGFS, "umount", mnt])
        subprocess.run(["rm", "-rf", base])


def remount(mnt: str, args: list[str]) -> None:
    subprocess.run([LOGFS, "umount", mnt], check=True)
    subprocess.run(args, check=True)


def fuse_counters(path: str) -> dict:
    out = subprocess.run([LOGFS, "describe", "--json", path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["fuse"]


def read_bytes(path: str) -> int:
    return fuse_counters(path)["read_bytes"]


def drop_backing_cache(data: str) -> None:
    """Evict DATA's segment files from the host page cache (targeted, not drop_caches)."""
    for root, _dirs, files in os.walk(data):
        for name in files:
            if not name.endswith(".log"):
                continue
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed_cat(path: str, bs: int = MiB) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(bs):
            pass
    return time.perf_counter() - t0


def fill(path: str, size: int) -> None:
    block = os.urandom(MiB)
    with open(path, "ab", buffering=0) as f:
        for _ in range(size // MiB):
            f.write(block)


def mtime_policy(size: int) -> None:
    print(f"\n### An append, then a full read ({size // MiB} MiB log)\n")
    print("| mtime granularity | mtime changed | full read after 4 KiB append | "
          "bytes the daemon served |")
    print("| --- | --- | --- | --- |")
    for g in ("0", "60"):
        with mounted(f"mtime_granularity={g}") as (_d, mnt, _a):
            os.mkdir(f"{mnt}/t")
            log = f"{mnt}/t/big"
            fill(log, size)
            timed_cat(log)
            timed_cat(log)
            m0 = os.stat(log).st_mtime_ns
            r0 = read_bytes(log)
            with open(log, "ab") as f:
                f.write(os.urandom(4096))
            time.sleep(1.1)
            m1 = os.stat(log).st_mtime_ns
            t = timed_cat(log)
            served = read_bytes(log) - r0
            label = "exact (0)" if g == "0" else f"{g} s"
            print(f"| {label} | {'yes' if m0 != m1 else 'no'} | {t * 1000:.0f} ms | "
                  f"{served / MiB:.2f} MiB |")


def cache_and_readahead(size: int) -> None:
    print(f"\n### Reads of a {size // MiB} MiB log (1 MiB read() calls)\n")
    print("| read_ahead_kb | backing files | first read | mean read request | "
          "warm read (page cache) | daemon bytes, 2nd read |")
    print("| --- | --- | --- | --- | --- | --- |")
    for ra, disk in (("128", "cached"), ("1024", "cached"), ("128", "on disk"),
                     ("1024", "on disk"), ("128", "cached"), ("1024", "cached"),
                     ("128", "on disk"), ("1024", "on disk")):
        with mounted(f"read_ahead_kb={ra}") as (data, mnt, args):
            os.mkdir(f"{mnt}/t")
            log = f"{mnt}/t/big"
            fill(log, size)
            remount(mnt, args)
            if disk == "on disk":
                drop_backing_cache(data)
            cold = timed_cat(log)
            c = fuse_counters(log)
            r0 = c["read_bytes"]
            req = c["read_bytes"] / max(1, c["read_calls"]) / 1024
            warm = min(timed_cat(log) for _ in range(3))
            print(f"| {ra} | {disk} | {size / MiB / cold:.0f} MB/s | {req:.0f} KiB | "
                  f"{size / MiB / warm:.0f} MB/s | {read_bytes(log) - r0} |")


def appends() -> None:
    print("\n### Appends through the mount (one process, O_APPEND)\n")
    print("| write size | writes/s | MB/s |")
    print("| --- | --- | --- |")
    with mounted() as (_d, mnt, _a):
        os.mkdir(f"{mnt}/t")
        for bs, total in ((100, 20 * MiB // 10), (4096, 64 * MiB), (MiB, 256 * MiB)):
            log = f"{mnt}/t/w{bs}"
            buf = b"x" * (bs - 1) + b"\n"
            n = total // bs
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            t0 = time.perf_counter()
            for _ in range(n):
                os.write(fd, buf)
            dt = time.perf_counter() - t0
            os.close(fd)
            print(f"| {bs} B | {n / dt:,.0f} | {n * bs / MiB / dt:.0f} |")


def fsync_stall(seconds: float = 5.0) -> None:
    """How much one log's fsyncs delay small appends to another log."""
    import threading
    print("\n### 100 B appends to one log while another log writes 1 MiB + fsync every 50 ms\n")
    with mounted() as (_d, mnt, _a):
        os.mkdir(f"{mnt}/t")
        stop = threading.Event()
        syncs: list[float] = []

        def syncer() -> None:
            fd = os.open(f"{mnt}/t/synced", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            while not stop.is_set():
                os.write(fd, b"y" * MiB)
                t = time.perf_counter()
                os.fsync(fd)
                syncs.append(time.perf_counter() - t)
                time.sleep(0.05)
            os.close(fd)

        th = threading.Thread(target=syncer)
        th.start()
        fd = os.open(f"{mnt}/t/small", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        lat = []
        end = time.time() + seconds
        while time.time() < end:
            t = time.perf_counter()
            os.write(fd, b"x" * 99 + b"\n")
            lat.append(time.perf_counter() - t)
        stop.set()
        th.join()
        os.close(fd)
        lat.sort()
        syncs.sort()
        q = lambda xs, f: xs[min(len(xs) - 1, int(len(xs) * f))]  # noqa: E731
        print("| fsync (1 MiB) p50 | fsync max | append p50 | append p99 | append p99.9 | "
              "append max |")
        print("| --- | --- | --- | --- | --- | --- |")
        print(f"| {q(syncs, .5) * 1e3:.1f} ms | {syncs[-1] * 1e3:.1f} ms | "
              f"{q(lat, .5) * 1e6:.0f} us | {q(lat, .99) * 1e6:.0f} us | "
              f"{q(lat, .999) * 1e6:.0f} us | {lat[-1] * 1e3:.1f} ms |")


def cold_read_stall(size: int) -> None:
    """How much a cold read of one log delays small appends to another log."""
    import threading
    print(f"\n### 100 B appends to one log during a cold read of a {size // MiB} MiB log\n")
    with mounted() as (data, mnt, args):
        os.mkdir(f"{mnt}/t")
        fill(f"{mnt}/t/big", size)
        remount(mnt, args)
        drop_backing_cache(data)
        done = threading.Event()
        took: list[float] = []

        def reader() -> None:
            took.append(timed_cat(f"{mnt}/t/big"))
            done.set()

        fd = os.open(f"{mnt}/t/small", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        th = threading.Thread(target=reader)
        th.start()
        lat = []
        while not done.is_set():
            t = time.perf_counter()
            os.write(fd, b"x" * 99 + b"\n")
            lat.append(time.perf_counter() - t)
        th.join()
        os.close(fd)
        lat.sort()
        q = lambda xs, f: xs[min(len(xs) - 1, int(len(xs) * f))]  # noqa: E731
        print("| cold read | append p50 | append p99 | append p99.9 | append max |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| {size / MiB / took[0]:.0f} MB/s | {q(lat, .5) * 1e6:.0f} us | "
              f"{q(lat, .99) * 1e6:.0f} us | {q(lat, .999) * 1e6:.0f} us | "
              f"{lat[-1] * 1e3:.1f} ms |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--only", action="append", choices=["mtime", "read", "append", "fsync", "coldread"])
    a = ap.parse_args()
    size = a.size_mib * MiB
    which = a.only or ["mtime", "read", "append", "fsync", "coldread"]
    if "mtime" in which:
        mtime_policy(size)
    if "read" in which:
        cache_and_readahead(size)
    if "append" in which:
        appends()
    if "fsync" in which:
        fsync_stall()
    if "coldread" in which:
        cold_read_stall(size)


if __name__ == "__main__":
    main()
