"""Tiered storage through the real tools: a mount with -o remote= against SeaweedFS on
loopback, logs written with dd and echo, their local copies deleted, then read back
through the mount (cat, grep, tail -c, dd skip, mmap), through `logfs serve` (curl:
ranges, ?record=, ?since=, ?follow from an old offset), `logfs consume` and the mount's
Kafka listener (kcat); a bad
bucket refused at mount; a kill -9 in the middle of uploads (whose worker processes die
with the daemon)."""

from __future__ import annotations

import mmap
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fuse"))
sys.path.insert(0, str(HERE.parent / "exporter"))

from fuse_helpers import LOGFS, new_mount, require_fuse, run, tear_down, wait_for  # noqa: E402
from exporter_helpers import start_exporter, stop_process  # noqa: E402
import s3kit  # noqa: E402

KCAT = shutil.which("kcat") or "/usr/bin/kcat"

pytestmark = [pytest.mark.fuse]

MiB = 1 << 20


def tier_options(url: str, endpoint: str, *extra: str) -> list[str]:
    return [f"remote={url}", f"remote.endpoint={endpoint}", "remote.storage.enable=true",
            "local.retention.bytes=0", f"segment.bytes={MiB}", *extra]


@pytest.fixture
def mounts(tmp_path, seaweed_env):
    require_fuse()
    made = []
    yield lambda name, options, do_mount=True: new_mount(made, tmp_path / name / "data",
                                                         tmp_path / name / "mnt", options, do_mount)
    tear_down(made)


def numbered(n: int, start: int = 0) -> bytes:
    return b"".join(b"line %08d %s\n" % (i, b"x" * 80) for i in range(start, start + n))


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_tiered(m, topic: str, log: str, timeout: float = 60) -> dict:
    def done():
        d = m.describe(topic, log)
        return d if d.get("local_segments") == 1 and d.get("remote_segments", 0) >= 2 \
            and d.get("upload_backlog_segments") == 0 else None
    return wait_for(done, timeout, f"{topic}/{log} tiered down to its active segment")


