"""Mount lifecycle and the CLI: daemonising, second mounts, signals, kill -9, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from fuse_helpers import LOGFS, mounted, run, wait_for

pytestmark = pytest.mark.fuse


def test_version_and_help():
    assert run([LOGFS, "--version"]).stdout.strip().startswith("logfs ")
    out = run([LOGFS, "--help"]).stdout
    for word in ("mount", "umount", "config", "describe", "examples:"):
        assert word in out
    assert "segment.bytes" in run([LOGFS, "mount", "--help"]).stdout
    assert "retention.ms" in run([LOGFS, "config", "--help"]).stdout


def test_config_and_describe(mount_factory):
    m = mount_factory("segment.bytes=1048576")
    os.mkdir(m.p("orders"))
    run(f"echo '{{\"id\":1}}' >> {m.p('orders', 'eu')}")
    d = m.describe("orders", "eu")
    assert d["end_offset"] == 9 and d["records"] == 1 and d["start_offset"] == 0
    assert d["config"]["segment.bytes"] == 1048576  # the mount-wide default
    human = m.logfs("describe", m.p("orders", "eu")).stdout
    assert "end_offset" in human and "segment.bytes" in human
    # topic config, inherited by its logs
    m.logfs("config", m.p("orders"), "retention.ms=604800000")
    topic = json.loads(m.logfs("config", "--json", m.p("orders")).stdout)
    assert topic["overrides"] == {"retention.ms": 604800000}  # typed as the effective values
    eff = json.loads(m.logfs("config", "--json", m.p("orders", "eu")).stdout)["effective"]
    assert eff["retention.ms"] == 604800000
    # log override wins; an empty value removes it
    m.logfs("config", m.p("orders", "eu"), "retention.ms=1000")
    assert m.describe("orders", "eu")["config"]["retention.ms"] == 1000
    m.logfs("config", m.p("orders", "eu"), "retention.ms=")
    assert m.describe("orders", "eu")["config"]["retention.ms"] == 604800000
    # a bad key or value is refused with a message naming it
    r = m.logfs("config", m.p("orders"), "retention.mss=5", check=False)
    assert r.returncode != 0 and "retention.mss" in r.stderr
    r = m.logfs("config", m.p("orders"), "segment.bytes=lots", check=False)
    assert r.returncode != 0 and "segment.bytes" in r.stderr
    # persisted in DATA: survives a remount
    m.umount()
    m.mount()
    assert m.describe("orders", "eu")["config"]["retention.ms"] == 604800000
    root = m.describe()
    assert root["kind"] == "mount" and root["topics"] == ["orders"]
    r = run([LOGFS, "describe", "/tmp"], check=False)
    assert r.returncode != 0 and "not inside a logfs mount" in r.stderr


def test_bad_mount_options_are_named(mount_factory):
    m = mount_factory(do_mount=False)
    for opt, word in [("retention.mss=1", "retention.mss"), ("segment.bytes=x", "segment.bytes"),
                      ("frobnicate", "frobnicate"), ("spin_us=-5", "spin_us"), ("spin_us=x", "spin_us")]:
        r = run([LOGFS, "mount", "-o", opt, str(m.data), str(m.mnt)], check=False)
        assert r.returncode != 0 and word in r.stderr, r.stderr
        assert not mounted(str(m.mnt))


def test_second_mount_of_the_same_data_fails_clearly(mount_factory, tmp_path):
    m = mount_factory()
    other = tmp_path / "other-mnt"
    other.mkdir()
    r = run([LOGFS, "mount", str(m.data), str(other)], check=False)
    assert r.returncode == 1 and "already mounted" in r.stderr, r.stderr
    assert not mounted(str(other))
    r = run([LOGFS, "mount", str(tmp_path / "x"), str(m.mnt)], check=False)
    assert r.returncode == 1 and "already a logfs mount" in r.stderr
    os.mkdir(m.p("still-works"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_foreground_mount_stops_cleanly_on_signals(mount_factory, sig):
    m = mount_factory(do_mount=False)
    p = subprocess.Popen([LOGFS, "mount", "-f", str(m.data), str(m.mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: mounted(str(m.mnt)), 10, "the foreground mount")
        m.pids.append(p.pid)
        os.mkdir(m.p("t"))
        run(f"echo hi >> {m.p('t', 'l')}")
        p.send_signal(sig)
        assert p.wait(timeout=15) == 0
        err = p.stderr.read().decode()
        assert "store closed cleanly" in err and "mounted" in err
        assert not mounted(str(m.mnt))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    m.mount()
    assert open(m.p("t", "l")).read() == "hi\n"
    assert "recovery" not in m.daemon_log().split("mounted")[-1]


def test_fusermount_u_unmounts_cleanly(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    pid = m.pid
    run(["fusermount3", "-u", str(m.mnt)])
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, "the daemon to exit")
    assert "store closed cleanly" in m.daemon_log()


def test_remount_after_kill_9_loses_nothing_fsynced(mount_factory):
    m = mount_factory("segment.bytes=65536")
    os.mkdir(m.p("t"))
    log = m.p("t", "l")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    data = b"".join(f"record {i}\n".encode() for i in range(20000))
    for k in range(0, len(data), 4000):
        os.write(fd, data[k:k + 4000])
    os.fsync(fd)
    os.close(fd)
    m.kill9()
    # auto_unmount: the dead mount normally goes away by itself; if fusermount3's helper
    # is slow (seen under heavy load), the next `logfs mount` clears the dead mount.
    if not m.wait_unmounted(10):
        helpers = run("ps -eo pid,stat,args | grep '[f]usermount3' || true").stdout
        print(f"auto_unmount did not unmount within 10 s; fusermount3 helpers:\n{helpers}")
    m.mount()
    got = open(log, "rb").read()
    assert got == data
    assert "was not shut down cleanly" in m.daemon_log()
    run(f"echo after >> {log}")
    assert open(log, "rb").read() == data + b"after\n"


def test_dead_mountpoint_does_not_block_the_next_mount(mount_factory):
    m = mount_factory("noauto_unmount")
    os.mkdir(m.p("t"))
    run(f"echo x >> {m.p('t', 'l')}")
    os.fsync(os.open(m.p("t", "l"), os.O_RDONLY))
    m.kill9()
    with pytest.raises(OSError):
        os.listdir(m.mnt)  # Transport endpoint is not connected
    m.options = []
    m.mount()
    assert open(m.p("t", "l")).read() == "x\n"
    assert "dead mount" in m.daemon_log()


def test_handlers_survive_garbage(mount_factory):
    """Odd requests answer with errnos; the mount stays up."""
    m = mount_factory()
    os.mkdir(m.p("t"))
    for bad in (b"\xff\xfe", b"a" * 300):
        with pytest.raises(OSError):
            os.open(os.path.join(os.fsencode(m.p("t")), bad), os.O_CREAT | os.O_WRONLY)
    with pytest.raises(OSError):
        os.listdir(m.p("nope"))
    with pytest.raises(OSError):
        os.rename(m.p("t"), m.p("t", "x"))
    assert os.listdir(m.p("t")) == []
    os.mkdir(m.p("u"))
    time.sleep(0.1)
    assert sorted(os.listdir(m.mnt)) == ["t", "u"]


def test_umount_of_a_busy_mount_says_why_and_keeps_serving(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    holder = subprocess.Popen(["sleep", "30"], cwd=m.p("t"))
    try:
        r = m.logfs("umount", str(m.mnt), check=False)
        assert r.returncode == 1 and "busy" in r.stderr.lower(), r.stderr
        assert mounted(str(m.mnt))
        run(f"echo still >> {m.p('t', 'l')}")
    finally:
        holder.kill()
        holder.wait()
    m.umount()


def test_ls_la_lists_dot_entries(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    out = run(f"ls -la {m.p('t')}").stdout.split("\n")
    names = [line.split()[-1] for line in out[1:] if line.strip()]
    assert names == [".", ".."]
    assert os.listdir(m.p("t")) == []
