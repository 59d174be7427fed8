"""Tiered storage's faults under a real mount (issue 14, "Faults"): the object store
unreachable for a while as producers append (refused, then a black hole that never
answers), the local disk full while remote reads fill the cache (a writer's and a
replica's), and a multi-node
SeaweedFS (master with replication 001, three volume servers, a filer, the S3 gateway)
losing a volume server in the middle of uploads and reads; a Kafka consumer seeking
into a cold remote segment of a slow store while appends go on (and `logfs serve`
seeking there while another client reads). Nothing is lost, appends
never wait for the store, the backlog drains, and each fault says so in the daemon's
log. Figures are printed at the end of the run ("tier fault figures").

LOGFS_TIER_OUTAGE_S (default 40) sets how long the store stays away."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fuse"))
sys.path.insert(0, str(HERE.parent / "exporter"))

from fuse_helpers import new_mount, require_fuse, run, tear_down, wait_for  # noqa: E402
from exporter_helpers import start_exporter, stop_process  # noqa: E402
import s3kit  # noqa: E402

KCAT = shutil.which("kcat") or "/usr/bin/kcat"

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

MiB = 1 << 20
OUTAGE_S = float(os.environ.get("LOGFS_TIER_OUTAGE_S", "40"))
FIGURES = s3kit.FIGURES  # printed by conftest.py at the end of the run


def tier_options(endpoint: str, bucket: str, *extra: str) -> list[str]:
    return [f"remote=s3://{bucket}/faults", f"remote.endpoint={endpoint}", "remote.storage.enable=true",
            "local.retention.bytes=0", f"segment.bytes={MiB}", *extra]


@pytest.fixture
def made(tmp_path):
    require_fuse()
    mounts: list = []
    yield mounts
    tear_down(mounts)


def numbered(n: int, start: int = 0) -> bytes:
    return b"".join(b"line %08d %s\n" % (i, b"x" * 80) for i in range(start, start + n))


def tiered(m, timeout: float) -> dict:
    def done():
        d = m.describe("t", "l")
        return d if d.get("local_segments") == 1 and d.get("remote_segments", 0) >= 2 \
            and d.get("upload_backlog_segments") == 0 else None
    return wait_for(done, timeout, "t/l tiered down to its active segment")


class Producer(threading.Thread):
    """Appends numbered lines to *path* with os.write, 100 lines a write, every
    *interval* s, until stopped; records what it wrote and its slowest write."""

    def __init__(self, path: str, start: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.path, self.next, self.interval = path, start, interval
        self.written = bytearray()
        self.max_write_s = 0.0
        self.writes = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                while not self._halt.is_set():
                    data = numbered(100, self.next)
                    t0 = time.monotonic()
                    os.write(fd, data)
                    self.max_write_s = max(self.max_write_s, time.monotonic() - t0)
                    self.written += data
                    self.next += 100
                    self.writes += 1
                    self._halt.wait(self.interval)
            finally:
                os.close(fd)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def stop(self) -> bytes:
        self._halt.set()
        self.join(30)
        assert self.error is None, self.error
        return bytes(self.written)


def use(server, monkeypatch) -> None:
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)


def test_the_store_away_for_a_while_appends_go_on_and_the_backlog_drains(made, seaweed, tmp_path,
                                                                         monkeypatch):
    bucket = "faults-outage"
    seaweed.create_bucket(bucket)
    proxy = s3kit.FlakyProxy(int(seaweed.endpoint.rsplit(":", 1)[1]))
    try:
        use(seaweed, monkeypatch)
        m = new_mount(made, tmp_path / "data", tmp_path / "mnt", tier_options(proxy.url, bucket), True)
        os.mkdir(m.p("t"))
        data = numbered(25_000)
        (tmp_path / "src").write_bytes(data)
        run(f"dd if={tmp_path / 'src'} bs=64k status=none >> {m.p('t', 'l')}")
        tiered(m, 60)
        # the store goes away: first refused, then a black hole that accepts and never answers
        producer = Producer(m.p("t", "l"), 25_000)
        producer.start()
        t0 = time.monotonic()
        proxy.refuse()
        time.sleep(OUTAGE_S / 2)
        during = m.describe("t", "l")
        proxy.blackhole()
        time.sleep(OUTAGE_S / 2)
        late = m.describe("t", "l")
        proxy.up()
        outage_s = time.monotonic() - t0
        data += producer.stop()
        assert during["tiering"]["tiering_error"], during["tiering"]
        assert not during["tiering"]["tiering_stopped"]
        assert late["upload_backlog_segments"] >= 2, late
        assert late["local_segments"] >= late["upload_backlog_segments"] + 1  # no local copy deleted
        # appends never waited for the store
        assert producer.max_write_s < 1.0, producer.max_write_s
        t1 = time.monotonic()
        d = tiered(m, 150)
        drain_s = time.monotonic() - t1
        assert d["tiering"]["tiering_error"] is None
        assert d["end_offset"] == len(data) and d["remote_end_offset"] == d["local_start_offset"]
        run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
        assert run(["cat", m.p("t", "l")]).stdout.encode() == data
        log = m.daemon_log()
        retries = [line for line in log.splitlines() if "tiering of t/l" in line and "retrying" in line]
        assert retries and len(retries) <= 12, retries  # one line a failed pass, backing off
        FIGURES["store_outage"] = {
            "outage_s": round(outage_s, 1), "appended_bytes": len(producer.written),
            "writes": producer.writes, "max_write_ms": round(producer.max_write_s * 1000, 1),
            "backlog_segments": late["upload_backlog_segments"], "failed_passes": len(retries),
            "drain_s": round(drain_s, 1)}
    finally:
        proxy.close()


def test_a_seek_into_a_cold_remote_segment_of_a_slow_store_holds_up_nothing_else(
        made, seaweed, tmp_path, monkeypatch):
    """A store that answers each request 1.5 s late: a Kafka consumer (kcat, on the
    mount's listener) starting in the middle of a remote segment whose index files and
    chunks are not cached needs three GETs before its first record; appends through
    the mount meanwhile are served at once (the seek's GETs run in worker threads, not
    on the thread that serves FUSE requests). The same for `logfs serve`: a ?record=
    seek into a cold remote segment does not hold up another client's read."""
    bucket = "faults-slow-seek"
    seaweed.create_bucket(bucket)
    proxy = s3kit.FlakyProxy(int(seaweed.endpoint.rsplit(":", 1)[1]))
    (port,) = s3kit.free_ports(1)
    try:
        use(seaweed, monkeypatch)
        opts = tier_options(proxy.url, bucket, f"kafka=127.0.0.1:{port}")
        m = new_mount(made, tmp_path / "data", tmp_path / "mnt", opts, True)
        os.mkdir(m.p("t"))
        data = numbered(40_000)
        (tmp_path / "src").write_bytes(data)
        run(f"dd if={tmp_path / 'src'} bs=64k status=none >> {m.p('t', 'l')}")
        tiered(m, 60)
        # a fresh daemon with nothing of the remote segments cached
        m.umount()
        shutil.rmtree(m.data / ".logfs" / "remote-cache")
        m.mount()
        proxy.latency_s = 1.5
        run(["touch", m.p("t", "other")])
        producer = Producer(m.p("t", "other"), 0)
        producer.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        r = subprocess.run([KCAT, "-b", f"127.0.0.1:{port}", "-X", "socket.timeout.ms=30000", "-C",
                            "-t", "t.l", "-p", "0", "-o", "12345", "-c", "2", "-e", "-q", "-f", "%o %s\\n"],
                           capture_output=True, timeout=90)
        seek_s = time.monotonic() - t0
        time.sleep(0.3)
        other = producer.stop()
        # the same for `logfs serve`: a ?record= seek into segment 0 (nothing of it
        # cached) while another client reads a local log
        ex = start_exporter(m.data, tmp_path)
        try:
            t1 = time.monotonic()
            slow = subprocess.Popen(["curl", "-sf", f"{ex.url}/t/l?record=5000"], stdout=subprocess.PIPE)
            time.sleep(0.5)
            t2 = time.monotonic()
            fast = subprocess.run(["curl", "-sf", f"{ex.url}/t/other"], capture_output=True, timeout=60)
            local_s = time.monotonic() - t2
            body, _ = slow.communicate(timeout=60)
            serve_seek_s = time.monotonic() - t1
        finally:
            stop_process(ex.proc)
        proxy.latency_s = 0.0
        assert fast.returncode == 0 and fast.stdout == other
        assert slow.returncode == 0 and body == data[5000 * len(numbered(1)):]
        assert serve_seek_s >= 2 * 1.5, serve_seek_s
        assert local_s < 0.5, (local_s, serve_seek_s)
        assert r.returncode == 0, r.stderr
        lines = data.splitlines()
        assert r.stdout.splitlines() == [b"12345 " + lines[12345], b"12346 " + lines[12346]]
        assert seek_s >= 3 * 1.5 - 0.5, seek_s  # it did wait for the slow store
        assert producer.max_write_s < 0.5, (producer.max_write_s, seek_s)
        assert run(["cat", m.p("t", "other")]).stdout.encode() == other
        assert "leaked" not in m.daemon_log()  # the upload workers were stopped cleanly
        FIGURES["slow_store_seek"] = {"latency_s": 1.5, "seek_s": round(seek_s, 1),
                                      "writes_meanwhile": producer.writes,
                                      "max_write_ms": round(producer.max_write_s * 1000, 1),
                                      "serve_seek_s": round(serve_seek_s, 1),
                                      "serve_local_read_meanwhile_s": round(local_s, 2)}
    finally:
        proxy.close()


@pytest.fixture
def tmpfs(tmp_path):
    made: list[Path] = []

    def make(size: int) -> Path:
        if os.geteuid() != 0:
            if os.environ.get("CI") == "true":
                pytest.fail("CI=true but not root: cannot mount a tmpfs")
            pytest.skip("mounting a tmpfs needs root")
        d = tmp_path / f"tmpfs{len(made)}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(d)],
                       check=True, capture_output=True, timeout=30)
        made.append(d)
        return d

    yield make
    for d in reversed(made):
        if subprocess.run(["umount", str(d)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(d)], capture_output=True, timeout=30)


