"""The read path logs and views share (logfs/fusefs/fileread.py) and the errno table,
through the Operations class without a kernel: fixes found while building views."""

from __future__ import annotations

import errno
import os

import trio
import pytest

from logfs.core import open_log_store
from logfs.core.selection import BadSelection
from logfs.fusefs import errors
from logfs.fusefs.inodes import ROOT_INODE
from logfs.fusefs.operations import LogfsOperations


class Ctx:
    uid, gid, pid, umask = 0, 0, 1, 0o022


@pytest.fixture
def ops(tmp_path):
    store = open_log_store(str(tmp_path), defaults={"segment.bytes": "1000",
                                                    "retention.bytes": "2000"})
    o = LogfsOperations(store, str(tmp_path), mtime_granularity_s=0)
    yield o
    store.close()


def call(coro_fn, *args):
    return trio.run(coro_fn, *args)


def make_log(ops, name=b"web"):
    t = call(ops.mkdir, ROOT_INODE, b"t", 0o755, Ctx())
    fi, _attrs = call(ops.create, t.st_ino, name, 0o644, os.O_WRONLY, Ctx())
    return t.st_ino, fi.fh


def append(ops, fh, data: bytes) -> None:
    end = ops.store.log("t", "web").end_offset
    assert call(ops.write, fh, end, data) == len(data)


def test_a_read_below_the_start_returns_no_more_than_was_asked(ops):
    """A direct-I/O read (O_RDWR descriptors) can ask for bytes that end before the
    start, inside the start's page: the NULs below the start are cut to the request
    (the read handler returned every NUL up to the start, more than asked)."""
    _topic, fh = make_log(ops)
    for i in range(100):
        append(ops, fh, f"{i:09d}".encode() + b"y" * 90 + b"\n")
    start = ops.store.log("t", "web").start_offset
    assert start % 4096 > 60, start  # the test needs room below the start in its page
    got = call(ops.read, fh, start - 50, 20)
    assert got == bytes(20)
    got = call(ops.read, fh, start - 50, 100)
    assert got == bytes(50) + ops.store.log("t", "web").read(start, 50)


def test_a_bad_selection_is_einval_not_eio():
    """The core's BadSelection (a bad view: `web@since=banana`) has its own row in the
    errno table (it fell through to StorageError: EIO)."""
    assert errors.errno_for(BadSelection("bad time 'banana'")) == errno.EINVAL
