"""docs/spec.md §3 (Writing) through the mount: appends with real tools, refusals,
concurrency, and nothing written ever changing for a reader."""

from __future__ import annotations

import errno
import glob
import mmap
import os
import subprocess

import pytest

from fuse_helpers import PYTHON, run

pytestmark = pytest.mark.fuse


def _segments_concat(m, topic: str, log: str) -> bytes:
    return b"".join(open(p, "rb").read()
                    for p in sorted(glob.glob(os.path.join(m.data, topic, log, "*.log"))))


def test_appends_with_every_tool(mnt):
    log = mnt.p("t", "l")
    run(f"echo one >> {log}")
    run(f"printf 'two\\nthree\\n' >> {log}")
    run(f"echo four | tee -a {log} >/dev/null")
    run([PYTHON, "-c", f"open({log!r}, 'a').write('five\\n')"])
    run(f"printf 'six\\n' | dd of={log} oflag=append conv=notrunc status=none")
    expected = "one\ntwo\nthree\nfour\nfive\nsix\n"
    assert open(log).read() == expected
    assert _segments_concat(mnt, "t", "l") == expected.encode()
    assert run(f"wc -l < {log}").stdout.strip() == "6"


def test_cp_and_dd_into_a_new_log(mnt, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    run(f"cp {src} {mnt.p('t', 'copy')}")
    run(f"dd if={src} of={mnt.p('t', 'dd')} bs=64k status=none")
    assert open(mnt.p("t", "copy"), "rb").read() == src.read_bytes()
    assert open(mnt.p("t", "dd"), "rb").read() == src.read_bytes()
    assert run(f"cmp {src} {mnt.p('t', 'copy')}").returncode == 0
    assert _segments_concat(mnt, "t", "dd") == src.read_bytes()


def test_overwrite_and_truncate_are_refused(mnt):
    log = mnt.p("t", "l")
    run(f"echo keep >> {log}")
    r = run(f"echo x > {log}", check=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert open(log).read() == "keep\n"
    with pytest.raises(OSError) as e:
        os.open(log, os.O_WRONLY | os.O_TRUNC)
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.truncate(log, 2)
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.truncate(log, 100)
    assert e.value.errno == errno.EPERM
    os.truncate(log, 5)  # to the current size: fine
    run(f"truncate -s 5 {log}")
    fd = os.open(log, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"X", 1)
        assert e.value.errno == errno.EPERM
        assert os.pwrite(fd, b"more\n", 5) == 5  # at the end: an append
    finally:
        os.close(fd)
    assert open(log).read() == "keep\nmore\n"
    # `>` and `: >` on an empty log are fine (nothing to lose)
    run(f": > {mnt.p('t', 'empty')}")
    run(f"echo new > {mnt.p('t', 'empty')}", check=False)
    assert open(mnt.p("t", "empty")).read() == "new\n"
    # refused `>` again, now that it is not empty
    assert run(f"echo y > {mnt.p('t', 'empty')}", check=False).returncode != 0


MMAP_WRITER = r"""
import errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    m = mmap.mmap(fd, 0)  # MAP_SHARED, PROT_READ | PROT_WRITE
except OSError as exc:
    print("refused", errno.errorcode.get(exc.errno, exc.errno))
    sys.exit(0)
m[0:5] = b"QUIET"
m.close()  # munmap: the kernel writes the page back, the daemon refuses it
print("mapped")
"""


def test_a_shared_writable_mapping_cannot_change_what_readers_see(mnt):
    """docs/spec.md §3: nothing already written changes, for any reader. A process
    that maps a log shared and writable and stores into it must not change what
    `cat` through the mount shows (the daemon refuses the write-back, but the kernel
    would keep the modified pages): the mapping itself is refused, with ENODEV."""
    log = mnt.p("t", "mm")
    run(f"printf 'hello\\nworld\\n' >> {log}")
    assert run(["cat", log]).stdout == "hello\nworld\n"  # now in the page cache
    r = run([PYTHON, "-c", MMAP_WRITER, log])
    assert run(["cat", log]).stdout == "hello\nworld\n", f"the writer said {r.stdout!r}"
    assert _segments_concat(mnt, "t", "mm") == b"hello\nworld\n"
    assert r.stdout.split() == ["refused", "ENODEV"]
    assert "t/mm opened read-write" in mnt.daemon_log()
    # a read-write descriptor still appends and reads back ("a+")...
    with open(log, "a+") as f:
        f.write("again\n")
        f.flush()
        f.seek(0)
        assert f.read() == "hello\nworld\nagain\n"
    # ...and a shared mapping of a read-only descriptor still works (docs/spec.md §4)
    with open(log, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        assert m[:] == b"hello\nworld\nagain\n"
    assert run(["cat", log]).stdout == "hello\nworld\nagain\n"
    assert _segments_concat(mnt, "t", "mm") == b"hello\nworld\nagain\n"


def test_a_write_to_a_log_deleted_while_open_is_refused_with_a_log_line(mnt):
    """docs/spec.md §8: every refusal is an errno plus one line in the daemon's log."""
    log = mnt.p("t", "gone")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        assert os.write(fd, b"one\n") == 4
        os.unlink(log)
        with pytest.raises(OSError) as e:
            os.write(fd, b"two\n")
        assert e.value.errno == errno.ENOENT
    finally:
        os.close(fd)
    lines = [line for line in mnt.daemon_log().splitlines()
             if "refused write(" in line and "ENOENT" in line]
    assert len(lines) == 1, f"expected one line for the refused write, got {lines}"
    assert "t/gone was removed" in lines[0]


def test_stat_shows_new_size_immediately(mnt):
    log = mnt.p("t", "l")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for i in range(1, 50):
            os.write(fd, b"x" * i)
            size = i * (i + 1) // 2
            assert os.stat(log).st_size == size
            if i % 10 == 0:  # and from another process
                assert run(["stat", "-c", "%s", log]).stdout.strip() == str(size)
    finally:
        os.close(fd)


WRITER = r"""
import os, sys
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
pad = "x" * (int(tag) * 7)
for i in range(n):
    line = f"{tag} {i} {pad}\n".encode()
    assert os.write(fd, line) == len(line)
os.close(fd)
"""


@pytest.mark.parametrize("options", [(), ("spin_us=0",)], ids=["default", "no-spin"])
def test_concurrent_producers_never_interleave(mount_factory, options):
    """8 processes x 10,000 lines, with the daemon's post-request spin (the default)
    and without it (fastloop.py): the same whole lines in each writer's order."""
    mnt = mount_factory(*options)
    os.mkdir(mnt.p("t"))
    log = mnt.p("t", "l")
    open(log, "a").close()
    procs, n = 8, 10_000
    ps = [subprocess.Popen([PYTHON, "-c", WRITER, log, str(k), str(n)]) for k in range(procs)]
    for p in ps:
        assert p.wait(timeout=120) == 0
    lines = open(log, "rb").read().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert len(lines) == procs * n
    seen = {k: 0 for k in range(procs)}
    for line in lines:
        tag, i, pad = line.split(b" ")
        k = int(tag)
        assert pad == b"x" * (k * 7), f"interleaved line: {line!r}"
        assert int(i) == seen[k], f"process {k} out of order: {int(i)} after {seen[k] - 1}"
        seen[k] += 1
    assert all(v == n for v in seen.values())
    assert run(f"wc -l < {log}").stdout.strip() == str(procs * n)
    assert _segments_concat(mnt, "t", "l") == open(log, "rb").read()
    d = mnt.describe("t", "l")
    assert d["records"] == procs * n


def test_big_writes_land_whole(mnt):
    """Single writes up to the FUSE maximum write size (>= 128 KiB) are contiguous."""
    log = mnt.p("t", "big")
    blocks = [bytes([65 + k]) * (128 * 1024 - 1) + b"\n" for k in range(8)]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for b in blocks:
            assert os.write(fd, b) == len(b)
    finally:
        os.close(fd)
    assert open(log, "rb").read() == b"".join(blocks)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_gives_enospc_and_the_mount_recovers(mount_factory):
    m = mount_factory(do_mount=False)
    run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(m.data)])
    try:
        m.mount()
        os.mkdir(m.p("t"))
        with open(m.p("t", "old"), "ab") as f:
            f.write(b"o" * 1_000_000)
        fd = os.open(m.p("t", "l"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line, n = b"x" * 4095 + b"\n", 0
        try:
            with pytest.raises(OSError) as e:
                while True:
                    os.write(fd, line)
                    n += 1
            assert e.value.errno == errno.ENOSPC
            assert n > 100
            assert open(m.p("t", "l"), "rb").read() == line * n  # nothing damaged
            assert m.describe("t", "l")["end_offset"] == n * len(line)  # daemon serves
            os.unlink(m.p("t", "old"))  # free space: writes succeed again
            os.write(fd, line)
        finally:
            os.close(fd)
        assert open(m.p("t", "l"), "rb").read() == line * (n + 1)
        assert "ENOSPC" in m.daemon_log()
    finally:
        m.cleanup()
        subprocess.run(["umount", str(m.data)], check=False)