def fill_disk(directory: Path, leave: int) -> Path:
    """Fill *directory*'s filesystem, then give back *leave* bytes (room for log lines,
    not for a 4 MiB chunk)."""
    filler = directory / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
    st = os.statvfs(directory)
    assert st.f_bavail * st.f_frsize < MiB, "the filesystem did not fill"
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_full_disk_while_caching_remote_reads_loses_no_read(made, seaweed, tmpfs, tmp_path,
                                                              monkeypatch):
    bucket = "faults-disk"
    seaweed.create_bucket(bucket)
    use(seaweed, monkeypatch)
    fs = tmpfs(24 * MiB)
    m = new_mount(made, fs / "data", tmp_path / "mnt", tier_options(seaweed.endpoint, bucket), True)
    os.mkdir(m.p("t"))
    data = numbered(70_000)  # 6.5 MB: six sealed segments go to the bucket
    (tmp_path / "src").write_bytes(data)
    run(f"dd if={tmp_path / 'src'} bs=64k status=none >> {m.p('t', 'l')}")
    d = tiered(m, 60)
    assert d["remote_bytes"] > 4 * MiB
    ex = start_exporter(m.data, tmp_path)
    try:
        filler = fill_disk(fs, 512 * 1024)
        run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
        # every remote chunk fetched now cannot be written to the cache: kept in memory
        assert run(["cat", m.p("t", "l")]).stdout.encode() == data
        r = subprocess.run(["curl", "-sf", f"{ex.url}/t/l"], capture_output=True, timeout=60)
        assert r.returncode == 0 and r.stdout == data
        r = subprocess.run(["curl", "-sf", f"{ex.url}/t/l?record=33333"], capture_output=True, timeout=60)
        assert r.stdout == data[33333 * len(numbered(1)):]
        log = m.daemon_log()
        full = [line for line in log.splitlines() if "remote cache: the disk is full" in line]
        assert len(full) == 1, full  # one line for the episode, not one a chunk
        cache = m.data / ".logfs" / "remote-cache"
        assert not [p for p in cache.rglob("c0*") if not p.name.endswith(".tmp")]
        # room again: the mount still reads (its chunks in memory), and a new reader's
        # fetches are written to the cache again
        filler.unlink()
        run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
        assert run(["tail", "-c", "+1000001", m.p("t", "l")]).stdout.encode() == data[1_000_000:]
        stop_process(ex.proc)
        ex = start_exporter(m.data, tmp_path)
        assert subprocess.run(["curl", "-sf", f"{ex.url}/t/l"], capture_output=True, timeout=60).stdout == data
        assert len(list(cache.rglob("c0*"))) >= 2
        FIGURES["disk_full_cache"] = {"bytes_read_while_full": 2 * len(data), "warnings": len(full)}
    finally:
        stop_process(ex.proc)


