"""Views (docs/spec.md §10) through the Operations class without a kernel: which inode a
view name gets, when its end settles, its figures, and the read path it shares with
logs (fileread.py). test_views.py drives the same through a real mount."""

from __future__ import annotations

import errno
import logging
import os
import stat

import pyfuse3
import pytest
import trio

from logfs.core import ManualClock, open_log_store
from logfs.fusefs.attrs import VIEW_ATTR_TIMEOUT_S
from logfs.fusefs.inodes import ROOT_INODE, Kind
from logfs.fusefs.operations import LogfsOperations

T0 = 1_800_000_000_000


class Ctx:
    uid, gid, pid, umask = 0, 0, 1, 0o022


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def ops(tmp_path, clock):
    store = open_log_store(str(tmp_path), clock=clock,
                           defaults={"segment.bytes": "1000", "retention.bytes": "2000",
                                     "index.interval.bytes": "1"})
    o = LogfsOperations(store, str(tmp_path), mtime_granularity_s=0)
    yield o
    store.close()


def call(coro_fn, *args):
    return trio.run(coro_fn, *args)


def fuse_errno(coro_fn, *args) -> int:
    with pytest.raises(pyfuse3.FUSEError) as e:
        call(coro_fn, *args)
    return e.value.errno


def make_log(ops, name=b"web"):
    t = call(ops.mkdir, ROOT_INODE, b"t", 0o755, Ctx())
    fi, _attrs = call(ops.create, t.st_ino, name, 0o644, os.O_WRONLY, Ctx())
    return t.st_ino, fi.fh


def append(ops, fh, data: bytes, clock=None, step_ms: int = 0) -> None:
    if clock is not None:
        clock.advance(step_ms)
    end = ops.store.log("t", "web").end_offset
    assert call(ops.write, fh, end, data) == len(data)


def view(ops, topic, name: str):
    return call(ops.lookup, topic, name.encode(), Ctx())


def read_all(ops, ino: int) -> bytes:
    fi = call(ops.open, ino, os.O_RDONLY, Ctx())
    return call(ops.read, fi.fh, 0, 1 << 20)


def test_the_same_window_keeps_its_inode_and_a_new_one_gets_a_new_inode(ops, clock):
    topic, fh = make_log(ops)
    append(ops, fh, b"a\nb\nc\n")
    v1 = view(ops, topic, "web@last=2")
    assert view(ops, topic, "web@last=2").st_ino == v1.st_ino
    assert read_all(ops, v1.st_ino) == b"b\nc\n"
    append(ops, fh, b"d\n")
    v2 = view(ops, topic, "web@last=2")
    assert v2.st_ino != v1.st_ino
    assert read_all(ops, v2.st_ino) == b"c\nd\n"
    assert read_all(ops, v1.st_ino) == b"b\nc\nd\n"  # the old inode keeps its start
    # inode numbers are never reused: not by a log created afterwards either
    _fi, other = call(ops.create, topic, b"other", 0o644, os.O_WRONLY, Ctx())
    assert other.st_ino > v2.st_ino
    # the kernel forgetting a view removes it; the name resolves afresh
    call(ops.forget, [(v1.st_ino, 2), (v2.st_ino, 1)])
    assert ops.inodes.get(v1.st_ino) is None and ops.inodes.get(v2.st_ino) is None
    v3 = view(ops, topic, "web@last=2")
    assert v3.st_ino not in (v1.st_ino, v2.st_ino)
    assert [n.ino for n in ops.inodes.views()] == [v3.st_ino]
    assert ops.inodes.logs() and all(n.kind is Kind.LOG for n in ops.inodes.logs())


def test_view_figures(ops, clock):
    topic, fh = make_log(ops)
    append(ops, fh, b"0123456789\n" * 10, clock, 5)
    a = view(ops, topic, "web@record=4")
    assert a.st_size == 66 and a.entry_timeout == 0 and a.attr_timeout == VIEW_ATTR_TIMEOUT_S
    assert stat.S_ISREG(a.st_mode) and stat.S_IMODE(a.st_mode) == 0o644 & ~0o222
    assert a.st_mtime_ns == ops.store.log("t", "web").last_append_ms * 1_000_000
    append(ops, fh, b"x\n", clock, 5)
    assert call(ops.getattr, a.st_ino, Ctx()).st_size == 68  # it grows with the log


