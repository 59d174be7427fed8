"""docs/operations.md's procedures, run as written: backup and restore with rsync, and
clearing a stuck mount."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from fuse_helpers import LOGFS, REPO, mounted, run, wait_for
from hang_helpers import run_bounded

pytestmark = pytest.mark.fuse


@pytest.fixture(autouse=True)
def _rsync():
    if not shutil.which("rsync"):
        if os.environ.get("CI") == "true":
            pytest.fail("rsync is missing (scripts/bootstrap.sh installs it)")
        pytest.skip("rsync is not installed")


def _append(path, lines):
    with open(path, "a") as f:
        for ln in lines:
            f.write(ln + "\n")


def _segments(d) -> list[str]:
    return sorted(p.name for p in d.glob("*.log"))


def test_backup_of_sealed_segments_while_mounted_and_restore(mount_factory, tmp_path):
    m = mount_factory("segment.bytes=200")
    os.mkdir(m.p("orders"))
    m.logfs("config", m.p("orders"), "retention.ms=604800000")
    _append(m.p("orders", "eu"), [f"record {i}" for i in range(40)])
    bk = tmp_path / "backup"
    script = str(REPO / "examples" / "backup-sealed.sh")
    run([script, str(m.data), str(bk)])
    live = m.data / "orders" / "eu"
    assert _segments(bk / "orders" / "eu") == _segments(live)[:-1]  # all but the active one
    _append(m.p("orders", "eu"), [f"record {i}" for i in range(40, 80)])
    out = run([script, str(m.data), str(bk)]).stdout                 # a re-run adds the new
    assert "backed up" in out
    sealed = _segments(live)[:-1]
    assert _segments(bk / "orders" / "eu") == sealed
    expected = b"".join((live / s).read_bytes() for s in sealed)
    r = mount_factory(name="restored", do_mount=False)
    run(f"rsync -a {bk}/ {r.data}/")
    r.mount()
    assert open(r.p("orders", "eu"), "rb").read() == expected
    log = r.daemon_log()
    assert "first mount of existing data directory" in log and "nothing to recover" in log, log
    assert r.describe("orders")["config_overrides"] == {"retention.ms": 604800000}
    _append(r.p("orders", "eu"), ["after the restore"])              # and it is writable


def test_backup_of_a_stopped_data_directory_is_exact(mount_factory, tmp_path):
    m = mount_factory("segment.bytes=200")
    os.mkdir(m.p("orders"))
    _append(m.p("orders", "eu"), [f"record {i}" for i in range(60)])
    expected = open(m.p("orders", "eu")).read()
    m.umount()
    bk = tmp_path / "backup"
    run(f"rsync -a --exclude=/.logfs/ {m.data}/ {bk}/")
    assert not (bk / ".logfs").exists()
    r = mount_factory(name="restored", do_mount=False)
    run(f"rsync -a {bk}/ {r.data}/")
    r.mount()
    assert open(r.p("orders", "eu")).read() == expected
    assert "nothing to recover" in r.daemon_log()


def test_backup_through_the_mount_and_restore_into_a_mount(mount_factory, tmp_path):
    m = mount_factory()
    os.mkdir(m.p("t"))
    _append(m.p("t", "l"), ["a", "b"])
    bk = tmp_path / "logs-backup"
    run(f"rsync -a --append-verify {m.mnt}/ {bk}/")
    _append(m.p("t", "l"), ["c"])
    run(f"rsync -a --append-verify {m.mnt}/ {bk}/")
    assert (bk / "t" / "l").read_text() == "a\nb\nc\n"

    dst = mount_factory(name="dst")
    run(f"rsync -r --append-verify {bk}/ {dst.mnt}/")
    _append(bk / "t" / "l", ["d"])                                 # the backup grew
    run(f"rsync -r --append-verify {bk}/ {dst.mnt}/")              # a re-run works
    assert open(dst.p("t", "l")).read() == "a\nb\nc\nd\n"
    # what the doc warns about: a plain rsync -a re-run renames over the log: refused
    _append(bk / "t" / "l", ["e"])
    r = run(f"rsync -a {bk}/ {dst.mnt}/", check=False)
    assert r.returncode == 23 and "File exists" in r.stderr, r.stderr
    assert open(dst.p("t", "l")).read() == "a\nb\nc\nd\n"         # nothing changed
    assert sorted(os.listdir(dst.p("t"))) == ["l"]                # no temporary left


def test_a_stuck_mount_is_cleared_by_killing_the_daemon(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    _append(m.p("t", "l"), ["x"])
    os.kill(m.pid, signal.SIGSTOP)                                 # a daemon that answers nothing
    try:
        stuck = run_bounded(["stat", m.p("t", "l")], 2)
        assert stuck.hung, "stat answered although the daemon was stopped"
    finally:
        os.kill(m.pid, signal.SIGKILL)                             # the doc: kill -9 the daemon
    m.kill9()
    wait_for(lambda: not m.pid or not os.path.exists(f"/proc/{m.pid}/stat") or
             open(f"/proc/{m.pid}/stat").read().split(") ")[1][0] == "Z", 10, "the daemon to die")
    run([LOGFS, "umount", str(m.mnt)], check=False)               # clears a dead mount too
    assert not mounted(str(m.mnt))
    r = subprocess.run(["stat", str(m.mnt)], capture_output=True, timeout=10)
    assert r.returncode == 0                                       # the hung stat is gone too
    m.mount()
    assert open(m.p("t", "l")).read() == "x\n"