def test_a_replica_on_a_full_disk_reads_and_seeks_from_memory(made, seaweed, tmpfs, tmp_path,
                                                              monkeypatch):
    """A replica's state directory on a full disk: the index files a seek needs and the
    chunks a read needs cannot be cached on disk; both are kept in memory, so cat
    through the replica's mount and ?record= / ?since= from `logfs serve` on it still
    answer, with one warning line for the episode."""
    from test_replica_mount import ReplicaMount
    bucket = "faults-replica-disk"
    seaweed.create_bucket(bucket)
    use(seaweed, monkeypatch)
    w = new_mount(made, tmp_path / "wdata", tmp_path / "wmnt", tier_options(seaweed.endpoint, bucket), True)
    os.mkdir(w.p("t"))
    data = numbered(50_000)  # 4.6 MB: four sealed segments go to the bucket
    (tmp_path / "src").write_bytes(data)
    run(f"dd if={tmp_path / 'src'} bs=64k status=none >> {w.p('t', 'l')}")
    remote = data[:tiered(w, 60)["remote_end_offset"]]
    fs = tmpfs(8 * MiB)
    r = ReplicaMount(f"s3://{bucket}/faults", seaweed.endpoint, fs / "data", tmp_path / "rmnt")
    r.data.mkdir(parents=True)
    r.mnt.mkdir(parents=True)
    made.append(r)
    r.mount()
    wait_for(lambda: os.path.exists(r.p("t", "l")) and os.stat(r.p("t", "l")).st_size == len(remote) or None,
             30, "the replica shows the tiered log")
    ex = start_exporter(r.data, tmp_path)
    try:
        cache = r.data / ".logfs" / "remote-cache"
        assert not list(cache.rglob("*index"))  # no seek yet: no index file downloaded
        fill_disk(fs, 0)
        assert run(["cat", r.p("t", "l")]).stdout.encode() == remote
        line = len(numbered(1))
        got = subprocess.run(["curl", "-sf", f"{ex.url}/t/l?record=33333"], capture_output=True, timeout=60)
        assert got.returncode == 0 and got.stdout == remote[33333 * line:], got.stderr
        got = subprocess.run(["curl", "-sf", f"{ex.url}/t/l?since=1970-01-02T00:00:00Z"],
                             capture_output=True, timeout=60)
        assert got.returncode == 0 and got.stdout == remote, got.stderr
        # the seeks' index files were kept in memory
        assert not list(cache.rglob("*index")), list(cache.rglob("*index"))
        served = ex.stderr_path.read_text(errors="replace")
        full = [x for x in served.splitlines() if "remote cache: the disk is full" in x]
        assert len(full) == 1, served[-3000:]  # the exporter's seeks: one line for the episode
        assert "Traceback" not in r.daemon_log() + served
    finally:
        stop_process(ex.proc)


