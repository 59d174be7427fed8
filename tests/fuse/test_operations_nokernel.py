"""The Operations class without a kernel: handlers called directly, as s3ql's tier-1 tests.

These cover what a real mount cannot provoke on demand: an unexpected exception
inside a handler must become EIO plus a log line with context, never an exception
that would end pyfuse3.main() and kill the mount.
"""

from __future__ import annotations

import errno
import logging
import os

import pyfuse3
import pytest
import trio

from logfs.core import open_log_store
from logfs.fusefs import errors
from logfs.fusefs.inodes import ROOT_INODE
from logfs.fusefs.operations import LogfsOperations


class Ctx:
    uid, gid, pid, umask = 0, 0, 1, 0o022


@pytest.fixture
def ops(tmp_path):
    store = open_log_store(str(tmp_path), defaults={"segment.bytes": "1000",
                                                    "retention.bytes": "2000"})
    o = LogfsOperations(store, str(tmp_path), mtime_granularity_s=60)
    yield o
    store.close()


def call(coro_fn, *args):
    return trio.run(coro_fn, *args)


def fuse_errno(coro_fn, *args) -> int:
    with pytest.raises(pyfuse3.FUSEError) as e:
        call(coro_fn, *args)
    return e.value.errno


def make_log(ops, topic=b"t", name=b"l"):
    t = call(ops.mkdir, ROOT_INODE, topic, 0o755, Ctx())
    fi, attrs = call(ops.create, t.st_ino, name, 0o644, os.O_WRONLY, Ctx())
    return t.st_ino, fi.fh


def test_unexpected_exception_becomes_eio_and_a_log_line(ops, monkeypatch, caplog):
    _t, fh = make_log(ops)

    def boom(*a, **k):
        raise RuntimeError("disk gremlin")

    monkeypatch.setattr(ops.store, "log", boom)
    with caplog.at_level(logging.ERROR, logger="logfs.fusefs.errors"):
        assert fuse_errno(ops.read, fh, 0, 10) == errno.EIO
        assert fuse_errno(ops.getattr, fh, Ctx()) == errno.EIO
    assert "unexpected error in read" in caplog.text and "disk gremlin" in caplog.text


def test_every_core_error_has_an_errno():
    from logfs.core import errors as ce
    for cls in (ce.NotFound, ce.AlreadyExists, ce.NotEmpty, ce.InvalidName, ce.ConfigError,
                ce.NotAppendable, ce.OffsetOutOfRange, ce.DataGap, ce.ReadOnlyStore,
                ce.StorageError):
        assert errors.errno_for(cls("x")) != 0
    assert errors.errno_for(ce.StorageIOError("full", errno.ENOSPC)) == errno.ENOSPC
    assert errors.errno_for(ValueError("?")) == errno.EIO
    assert errors.errno_for(errors.Refused(errno.EPERM, "no")) == errno.EPERM


def test_writes_only_at_the_end(ops):
    _t, fh = make_log(ops)
    assert call(ops.write, fh, 0, b"abc\n") == 4
    assert fuse_errno(ops.write, fh, 0, b"x") == errno.EPERM
    assert fuse_errno(ops.write, fh, 5, b"x") == errno.EPERM
    assert call(ops.write, fh, 4, b"def\n") == 4
    assert call(ops.read, fh, 0, 100) == b"abc\ndef\n"


def test_write_sync_is_the_write_handler(ops, monkeypatch, caplog):
    """pyfuse3 with patches/0003 calls ``write_sync`` instead of awaiting ``write``: the
    same code behind the same boundary, so the same answers, errnos and log lines."""
    assert ops.write_sync is not None, "the suite runs the patched pyfuse3 (test_conninfo.py)"
    _t, fh = make_log(ops)
    assert ops.write_sync(fh, 0, b"abc\n") == 4
    with caplog.at_level(logging.INFO, logger="logfs.fusefs.errors"):
        with pytest.raises(pyfuse3.FUSEError) as e:
            ops.write_sync(fh, 0, b"x")
        assert e.value.errno == errno.EPERM
        assert fuse_errno(ops.write, fh, 0, b"x") == errno.EPERM
    assert [r.getMessage().split("(")[0] for r in caplog.records] == ["refused write"] * 2
    assert call(ops.write, fh, 4, b"def\n") == 4
    assert ops.write_sync(fh, 8, b"ghi\n") == 4
    assert call(ops.read, fh, 0, 100) == b"abc\ndef\nghi\n"
    assert ops.totals["write_calls"] == 3 and ops.totals["write_bytes"] == 12

    def boom(*a, **k):
        raise RuntimeError("disk gremlin")

    monkeypatch.setattr(ops.store, "log", boom)
    with caplog.at_level(logging.ERROR, logger="logfs.fusefs.errors"):
        with pytest.raises(pyfuse3.FUSEError) as e:
            ops.write_sync(fh, 12, b"jkl\n")  # never a dead mount
        assert e.value.errno == errno.EIO
    assert "unexpected error in write" in caplog.text and "disk gremlin" in caplog.text


