"""Tiered storage's figures (issue 14), W15-W18, against SeaweedFS (``weed mini``,
run with nice 10: it stands for a store on other machines) on loopback, the way a user
would run them: a ``logfs mount -o remote=...``, its logs written through the mount,
tiering switched on with ``logfs config``, reads with ``cat`` and ``curl``.

- W15 upload (a log of 1 GiB in 16 segments of 64 MiB): the seconds from ``logfs
  config LOG remote.storage.enable=true`` until every sealed segment is committed and
  its local copy gone (watched in the log's directory; ``logfs describe`` confirms),
  against boto3's ``put_object`` (with Content-MD5, as logfs sends) of the same
  segment and index files, one after the other, into the same server (the server is
  the limit; target >= 0.8x).
- W16 appends while uploads run: 1 MiB writes through the mount to one log, and
  100-byte lines to another, while a third log's backlog uploads, against the same
  writes with nothing uploading (target >= 0.95x; medians of 3 runs each).
- W17 cold read of a remote-only log (page cache dropped, remote cache emptied):
  ``cat`` through the mount and ``curl`` from ``logfs serve``, against a cold read of
  the same log while it was local (the ratio is reported).
- W18 first byte of ``?record=N`` in a remote segment, each in a chunk this ``logfs
  serve`` never read (its cache emptied first; the index files stay: seeks need no
  segment download; target < 50 ms), timed as W7: from connect to the first body byte.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from logfs.bench.fs_workloads import drop_caches, quantile, sync, timed_lines
from logfs.bench.net_workloads import fill_file, ttfb
from logfs.bench.systems import LogfsMount, LogfsServe, SystemUnavailable
from logfs.core.manifest import CHUNK_BYTES

MiB = 1 << 20
MB = 1_000_000
BUCKET = "logfs-bench"
SEGMENTS = 16  # a log of N MiB is written in segments of N/16 MiB (64 MiB for 1 GiB)
LINE = 100  # fill_file's lines
# the object store normally runs on other machines; here it shares two cores with logfs,
# so it runs niced: W16 then measures logfs's uploads, not SeaweedFS's CPU
STORE_NICE = 10


class TieredMount(LogfsMount):
    """A ``logfs mount`` of its own data directory tiering to *endpoint*."""

    def __init__(self, workdir: Path, endpoint: str, segment_bytes: int) -> None:
        super().__init__(workdir / "tier")
        self.name, self.label = "logfs_tiered", "logfs mount -o remote="
        self.segment_bytes = segment_bytes
        self.mount_args = ("-o", f"remote=s3://{BUCKET}/bench,remote.endpoint={endpoint}",
                           "-o", f"segment.bytes={segment_bytes},local.retention.bytes=0")


def _logfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logfs.cli", *args], capture_output=True, text=True,
                          timeout=120, check=True)


def _describe(path: str) -> dict:
    return json.loads(_logfs("describe", "--json", path).stdout)


def _wait_uploaded(path: str, data_dir: str, timeout_s: float = 600) -> dict:
    """Until every sealed segment of the log at mount *path* is committed and its local
    copy gone: watched in the log's directory (its manifest copy and segment files,
    a stat and a small read every 20 ms: a `logfs describe` process each time would
    take a core's share from what is measured), then `logfs describe` once."""
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(path)))
    directory = os.path.join(data_dir, rel)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = sorted(n for n in os.listdir(directory) if n.endswith(".log"))
        try:
            with open(os.path.join(directory, "remote.json"), "rb") as f:
                segs = json.loads(f.read())["segments"]
        except (OSError, ValueError, KeyError):
            segs = []
        if len(logs) == 1 and segs and segs[-1]["base"] + segs[-1]["size"] == int(logs[0][:20]):
            return _describe(path)
        time.sleep(0.02)
    raise TimeoutError(f"{path}: uploads did not finish in {timeout_s:.0f} s")


def _empty_remote_cache(data: str) -> None:
    for path in glob.glob(os.path.join(data, ".logfs", "remote-cache", "*", "*", "*", "c*")):
        os.unlink(path)


def _url(serve: LogfsServe, rel: str) -> str:
    return f"http://127.0.0.1:{serve.port}{serve.url_path(rel)}"