def test_a_tiered_log_reads_the_same_through_every_tool(mounts, remote_url, seaweed, tmp_path):
    m = mounts("w", tier_options(remote_url, seaweed.endpoint))
    os.mkdir(m.p("t"))
    data = numbered(60_000)  # 5.6 MB: five sealed segments
    src = tmp_path / "src"
    src.write_bytes(data)
    run(f"dd if={src} bs=64k status=none >> {m.p('t', 'l')}")
    run(f"echo 'the last line' >> {m.p('t', 'l')}")
    data += b"the last line\n"
    d = wait_tiered(m, "t", "l")
    assert d["start_offset"] == 0 and d["end_offset"] == len(data)
    assert d["remote_bytes"] + d["local_bytes"] == len(data)
    assert d["tiering"]["uploaded_segments"] >= 2
    seg_files = [n for n in os.listdir(m.data / "t" / "l") if n.endswith(".log")]
    assert len(seg_files) == 1, seg_files  # only the active segment is local
    # drop the mount's page cache of the log, so reads really come from the bucket
    run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
    assert run(["cat", m.p("t", "l")]).stdout.encode() == data
    assert run(["grep", "-c", "line 00012345 ", m.p("t", "l")]).stdout.strip() == "1"
    assert run(["tail", "-c", "+1000001", m.p("t", "l")]).stdout.encode() == data[1_000_000:]
    got = subprocess.run(["dd", f"if={m.p('t', 'l')}", "bs=4096", "skip=300", "count=2", "status=none"],
                         capture_output=True, check=True).stdout
    assert got == data[300 * 4096:302 * 4096]
    with open(m.p("t", "l"), "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
        assert mm[2 * MiB:2 * MiB + 100] == data[2 * MiB:2 * MiB + 100]
    assert os.stat(m.p("t", "l")).st_size == len(data)
    # the exporter reads the same data directory, and the bucket through it
    ex = start_exporter(m.data, tmp_path)
    try:
        r = run(["curl", "-s", "-r", "1500000-1500099", f"{ex.url}/t/l"])
        assert r.stdout.encode() == data[1_500_000:1_500_100]
        width = len(numbered(1))
        status, _h, body = ex.get("/t/l?record=12345")
        assert status == 200 and body == data[12345 * width:]
        since = m.describe("t", "l")["created_ms"]
        status, _h, body = ex.get(f"/t/l?since={since}")
        assert status == 200 and body == data
        r = subprocess.run(["curl", "-s", f"{ex.url}/t/l"], capture_output=True, check=True)
        assert r.stdout == data
        r = subprocess.run(["curl", "-s", "-N", "--max-time", "2", f"{ex.url}/t/l?follow=1&offset=5000000"],
                           capture_output=True)
        assert r.stdout == data[5_000_000:]
        status, _h, body = ex.get("/metrics")  # the tiers and the backlog, as describe has them
        assert status == 200
        assert f'logfs_log_remote_segments{{topic="t",log="l"}} {d["remote_segments"]}\n'.encode() in body
        assert f'logfs_log_local_start_offset{{topic="t",log="l"}} {d["local_start_offset"]}\n'.encode() in body
        assert b'logfs_log_upload_backlog_segments{topic="t",log="l"} 0\n' in body
    finally:
        stop_process(ex.proc)
    # logfs consume reads it from the start, remote segments first
    r = subprocess.run([LOGFS, "consume", "--from", "earliest", "-n", "3", m.p("t", "l")],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == numbered(3)


def test_a_missing_bucket_is_refused_at_mount_and_nothing_is_touched(mounts, seaweed):
    m = mounts("w", tier_options("s3://no-such-bucket-here/p", seaweed.endpoint), do_mount=False)
    r = m.mount(check=False)
    assert r.returncode != 0
    assert "no-such-bucket-here" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (m.data / ".logfs" / "remote.json").exists()


def test_kill9_during_uploads_loses_and_doubles_nothing(mounts, remote_url, seaweed, tmp_path):
    opts = tier_options(remote_url, seaweed.endpoint)
    m = mounts("w", opts)
    os.mkdir(m.p("t"))
    data = numbered(100_000)
    src = tmp_path / "src"
    src.write_bytes(data)
    run(f"dd if={src} bs=1M status=none >> {m.p('t', 'l')} && sync {m.p('t', 'l')}")
    # let some uploads start, then kill the daemon in the middle of them
    wait_for(lambda: m.describe("t", "l").get("remote_segments", 0) >= 1, 30, "a first upload")
    # the uploads run in worker processes of the daemon's (its GIL is the FUSE handlers')
    workers = children(m.pid)
    assert workers, "no upload worker process under the daemon"
    m.kill9()
    m.wait_unmounted()
    # and they die with it: no upload goes on (or commits a manifest) behind the next mount
    wait_for(lambda: not any(alive(w) for w in workers), 10, "the upload workers to die with the daemon")
    run(["fusermount3", "-u", "-z", str(m.mnt)], check=False)
    m.mount()
    d = wait_tiered(m, "t", "l")
    assert d["end_offset"] == len(data)
    assert run(["cat", m.p("t", "l")]).stdout.encode() == data
    # every byte counted once: the manifest's segments tile [0, local start)
    assert d["remote_end_offset"] == d["local_start_offset"]


def test_kafka_consumers_read_remote_segments(mounts, remote_url, seaweed, tmp_path):
    """The mount's Kafka listener serves records of remote-only segments: kcat from the
    beginning gets every record, and from an offset in the middle of a remote segment
    exactly the records from there (fetched by ranged GETs from a worker thread)."""
    (port,) = s3kit.free_ports(1)
    bootstrap = f"127.0.0.1:{port}"
    m = mounts("w", tier_options(remote_url, seaweed.endpoint, f"kafka={bootstrap}"))
    os.mkdir(m.p("t"))
    data = numbered(40_000)  # 3.7 MB: three sealed segments, then the active one
    src = tmp_path / "src"
    src.write_bytes(data)
    run(f"dd if={src} bs=64k status=none >> {m.p('t', 'l')}")
    d = wait_tiered(m, "t", "l")
    assert d["remote_start_offset"] == 0 and d["local_start_offset"] > MiB
    lines = data.splitlines()

    def kcat(*args: str) -> list[bytes]:
        r = subprocess.run([KCAT, "-b", bootstrap, "-X", "socket.timeout.ms=5000", "-C", "-t", "t.l",
                            "-p", "0", "-e", "-q", "-f", "%o %s\\n", *args],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    got = kcat("-o", "beginning")
    assert got == [b"%d %s" % (i, line) for i, line in enumerate(lines)]
    got = kcat("-o", "12345", "-c", "3")
    assert got == [b"%d %s" % (i, lines[i]) for i in (12345, 12346, 12347)]