def test_an_until_ahead_follows_the_log_then_settles(ops, clock):
    topic, fh = make_log(ops)
    append(ops, fh, b"one\n", clock, 10)
    v = view(ops, topic, f"web@until={T0 + 100}")
    assert v.st_size == 4 and v.entry_timeout == 0 and v.attr_timeout == VIEW_ATTR_TIMEOUT_S
    append(ops, fh, b"two\n", clock, 50)               # at T0 + 60, before until
    assert call(ops.getattr, v.st_ino, Ctx()).st_size == 8
    append(ops, fh, b"three\n", clock, 100)            # at T0 + 160, after until
    settled = call(ops.getattr, v.st_ino, Ctx())
    assert settled.st_size == 8 and settled.attr_timeout > VIEW_ATTR_TIMEOUT_S
    assert settled.st_mtime_ns == (T0 + 100) * 1_000_000  # until, not the log's last append
    assert read_all(ops, v.st_ino) == b"one\ntwo\n"
    append(ops, fh, b"four\n", clock, 100)
    assert call(ops.getattr, v.st_ino, Ctx()).st_size == 8
    # a later lookup resolves to the same fixed window: the same inode
    assert view(ops, topic, f"web@until={T0 + 100}").st_ino == v.st_ino


def test_bad_views_and_views_of_missing_logs(ops, caplog):
    topic, fh = make_log(ops)
    with caplog.at_level(logging.DEBUG, logger="logfs.fusefs.errors"):
        assert fuse_errno(ops.lookup, topic, b"web@since=banana", Ctx()) == errno.EINVAL
        assert fuse_errno(ops.lookup, topic, b"web@group=", Ctx()) == errno.EINVAL
        assert fuse_errno(ops.lookup, topic, b"nolog@since=1h", Ctx()) == errno.ENOENT
        assert fuse_errno(ops.lookup, topic, b"nolog", Ctx()) == errno.ENOENT
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(info) == 3 and "nolog@since=1h" in info[2] and "ENOENT" in info[2], info
    # a plain name that is not a log is an answer, not a refusal: DEBUG only
    assert [r.levelno for r in caplog.records if "b'nolog'" in r.getMessage()] == [logging.DEBUG]


def test_the_log_removed_under_a_view_is_enoent(ops):
    topic, fh = make_log(ops)
    append(ops, fh, b"a\n")
    v = view(ops, topic, "web@record=0")
    call(ops.unlink, topic, b"web", Ctx())
    assert fuse_errno(ops.getattr, v.st_ino, Ctx()) == errno.ENOENT
    assert fuse_errno(ops.open, v.st_ino, os.O_RDONLY, Ctx()) == errno.ENOENT
    call(ops.create, topic, b"web", 0o644, os.O_WRONLY, Ctx())  # a new log of that name:
    assert fuse_errno(ops.getattr, v.st_ino, Ctx()) == errno.ENOENT  # not the view's log
    assert view(ops, topic, "web@record=0").st_ino != v.st_ino


def test_views_refuse_every_change(ops):
    topic, fh = make_log(ops)
    append(ops, fh, b"a\n")
    v = view(ops, topic, "web@record=0")
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_RDONLY | os.O_TRUNC):
        assert fuse_errno(ops.open, v.st_ino, flags, Ctx()) == errno.EACCES
    attr = pyfuse3.EntryAttributes()
    fields = pyfuse3.SetattrFields()
    assert fuse_errno(ops.setattr, v.st_ino, attr, fields, None, Ctx()) == errno.EACCES
    assert fuse_errno(ops.unlink, topic, b"web@record=0", Ctx()) == errno.EACCES
    assert fuse_errno(ops.rename, topic, b"web@record=0", topic, b"x", 0, Ctx()) == errno.EACCES
    assert fuse_errno(ops.write, v.st_ino, 2, b"x") == errno.EACCES
    assert fuse_errno(ops.opendir, v.st_ino, Ctx()) == errno.ENOTDIR
    assert call(ops.fsync, v.st_ino, False) is None
    assert ops.store.log("t", "web").end_offset == 2


def test_a_view_reads_its_own_pages_below_the_start(ops):
    """The NULs-below-the-start rule works in the view's own pages, not the log's."""
    topic, fh = make_log(ops)
    append(ops, fh, b"0123456789\n" * 3)
    v = view(ops, topic, "web@record=1")                   # S = 11
    fi = call(ops.open, v.st_ino, os.O_RDONLY, Ctx())
    assert call(ops.read, fi.fh, 0, 4096) == b"0123456789\n" * 2
    for i in range(100):                                   # retention moves the start
        append(ops, fh, f"{i:09d}".encode() + b"y" * 90 + b"\n")
    lg = ops.store.log("t", "web")
    start = lg.start_offset
    vstart = start - 11
    page = vstart - vstart % 4096
    if vstart % 4096:  # the page holding the start: NULs, then the retained bytes
        assert call(ops.read, fi.fh, page, 4096) == bytes(vstart - page) + lg.read(start, 4096 - (vstart - page))
    if page >= 4096:
        assert fuse_errno(ops.read, fi.fh, 0, 4096) == errno.ENODATA
