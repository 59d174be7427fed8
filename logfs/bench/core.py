"""Benchmark of the storage core against plain Python file I/O, in the same run.

    python -m logfs.bench.core [--size-mib N] [--seeks N] [--json] [--dir DIR]

Phases (each on the core and on one plain file with os.write / os.pread):

* append N MiB as 100-byte lines, one call per line (logfs: Log.append; plain:
  os.write on an O_APPEND file);
* append N MiB in 1 MiB chunks;
* read it back in 1 MiB reads (logfs: Log.read_range + os.pread of each FileRange,
  the path the FUSE daemon takes; plain: os.pread), twice, the faster pass counting:
  both read what they have just written, from the page cache;
* seek to 10,000 random records and read each (logfs: Log.record_position +
  Log.read; plain: os.pread at n * 100, the ideal of a fixed-width file whose
  positions need no index), and to 10,000 random append times (logfs only).

Throughput is MB/s (10^6 bytes) and records/s; ratio = logfs / plain (1.0 = as fast
as the bare system calls). Writes are measured into the page cache; the fsync that
follows is timed separately. The working directory is a temporary directory beside
the repository (never tmpfs: the page cache and the disk are what is measured), removed
at the end. Progress goes to stderr; the table or (--json) a JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from logfs.core import ManualClock, open_log_store

LINE = 100
CHUNK = 1 << 20
MB = 1_000_000
READ_PASSES = 2  # reads are timed twice, the faster pass counts (another process may drop caches)


class Progress:
    """One line per phase on stderr, rewritten at most every 0.5 s."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int, force: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        pct = 100.0 * done / total if total else 100.0
        end = "\n" if force else ""
        sys.stderr.write(f"\r  {phase:<34} {pct:5.1f}%{end}")
        sys.stderr.flush()


def _line_pool(n: int = 4096) -> list[bytes]:
    """Distinct 100-byte lines (99 bytes + newline)."""
    pool = []
    for i in range(n):
        head = b"%08d " % i
        pool.append(head + bytes(0x61 + (i + k) % 26 for k in range(LINE - 1 - len(head))) + b"\n")
    return pool


