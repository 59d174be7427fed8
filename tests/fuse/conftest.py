"""Fixtures that really mount logfs and always clean up.

Every mount is made by a real `logfs mount` subprocess (the daemonising path users
run). Teardown unmounts with `logfs umount`, falls back to `fusermount3 -u -z`, and
SIGKILLs the daemon if it is still alive, whatever the test did. It then fails the
test if the daemon logged an ERROR (an unexpected exception in a handler).

Without FUSE the tests skip, except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os

import pytest

from fuse_helpers import Mount, new_mount, require_fuse, tear_down


@pytest.fixture
def mount_factory(tmp_path):
    """``make(*options, name="m")`` -> a mounted :class:`Mount`; all are torn down."""
    require_fuse()
    made: list[Mount] = []

    def make(*options: str, name: str = "m", do_mount: bool = True) -> Mount:
        return new_mount(made, tmp_path / name / "data", tmp_path / name / "mnt", options, do_mount)

    yield make
    tear_down(made)


@pytest.fixture
def mnt(mount_factory) -> Mount:
    """A fresh mount with default options and a topic ``t``."""
    m = mount_factory()
    os.mkdir(m.p("t"))
    return m
