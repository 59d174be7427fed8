"""A read-only replica (`logfs mount --replica s3://BUCKET/PREFIX`) on another data
directory, as a second machine would mount it: every tiered log shows, reads the same
through ls, cat, grep, tail -c, stat and the exporter, follows new commits of the
writer, and refuses every write with EROFS."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fuse"))
sys.path.insert(0, str(HERE.parent / "exporter"))

from fuse_helpers import LOGFS, Mount, require_fuse, run, tear_down, wait_for  # noqa: E402
from exporter_helpers import start_exporter, stop_process  # noqa: E402
from test_tier_mount import MiB, numbered, tier_options, wait_tiered  # noqa: E402

pytestmark = [pytest.mark.fuse]


class ReplicaMount(Mount):
    """``logfs mount --replica URL DATA MNT`` (DATA is the replica's state directory)."""

    def __init__(self, url: str, endpoint: str, data: Path, mnt: Path) -> None:
        super().__init__(data, mnt, [f"remote.endpoint={endpoint}"])
        self.url = url

    def mount(self, check: bool = True) -> subprocess.CompletedProcess:
        args = [LOGFS, "mount", "--replica", self.url, "-o", self.options[0], str(self.data), str(self.mnt)]
        r = run(args, check=check, timeout=60)
        if r.returncode == 0:
            self.pid = int((self.data / ".logfs" / "daemon.pid").read_text())
            self.pids.append(self.pid)
        return r


@pytest.fixture
def made(seaweed_env):
    require_fuse()
    made: list[Mount] = []
    yield made
    tear_down(made)


def _mount(made, cls, *args) -> Mount:
    m = cls(*args)
    m.data.mkdir(parents=True, exist_ok=True)
    m.mnt.mkdir(parents=True, exist_ok=True)
    made.append(m)
    m.mount()
    return m


def test_a_replica_reads_every_tiered_log_and_follows_new_commits(made, remote_url, seaweed, tmp_path):
    w = _mount(made, Mount, tmp_path / "w" / "data", tmp_path / "w" / "mnt",
               tier_options(remote_url, seaweed.endpoint))
    os.mkdir(w.p("orders"))
    first = numbered(30_000)  # 2.8 MB: two sealed segments of 1 MiB
    src = tmp_path / "src"
    src.write_bytes(first)
    run(f"dd if={src} bs=64k status=none >> {w.p('orders', 'eu')}")
    run(f"echo one line >> {w.p('orders', 'us')}")  # a log with nothing sealed yet
    wait_tiered(w, "orders", "eu")
    committed = w.describe("orders", "eu")["remote_end_offset"]

    r = _mount(made, ReplicaMount, remote_url, seaweed.endpoint, tmp_path / "r" / "state", tmp_path / "r" / "mnt")
    assert sorted(os.listdir(r.mnt)) == ["orders"]
    assert os.listdir(r.p("orders")) == ["eu"]  # only what the bucket holds
    assert os.stat(r.p("orders", "eu")).st_size == committed
    assert run(["cat", r.p("orders", "eu")]).stdout.encode() == first[:committed]
    assert run(["grep", "-c", "line 00012345 ", r.p("orders", "eu")]).stdout.strip() == "1"
    assert run(["tail", "-c", "+2000001", r.p("orders", "eu")]).stdout.encode() == first[2_000_000:committed]
    d = r.describe("orders", "eu")
    assert d["end_offset"] == committed and d["remote_segments"] >= 2 and d["local_segments"] == 0
    # nothing of the replica's own: the state directory holds manifests, no segments
    assert not [n for n in os.listdir(r.data / "orders" / "eu") if n.endswith(".log")]

    # the writer goes on; the replica shows the new commit within a few seconds
    more = numbered(15_000, start=30_000)
    src.write_bytes(more)
    run(f"dd if={src} bs=64k status=none >> {w.p('orders', 'eu')}")
    data = first + more
    d = wait_for(lambda: (lambda d: d if d["remote_end_offset"] > committed and
                          d["upload_backlog_segments"] == 0 else None)(w.describe("orders", "eu")),
                 60, "the writer's next upload")
    now = d["remote_end_offset"]
    wait_for(lambda: os.stat(r.p("orders", "eu")).st_size == now or None, 20, "the replica's refresh")
    assert run(["cat", r.p("orders", "eu")]).stdout.encode() == data[:now]

    # the exporter serves the replica's state directory, remote segments and all
    ex = start_exporter(r.data, tmp_path)
    try:
        got = subprocess.run(["curl", "-s", "-r", "100000-100099", f"{ex.url}/orders/eu"],
                             capture_output=True, check=True).stdout
        assert got == data[100_000:100_100]
        width = len(numbered(1))
        status, _h, body = ex.get("/orders/eu?record=20000")
        assert status == 200 and body == data[20_000 * width:now]
    finally:
        stop_process(ex.proc)


def test_every_write_to_a_replica_is_erofs(made, remote_url, seaweed, tmp_path):
    w = _mount(made, Mount, tmp_path / "w" / "data", tmp_path / "w" / "mnt",
               tier_options(remote_url, seaweed.endpoint))
    os.mkdir(w.p("t"))
    src = tmp_path / "src"
    src.write_bytes(numbered(25_000))
    run(f"dd if={src} bs=64k status=none >> {w.p('t', 'l')}")
    wait_tiered(w, "t", "l")
    r = _mount(made, ReplicaMount, remote_url, seaweed.endpoint, tmp_path / "r" / "state", tmp_path / "r" / "mnt")
    size = os.stat(r.p("t", "l")).st_size
    attempts = [
        lambda: os.open(r.p("t", "l"), os.O_WRONLY | os.O_APPEND),
        lambda: os.open(r.p("t", "new"), os.O_WRONLY | os.O_CREAT, 0o644),
        lambda: os.mkdir(r.p("t2")),
        lambda: os.unlink(r.p("t", "l")),
        lambda: os.rename(r.p("t", "l"), r.p("t", "m")),
        lambda: os.truncate(r.p("t", "l"), 0),
        lambda: os.setxattr(r.p("t", "l"), "user.logfs.retention.ms", b"1"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.EROFS, info.value
    sh = subprocess.run(["sh", "-c", f"echo x >> {r.p('t', 'l')}"], capture_output=True, text=True)
    assert sh.returncode != 0 and "Read-only file system" in sh.stderr
    cfg = subprocess.run([LOGFS, "config", r.p("t", "l"), "retention.ms=1"], capture_output=True, text=True)
    assert cfg.returncode != 0 and len(cfg.stderr.strip().splitlines()) == 1, cfg.stderr
    assert os.stat(r.p("t", "l")).st_size == size  # nothing changed
    assert w.describe("t", "l")["end_offset"] == len(numbered(25_000))


def test_a_replica_of_a_missing_bucket_is_refused_in_one_line(made, seaweed, tmp_path):
    r = ReplicaMount("s3://no-such-bucket-here/p", seaweed.endpoint, tmp_path / "state", tmp_path / "mnt")
    r.data.mkdir(parents=True)
    r.mnt.mkdir()
    made.append(r)
    got = r.mount(check=False)
    assert got.returncode != 0
    assert "no-such-bucket-here" in got.stderr and len(got.stderr.strip().splitlines()) == 1, got.stderr