def test_without_the_patch_writes_are_awaited(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGFS_IGNORE_PYFUSE3_PATCHES", "1")
    store = open_log_store(str(tmp_path))
    try:
        o = LogfsOperations(store, str(tmp_path))
        assert o.write_sync is None  # pyfuse3 then awaits write, as a stock one does
        _t, fh = make_log(o)
        assert call(o.write, fh, 0, b"abc\n") == 4
    finally:
        store.close()


def test_reads_below_the_start(ops):
    _t, fh = make_log(ops)
    data = b""
    for i in range(300):  # 300 records of 50 bytes; segments of 1000; keep ~2000
        line = f"{i:04d}".encode() + b"." * 45 + b"\n"
        call(ops.write, fh, len(data), line)
        data += line
    lg = ops.store.log("t", "l")
    start = lg.start_offset
    assert start > 4096, start
    page = start - start % 4096
    # the kernel's request for the page holding the start: NULs below, data after
    got = call(ops.read, fh, page, 4096 + 4096)
    assert got[:start - page] == bytes(start - page)
    assert got[start - page:] == data[start:page + 8192]
    # a request whose first page lies wholly below the start: ENODATA
    assert fuse_errno(ops.read, fh, page - 4096, 8192) == errno.ENODATA
    assert fuse_errno(ops.read, fh, 0, 4096) == errno.ENODATA
    assert call(ops.read, fh, start, 50) == data[start:start + 50]
    assert call(ops.read, fh, len(data), 50) == b""


def test_coarse_mtime_does_not_move_within_the_granularity(ops):
    _t, fh = make_log(ops)
    call(ops.write, fh, 0, b"a\n")
    m1 = call(ops.getattr, fh, Ctx()).st_mtime_ns
    call(ops.write, fh, 2, b"b\n")
    a = call(ops.getattr, fh, Ctx())
    assert a.st_size == 4
    assert a.st_mtime_ns % 60_000_000_000 == 0
    assert a.st_mtime_ns == m1 or a.st_mtime_ns - m1 == 60_000_000_000


def test_refusals_at_the_namespace_level(ops):
    t, _fh = make_log(ops)
    assert fuse_errno(ops.mkdir, t, b"sub", 0o755, Ctx()) == errno.EPERM
    assert fuse_errno(ops.create, ROOT_INODE, b"f", 0o644, os.O_WRONLY, Ctx()) == errno.EPERM
    assert fuse_errno(ops.symlink, t, b"s", b"l", Ctx()) == errno.EPERM
    assert fuse_errno(ops.mkdir, ROOT_INODE, b".logfs", 0o755, Ctx()) == errno.EINVAL
    assert fuse_errno(ops.mkdir, ROOT_INODE, b"\xff", 0o755, Ctx()) == errno.EINVAL
    assert fuse_errno(ops.rmdir, ROOT_INODE, b"t", Ctx()) == errno.ENOTEMPTY
    assert fuse_errno(ops.lookup, ROOT_INODE, b"nope", Ctx()) == errno.ENOENT
    assert fuse_errno(ops.getattr, 999_999, Ctx()) == errno.ENOENT


def test_only_read_write_descriptors_get_direct_io(ops, caplog):
    """A read-write descriptor could be mapped shared and writable: it gets direct I/O
    (the kernel then refuses MAP_SHARED with ENODEV), logged once per log; read-only
    and write-only descriptors keep the page cache."""
    t, fh = make_log(ops)
    with caplog.at_level(logging.INFO, logger="logfs.fusefs.operations"):
        for flags in (os.O_RDONLY, os.O_WRONLY | os.O_APPEND):
            fi = call(ops.open, fh, flags, Ctx())
            assert (fi.direct_io, fi.keep_cache) == (False, True), flags
        for _ in range(3):
            fi = call(ops.open, fh, os.O_RDWR | os.O_APPEND, Ctx())
            assert (fi.direct_io, fi.keep_cache) == (True, True)
        fi, _attrs = call(ops.create, t, b"new", 0o644, os.O_RDWR | os.O_CREAT, Ctx())
        assert fi.direct_io
    noted = [r.getMessage() for r in caplog.records if "opened read-write" in r.getMessage()]
    assert len(noted) == 2 and "t/l" in noted[0] and "t/new" in noted[1], noted


def test_enoent_is_quiet_for_lookups_only(ops, caplog):
    """A lookup of a name that does not exist is an answer (DEBUG); a write to a log
    deleted while open is a refusal: one INFO line (docs/spec.md §8)."""
    t, fh = make_log(ops)
    call(ops.write, fh, 0, b"one\n")
    call(ops.unlink, t, b"l", Ctx())
    with caplog.at_level(logging.DEBUG, logger="logfs.fusefs.errors"):
        assert fuse_errno(ops.lookup, t, b"l", Ctx()) == errno.ENOENT
        assert fuse_errno(ops.write, fh, 4, b"two\n") == errno.ENOENT
    levels = {r.getMessage().split("(")[0]: r.levelno for r in caplog.records}
    assert levels == {"refused lookup": logging.DEBUG, "refused write": logging.INFO}, levels