def _timed(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {r.returncode}: {r.stderr[-300:]!r}")
    return time.perf_counter() - t0, len(r.stdout)


def _read_rates(mount: TieredMount, serve: LogfsServe, rel: str, size: int) -> dict:
    out = {}
    for how, cmd in (("mount_cat", ["cat", mount.path(rel)]),
                     ("serve_curl", ["curl", "-sf", _url(serve, rel)])):
        _empty_remote_cache(mount.backing)
        drop_caches([])
        s, n = _timed(cmd)
        if n != size:
            raise RuntimeError(f"{how}: {n} bytes read, {size} expected")
        out[f"{how}_MB_s"] = round(size / s / MB, 1)
    return out


def _append_rate(path: str, mib: int) -> float:
    t0 = time.perf_counter()
    fill_file(path, mib * MiB)  # no fsync: the page cache decides, as in W1
    return mib * MiB / (time.perf_counter() - t0) / MB


def _direct_upload(client, data: str, rel_dir: str) -> dict:
    """boto3 put_object of a log's segment and index files, with Content-MD5."""
    sealed = sorted(glob.glob(os.path.join(data, rel_dir, "*.log")))[:-1]  # what logfs uploads
    files = [p[:-4] + suffix for p in sealed for suffix in (".log", ".index", ".timeindex")]
    total = index_bytes = 0
    t0 = time.perf_counter()
    for p in files:
        md5 = hashlib.md5()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(4 * MiB), b""):
                md5.update(block)
        with open(p, "rb") as f:
            client.put_object(Bucket=BUCKET, Key=f"direct/{os.path.basename(p)}", Body=f,
                              ContentMD5=base64.b64encode(md5.digest()).decode())
        if p.endswith(".log"):
            total += os.path.getsize(p)
        else:
            index_bytes += os.path.getsize(p)
    s = time.perf_counter() - t0  # MB/s of segment bytes, as logfs's figure (both send the indexes too)
    return {"bytes": total, "index_bytes": index_bytes, "seconds": round(s, 2), "MB_s": round(total / s / MB, 1)}


