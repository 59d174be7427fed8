"""docs/spec.md §2 (Names) through the mount: topics, logs, and every refused operation's errno."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from fuse_helpers import run

pytestmark = pytest.mark.fuse


def _errno_of(fn, *args) -> int:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    raise AssertionError(f"{fn.__name__}{args} succeeded but should have failed")


def test_topics_and_logs_with_real_tools(mount_factory):
    m = mount_factory()
    run(f"mkdir {m.p('orders')}")
    run(f"touch {m.p('orders', 'eu')}")
    run(f"echo one >> {m.p('orders', 'us')}")
    assert sorted(os.listdir(m.mnt)) == ["orders"]
    assert sorted(os.listdir(m.p("orders"))) == ["eu", "us"]
    ls = run(f"ls -l {m.p('orders')}").stdout
    assert "-rw-r--r--" in ls and " eu" in ls and " us" in ls
    assert run(f"stat -c '%s %F' {m.p('orders', 'us')}").stdout.strip() == "4 regular file"
    assert run(f"stat -c '%F' {m.p('orders')}").stdout.strip() == "directory"
    # mv a log, mv a topic
    run(f"mv {m.p('orders', 'us')} {m.p('orders', 'na')}")
    run(f"mv {m.p('orders')} {m.p('sales')}")
    assert os.listdir(m.mnt) == ["sales"]
    assert sorted(os.listdir(m.p("sales"))) == ["eu", "na"]
    assert open(m.p("sales", "na")).read() == "one\n"
    # mv a log across topics
    os.mkdir(m.p("other"))
    run(f"mv {m.p('sales', 'na')} {m.p('other', 'na')}")
    assert open(m.p("other", "na")).read() == "one\n"
    # rm a log, rmdir an empty topic, rm -r a full topic
    run(f"rm {m.p('sales', 'eu')}")
    run(f"rmdir {m.p('sales')}")
    run(f"rm -r {m.p('other')}")
    assert os.listdir(m.mnt) == []
    # and the data directory agrees
    assert not [n for n in os.listdir(m.data) if not n.startswith(".logfs")]


def test_names_with_spaces_and_utf8(mount_factory):
    m = mount_factory()
    topic, log = "my topic ü", "日志 one"
    os.mkdir(m.p(topic))
    with open(m.p(topic, log), "a") as f:
        f.write("héllo\n")
    assert os.listdir(m.p(topic)) == [log]
    assert run(["cat", m.p(topic, log)]).stdout == "héllo\n"
    assert os.path.isdir(os.path.join(m.data, topic, log))


def test_refusals_and_their_errnos(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    with open(m.p("t", "log"), "a") as f:
        f.write("x\n")
    # a file in the root; a directory inside a topic
    assert _errno_of(os.open, m.p("rootfile"), os.O_CREAT | os.O_WRONLY) == errno.EPERM
    assert _errno_of(os.mkdir, m.p("t", "sub")) == errno.EPERM
    # symlinks, hard links, device nodes, fifos
    assert _errno_of(os.symlink, "log", m.p("t", "sym")) == errno.EPERM
    assert _errno_of(os.link, m.p("t", "log"), m.p("t", "hard")) == errno.EPERM
    assert _errno_of(os.mkfifo, m.p("t", "fifo")) == errno.EPERM
    assert _errno_of(os.mknod, m.p("t", "dev"), stat.S_IFCHR | 0o600, os.makedev(1, 3)) \
        == errno.EPERM
    # names reserved for logfs's own files
    assert _errno_of(os.mkdir, m.p(".logfs")) == errno.EINVAL
    assert _errno_of(os.open, m.p("t", ".logfs-x"), os.O_CREAT | os.O_WRONLY) == errno.EINVAL
    # rmdir of a topic with logs; existing names are never replaced
    assert _errno_of(os.rmdir, m.p("t")) == errno.ENOTEMPTY
    with open(m.p("t", "other"), "a") as f:
        f.write("y\n")
    assert _errno_of(os.rename, m.p("t", "log"), m.p("t", "other")) == errno.EEXIST
    os.mkdir(m.p("u"))
    assert _errno_of(os.rename, m.p("t"), m.p("u")) in (errno.EEXIST, errno.ENOTEMPTY)
    # mv refuses too, and nothing changed
    r = run(f"mv {m.p('t', 'log')} {m.p('t', 'other')}", check=False)
    assert r.returncode != 0
    assert open(m.p("t", "log")).read() == "x\n" and open(m.p("t", "other")).read() == "y\n"
    # moving a topic into a topic, a log into the root
    assert _errno_of(os.rename, m.p("u"), m.p("t", "u")) == errno.EPERM
    assert _errno_of(os.rename, m.p("t", "log"), m.p("log")) == errno.EPERM
    # the daemon logged one line per refusal, with the reason
    text = m.daemon_log()
    assert "refused mkdir" in text and "EPERM" in text and "ENOTEMPTY" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_chmod_chown_are_kept_and_enforced(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    run(f"touch {m.p('t', 'log')}")
    os.chmod(m.p("t", "log"), 0o600)
    os.chown(m.p("t", "log"), 1234, 5678)
    st = os.stat(m.p("t", "log"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1234, 5678)
    os.chmod(m.p("t"), 0o750)
    os.chown(m.p("t"), 4321, 8765)
    assert stat.S_IMODE(os.stat(m.p("t")).st_mode) == 0o750
    # enforced by the kernel (default_permissions): nobody may not read a 0600 file of uid 1234
    r = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
             m.p("t", "log")], check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # persisted: survives a remount
    m.umount()
    m.mount()
    st = os.stat(m.p("t", "log"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1234, 5678)
    st = os.stat(m.p("t"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 4321, 8765), \
        "a topic's chmod/chown must survive a remount"


def test_du_df_give_true_figures(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    with open(m.p("t", "big"), "ab") as f:
        f.write(b"x" * 1_000_000)
    du = int(run(f"du -k {m.p('t', 'big')}").stdout.split()[0])
    assert 970 <= du <= 1100
    df_mount = run(f"df -k --output=size {m.mnt}").stdout.split()[-1]
    df_data = run(f"df -k --output=size {m.data}").stdout.split()[-1]
    assert df_mount == df_data


def test_open_logs_follow_renames(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    fd = os.open(m.p("t", "a"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"1\n")
        os.rename(m.p("t", "a"), m.p("t", "b"))
        os.write(fd, b"2\n")
        os.rename(m.p("t"), m.p("u"))
        os.write(fd, b"3\n")
    finally:
        os.close(fd)
    assert open(m.p("u", "b"), "rb").read() == b"1\n2\n3\n"
    assert open(os.path.join(m.data, "u", "b", "00000000000000000000.log"), "rb").read() \
        == b"1\n2\n3\n"