@pytest.fixture
def cluster(tmp_path):
    c = s3kit.start_seaweed_cluster(tmp_path / "cluster")
    yield c
    c.stop()


def test_a_volume_server_lost_during_uploads_and_reads(made, cluster, tmp_path, monkeypatch):
    """SeaweedFS with replication 001 keeps each volume on two of three servers: one
    server SIGKILLed while the mount uploads and a reader reads remote segments costs
    retries at most, never a byte; the backlog drains with the server still down."""
    bucket = "faults-cluster"
    cluster.create_bucket(bucket)
    use(cluster, monkeypatch)
    # the smallest cache (8 MiB), smaller than the log: every pass below reads the store
    m = new_mount(made, tmp_path / "data", tmp_path / "mnt",
                  tier_options(cluster.endpoint, bucket, f"remote.cache.bytes={8 * MiB}"), True)
    os.mkdir(m.p("t"))
    data = data0 = numbered(110_000)  # 10 MB
    (tmp_path / "src").write_bytes(data)
    run(f"dd if={tmp_path / 'src'} bs=64k status=none >> {m.p('t', 'l')}")
    tiered(m, 60)
    producer = Producer(m.p("t", "l"), 110_000, interval=0.005)
    producer.start()
    time.sleep(2)
    cluster.kill_volume(1)
    t0 = time.monotonic()
    reads = 0
    while time.monotonic() - t0 < 15:  # remote reads with the server gone
        run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"])
        got = subprocess.run(["head", "-c", str(len(data0)), m.p("t", "l")], capture_output=True, timeout=60)
        assert got.returncode == 0, got.stderr
        assert got.stdout == data0, "a remote read returned other bytes"
        reads += 1
    data += producer.stop()
    t1 = time.monotonic()
    d = tiered(m, 150)
    drain_s = time.monotonic() - t1
    assert d["end_offset"] == len(data) and d["remote_end_offset"] == d["local_start_offset"]
    run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
    assert run(["cat", m.p("t", "l")]).stdout.encode() == data
    failures = [line for line in m.daemon_log().splitlines() if "retrying" in line]
    FIGURES["volume_server_lost"] = {
        "volume_servers": len(cluster.volumes), "killed": 1, "reads_while_down": reads,
        "appended_bytes": len(producer.written), "max_write_ms": round(producer.max_write_s * 1000, 1),
        "remote_bytes_read_while_down": reads * len(data0), "failed_passes": len(failures),
        "drain_s": round(drain_s, 1), "remote_segments": d["remote_segments"]}
    assert producer.max_write_s < 1.0, producer.max_write_s
