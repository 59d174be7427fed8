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

from fuse_helpers import Mount, mounted, require_fuse


@pytest.fixture
def mount_factory(tmp_path):
    """``make(*options, name="m")`` -> a mounted :class:`Mount`; all are torn down."""
    require_fuse()
    made: list[Mount] = []

    def make(*options: str, name: str = "m", do_mount: bool = True) -> Mount:
        base = tmp_path / name
        data, mnt = base / "data", base / "mnt"
        data.mkdir(parents=True, exist_ok=True)
        mnt.mkdir(parents=True, exist_ok=True)
        m = Mount(data, mnt, list(options))
        made.append(m)
        if do_mount:
            m.mount()
        return m

    yield make
    errors = []
    for m in made:
        try:
            m.cleanup()
        finally:
            bad = [line for line in m.daemon_log().splitlines()
                   if " ERROR " in line or "Traceback" in line]
            if bad:
                errors.append(f"{m.data}: daemon logged errors:\n" + "\n".join(bad[:20]))
    for m in made:
        if mounted(str(m.mnt)):
            errors.append(f"{m.mnt} is still mounted after cleanup")
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def mnt(mount_factory) -> Mount:
    """A fresh mount with default options and a topic ``t``."""
    m = mount_factory()
    os.mkdir(m.p("t"))
    return m