def _chunk(pool: list[bytes]) -> bytes:
    block = b"".join(pool)
    return (block * (CHUNK // len(block) + 1))[:CHUNK]


def _timed_loop(phase: str, count: int, step: Callable[[int], None], progress: Progress) -> float:
    t0 = time.perf_counter()
    tick = max(1, count // 200)
    for i in range(count):
        step(i)
        if i % tick == 0:
            progress(phase, i, count)
    elapsed = time.perf_counter() - t0
    progress(phase, count, count, force=True)
    return elapsed


def _filesystem_of(path: Path) -> tuple[str, str]:
    """(fstype, device) of the mount holding *path*."""
    best = ("", "?", "?")
    real = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, fstype, dev)
    return best[1], best[2]


def run(size_mib: int, seeks: int, workdir: Path, quiet: bool) -> dict:
    progress = Progress(quiet)
    total = size_mib * (1 << 20)
    nlines = total // LINE
    nchunks = total // CHUNK
    pool = _line_pool()
    chunk = _chunk(pool)
    plen = len(pool)
    rnd = random.Random(1)
    results: dict = {"size_bytes": total, "line_bytes": LINE, "chunk_bytes": CHUNK, "seeks": seeks}

    def rate(nbytes: int, records: int, seconds: float) -> dict:
        return {"seconds": round(seconds, 4), "MB_s": round(nbytes / MB / seconds, 2),
                "records_s": round(records / seconds, 1)}

    # -- plain Python: one file, os.write / os.pread --------------------------------
    plain = workdir / "plain.dat"
    fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    w = os.write
    t = _timed_loop("plain: write 100 B lines", nlines, lambda i: w(fd, pool[i % plen]), progress)
    t_sync = time.perf_counter()
    os.fsync(fd)
    results["plain_lines"] = dict(rate(nlines * LINE, nlines, t), fsync_s=round(time.perf_counter() - t_sync, 3))
    os.close(fd)
    fd = os.open(plain, os.O_RDONLY)
    t = min(_timed_loop(f"plain: read 1 MiB preads ({k}/{READ_PASSES})", nchunks,
                        lambda i: os.pread(fd, CHUNK, i * CHUNK), progress) for k in range(1, READ_PASSES + 1))
    results["plain_read"] = rate(nchunks * CHUNK, nchunks * CHUNK // LINE, t)
    targets = [rnd.randrange(nlines) for _ in range(seeks)]
    t = _timed_loop("plain: pread random records", seeks,
                    lambda i: os.pread(fd, LINE, targets[i] * LINE), progress)
    results["plain_seek"] = rate(seeks * LINE, seeks, t)
    os.close(fd)
    os.unlink(plain)

    fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    t = _timed_loop("plain: write 1 MiB chunks", nchunks, lambda i: w(fd, chunk), progress)
    t_sync = time.perf_counter()
    os.fsync(fd)
    results["plain_chunks"] = dict(rate(nchunks * CHUNK, nchunks * CHUNK // LINE, t),
                                   fsync_s=round(time.perf_counter() - t_sync, 3))
    os.close(fd)
    os.unlink(plain)

    # -- the core --------------------------------------------------------------------
    data = workdir / "data"
    data.mkdir()
    clock = ManualClock(1_700_000_000_000)
    store = open_log_store(str(data), clock=clock)  # Kafka's defaults: 1 GiB segments, 4 KiB interval
    try:
        store.create_topic("bench")
        log = store.create_log("bench", "lines")
        append = log.append

        def append_line(i: int) -> None:
            append(pool[i % plen])
            if i % 1000 == 999:
                clock.advance(1)  # one ms per 1000 records: a time index worth seeking in

        t = _timed_loop("logfs: append 100 B lines", nlines, append_line, progress)
        t_sync = time.perf_counter()
        log.fsync()
        results["logfs_lines"] = dict(rate(nlines * LINE, nlines, t), fsync_s=round(time.perf_counter() - t_sync, 3))
        assert log.end_offset == nlines * LINE and log.records == nlines

        def read_chunk(i: int) -> None:
            for r in log.read_range(i * CHUNK, (i + 1) * CHUNK):
                os.pread(r.fd, r.length, r.position)

        t = min(_timed_loop(f"logfs: read 1 MiB, read_range+pread ({k}/{READ_PASSES})", nchunks,
                            read_chunk, progress) for k in range(1, READ_PASSES + 1))
        results["logfs_read"] = rate(nchunks * CHUNK, nchunks * CHUNK // LINE, t)

        def seek_record(i: int) -> None:
            pos = log.record_position(targets[i])
            log.read(pos, LINE)

        t = _timed_loop("logfs: seek random records", seeks, seek_record, progress)
        results["logfs_seek"] = rate(seeks * LINE, seeks, t)
        assert all(log.record_position(n) == n * LINE for n in targets[:100])
        t_end = clock.now_ms()
        times = [rnd.randrange(1_700_000_000_000, t_end + 1) for _ in range(seeks)]
        t = _timed_loop("logfs: seek random times", seeks, lambda i: log.time_position(times[i]), progress)
        results["logfs_time_seek"] = rate(seeks * LINE, seeks, t)
        store.delete_log("bench", "lines")

        log = store.create_log("bench", "chunks")
        append = log.append
        t = _timed_loop("logfs: append 1 MiB chunks", nchunks, lambda i: append(chunk), progress)
        t_sync = time.perf_counter()
        log.fsync()
        results["logfs_chunks"] = dict(rate(nchunks * CHUNK, nchunks * CHUNK // LINE, t),
                                       fsync_s=round(time.perf_counter() - t_sync, 3))
        store.delete_log("bench", "chunks")
    finally:
        store.close()

    for name, a, b in (("append_lines", "logfs_lines", "plain_lines"),
                       ("append_chunks", "logfs_chunks", "plain_chunks"),
                       ("read", "logfs_read", "plain_read"),
                       ("seek_records", "logfs_seek", "plain_seek")):
        results.setdefault("ratio", {})[name] = round(results[a]["MB_s"] / results[b]["MB_s"], 3)
    return results


def _table(r: dict) -> str:
    def cell(x: dict | None) -> str:
        if x is None:
            return f"{'-':>26}"
        return f"{x['MB_s']:>9.1f} MB/s {x['records_s']:>11,.0f} rec/s"

    rows = [("append 100 B lines", "plain_lines", "logfs_lines", "append_lines"),
            ("append 1 MiB chunks", "plain_chunks", "logfs_chunks", "append_chunks"),
            ("read back, 1 MiB reads", "plain_read", "logfs_read", "read"),
            (f"seek+read {r['seeks']:,} random records", "plain_seek", "logfs_seek", "seek_records"),
            (f"seek {r['seeks']:,} random times", None, "logfs_time_seek", None)]
    out = [f"{'':<34} {'plain Python (os.write/pread)':>32} {'logfs core':>32} {'ratio':>7}"]
    for label, p, c, k in rows:
        ratio = f"{r['ratio'][k]:>7.2f}" if k else f"{'':>7}"
        out.append(f"{label:<34} {cell(r.get(p) if p else None):>32} {cell(r[c]):>32} {ratio}")
    for label, key in (("fsync after 100 B lines", "lines"), ("fsync after 1 MiB chunks", "chunks")):
        out.append(f"{label:<34} {r['plain_' + key]['fsync_s']:>27.3f} s {r['logfs_' + key]['fsync_s']:>29.3f} s")
    return "\n".join(out)


def default_workdir_parent() -> Path:
    """The repository's directory (same disk as the repo), else the current one."""
    repo = Path(__file__).resolve().parents[2]
    return repo if os.access(repo, os.W_OK) else Path.cwd()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logfs.bench.core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="MiB appended per phase (default 1024)")
    parser.add_argument("--seeks", type=int, default=10_000, help="random seeks (default 10000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--dir", type=Path, default=None,
                        help="parent of the temporary working directory (default: beside the repository)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.size_mib < 1 or args.seeks < 1:
        parser.error("--size-mib and --seeks must be at least 1")
    parent = args.dir or default_workdir_parent()
    workdir = Path(tempfile.mkdtemp(prefix=".bench-core-", dir=parent))
    fstype, device = _filesystem_of(workdir)
    if fstype in ("tmpfs", "ramfs") and not args.quiet:
        print(f"warning: {workdir} is on {fstype}: this measures memory, not a disk", file=sys.stderr)
    if not args.quiet:
        print(f"logfs core benchmark: {args.size_mib} MiB per phase in {workdir} ({fstype} on {device})",
              file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill, like on ^C
    try:
        results = run(args.size_mib, args.seeks, workdir, args.quiet)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results.update({"dir": str(workdir), "fstype": fstype, "device": device,
                    "python": sys.version.split()[0]})
    if args.json:
        print(json.dumps(results, indent=1, sort_keys=True))
    else:
        print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