def run_tier(results: dict, workdir: Path, sizes: dict, attempt: Callable, log: Callable[[str], None]) -> None:
    """Start SeaweedFS, mount, run W15-W18, stop everything; a part that cannot run
    is reported as not measured."""
    from logfs.bench import s3servers
    try:
        server = s3servers.start_seaweed(workdir / "seaweedfs", nice=STORE_NICE)
    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
        results["unavailable"]["seaweedfs"] = str(exc)[:300]
        log(f"bench: SeaweedFS not started, W15-W18 not measured: {exc}")
        return
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        server.create_bucket(BUCKET)
        mib = sizes["tier_mib"]
        with TieredMount(workdir, server.endpoint, max(MiB, mib * MiB // SEGMENTS)) as mount:
            _run(results, workdir, mount, server, mib, sizes, attempt, log)
    except SystemUnavailable as exc:
        results["unavailable"]["logfs_tiered"] = str(exc)
        log(f"bench: the tiered mount not measured: {exc}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
        shutil.rmtree(workdir / "seaweedfs", ignore_errors=True)


W16_RUNS = 3  # of each kind; the median is reported
W16_LINES = 20_000


def _logs_left(directory: str) -> int:
    try:
        return sum(1 for n in os.listdir(directory) if n.endswith(".log"))
    except OSError:
        return 0


def _small_rate(path: str, lines: int = W16_LINES) -> float:
    """100-byte lines appended with os.write by one process (as W2): lines a second."""
    return lines / timed_lines(path, lines)


def appends_while_uploading(mount: TieredMount, mib: int, amib: int) -> dict:
    """W16: *amib* MiB of 1 MiB appends to log b and W16_LINES 100-byte lines to log s,
    W16_RUNS times with nothing uploading, then up to W16_RUNS times while the *mib* MiB
    backlog of log c uploads (a run counts only if uploads were still going at its
    end; the first one, flagged, if even it outlasted them); the medians' ratios."""
    b, c, small = mount.path("b"), mount.path("c"), mount.path("s")
    alone, alone_lines = [], []
    for _ in range(W16_RUNS):
        alone.append(_append_rate(b, amib))
        alone_lines.append(_small_rate(small))
    fill_file(c, mib * MiB)
    sync()
    _logfs("config", c, "remote.storage.enable=true")
    directory = os.path.join(mount.backing, "bench", "c")
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(directory, "remote.json")) and time.monotonic() < deadline:
        time.sleep(0.02)  # until the first segments are up: the uploads are under way
    during, during_lines = [], []
    partial = False
    for i in range(W16_RUNS):
        rate, lines = _append_rate(b, amib), _small_rate(small)
        if _logs_left(directory) <= 1:  # the backlog drained during this run
            if i == 0:  # (a small backlog: --quick) keep it, and say so
                during, during_lines, partial = [rate], [lines], True
            break
        during.append(rate)
        during_lines.append(lines)
    _wait_uploaded(c, mount.backing)
    a, d = quantile(sorted(alone), 0.5), quantile(sorted(during), 0.5)
    la, ld = quantile(sorted(alone_lines), 0.5), quantile(sorted(during_lines), 0.5)
    return {"alone_MB_s": round(a, 1), "during_uploads_MB_s": round(d, 1), "ratio": round(d / a, 2),
            "alone_lines_s": round(la), "during_uploads_lines_s": round(ld), "lines_ratio": round(ld / la, 2),
            "alone_runs_MB_s": [round(x, 1) for x in alone], "during_runs_MB_s": [round(x, 1) for x in during],
            "alone_runs_lines_s": [round(x) for x in alone_lines],
            "during_runs_lines_s": [round(x) for x in during_lines],
            "backlog_drained_during_the_run": partial}


def first_bytes(serve: LogfsServe, path: str, samples: int) -> dict:
    """W18: the first byte of ``?record=N`` for N in *samples* distinct remote chunks
    that this `logfs serve` never read (every third chunk at most: a read fetches the
    next chunk ahead), in random order; the log's lines are LINE bytes."""
    d = _describe(path)
    chunks = d["local_start_offset"] // CHUNK_BYTES
    rng = random.Random(15)
    picked = rng.sample(range(0, chunks, 3), min(samples, len(range(0, chunks, 3))))
    times = []
    for c in picked:
        n = (c * CHUNK_BYTES + rng.randrange(CHUNK_BYTES - 2 * LINE)) // LINE + 1
        times.append(ttfb(serve.port, serve.url_path(f"a?record={n}")) * 1000)
    times.sort()
    return {"samples": len(times), "p50_ms": round(quantile(times, 0.5), 2),
            "p99_ms": round(quantile(times, 0.99), 2), "max_ms": round(times[-1], 2)}


def _run(results: dict, workdir: Path, mount: TieredMount, server, mib: int, sizes: dict, attempt, log) -> None:
    os.makedirs(mount.path(), exist_ok=True)
    a, b, c = mount.path("a"), mount.path("b"), mount.path("c")
    log(f"W15-W18: tiered storage, SeaweedFS on loopback; a log of {mib} MiB in "
        f"{mount.segment_bytes / MiB:g} MiB segments written through the mount")
    fill_file(a, mib * MiB)
    sync()
    size = os.path.getsize(a)
    with LogfsServe(mount.backing, workdir, tag="-tier") as serve:
        cold_local = attempt(results, "W17", "local", _read_rates, mount, serve, "a", size)
        direct = attempt(results, "W15", "boto3", _direct_upload, server.client(), mount.backing,
                         os.path.join("bench", "a"))

        def upload() -> dict:
            t0 = time.perf_counter()
            _logfs("config", a, "remote.storage.enable=true")
            d = _wait_uploaded(a, mount.backing)
            s = time.perf_counter() - t0
            return {"bytes": d["remote_bytes"], "seconds": round(s, 2),
                    "MB_s": round(d["remote_bytes"] / s / MB, 1), "segments": d["remote_segments"]}
        up = attempt(results, "W15", "logfs", upload)
        if up and direct:
            up["ratio_to_boto3"] = round(up["MB_s"] / direct["MB_s"], 2)
            log(f"  W15 logfs / boto3: {up['ratio_to_boto3']}x")

        cold_remote = attempt(results, "W17", "remote", _read_rates, mount, serve, "a", size)
        if cold_local and cold_remote:
            for k in list(cold_local):
                cold_remote[k.replace("_MB_s", "_ratio_to_local")] = round(cold_remote[k] / cold_local[k], 2)
            log("  W17 remote / local: " + ", ".join(f"{k}={v}" for k, v in cold_remote.items() if "ratio" in k))

    # W18 with a `logfs serve` of its own: W17's holds the chunks it read (open
    # descriptors of cached chunk files outlive their unlinking)
    _empty_remote_cache(mount.backing)
    with LogfsServe(mount.backing, workdir, tag="-tier-w18") as serve:
        attempt(results, "W18", "logfs_serve", first_bytes, serve, a, sizes["tier_ttfb_samples"])

    amib = max(64, mib // 4)
    log(f"W16: {amib} MiB of 1 MiB appends to one log, alone and while {mib} MiB of another uploads")
    attempt(results, "W16", "logfs", appends_while_uploading, mount, mib, amib)

