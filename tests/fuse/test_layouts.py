"""`logfs mount` refuses every layout where the daemon would walk into its own mount.

Before the fix, `logfs mount d d` never returned (the daemon hung in D state in
fuse_get_req) and `logfs mount d d/mnt` returned 0, after which the first `ls -la
d/mnt` hung in D state (request_wait_answer) where only SIGKILL of the daemon helped.
Each case runs the real CLI with a deadline; whatever hangs is cleared by
hang_helpers.rescue (connection abort, SIGKILL, lazy unmount) even when the test fails.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from fuse_helpers import LOGFS, mounted, require_fuse
from hang_helpers import rescue, run_bounded

pytestmark = pytest.mark.fuse

DEADLINE_S = 15  # a refusal takes well under a second; the old hang never returned


@pytest.fixture
def area(tmp_path):
    require_fuse()
    root = tmp_path / "layout"
    root.mkdir()
    yield root
    done = rescue(root)
    hung = [d for d in done if "killed" in d or "aborted" in d or "still" in d]
    if any("still mounted" in d for d in done):
        pytest.fail("; ".join(done))
    if hung:
        print("rescue had to clear:", "; ".join(hung))


def _mount_must_be_refused(data, mnt, *words: str) -> str:
    r = run_bounded([LOGFS, "mount", str(data), str(mnt)], DEADLINE_S)
    if r.hung:
        pytest.fail(f"`logfs mount {data} {mnt}` did not return within {DEADLINE_S} s "
                    "(the daemon hangs on its own mount)")
    if r.returncode == 0:
        probe = run_bounded(["ls", "-la", str(mnt)], 5)
        what = "hung" if probe.hung else f"answered (rc {probe.returncode})"
        pytest.fail(f"`logfs mount {data} {mnt}` returned 0 instead of refusing; "
                    f"`ls -la {mnt}` then {what}")
    err = r.stderr.strip()
    assert r.returncode == 1, r
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "refusing to mount" in err, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert not mounted(str(mnt)), f"{mnt} was mounted"
    return err


def test_data_equal_to_mountpoint(area):
    d = area / "d2"
    d.mkdir()
    _mount_must_be_refused(d, d, "same directory")


def test_data_equal_to_mountpoint_through_a_symlink(area):
    d = area / "d"
    d.mkdir()
    (area / "link").symlink_to(d)
    _mount_must_be_refused(area / "link", d, "same directory")
    _mount_must_be_refused(d, area / "link", "same directory")


def test_mountpoint_inside_data(area):
    d = area / "d3"
    (d / "mnt").mkdir(parents=True)
    _mount_must_be_refused(d, d / "mnt", "MOUNTPOINT", "is inside DATA")


def test_mountpoint_deep_inside_data_through_a_symlink(area):
    d = area / "d"
    (d / "a" / "b").mkdir(parents=True)
    (area / "elsewhere").symlink_to(d / "a")
    _mount_must_be_refused(d, area / "elsewhere" / "b", "is inside DATA")


def test_data_inside_mountpoint(area):
    m = area / "m"
    (m / "data").mkdir(parents=True)
    _mount_must_be_refused(m / "data", m, "DATA", "is inside MOUNTPOINT")


def test_data_inside_mountpoint_is_not_even_created(area):
    m = area / "m"
    m.mkdir()
    _mount_must_be_refused(m / "new" / "data", m, "is inside MOUNTPOINT")
    assert not (m / "new").exists()


def test_mountpoint_inside_data_through_a_bind_mount(area):
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    d, view = area / "d", area / "view"
    (d / "mnt").mkdir(parents=True)
    view.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(view)], check=True)
    try:
        err = _mount_must_be_refused(d, view / "mnt", "is inside DATA", "through")
        assert str(view) in err
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_data_on_a_logfs_mount(area):
    data, mnt = area / "data", area / "mnt"
    data.mkdir()
    mnt.mkdir()
    r = run_bounded([LOGFS, "mount", str(data), str(mnt)], DEADLINE_S)
    assert r.returncode == 0, r
    try:
        os.mkdir(mnt / "t")
        other = area / "other"
        other.mkdir()
        _mount_must_be_refused(mnt / "t", other, "on the logfs mount", str(mnt))
        _mount_must_be_refused(mnt, other, "on the logfs mount")
        assert os.listdir(mnt) == ["t"]  # the first mount is unharmed
    finally:
        run_bounded([LOGFS, "umount", str(mnt)], 30)


def test_store_internals_and_topics_are_refused_as_data(area):
    """A store's .logfs/ directory, or a topic of a store, is no data directory."""
    data, mnt = area / "data", area / "mnt"
    data.mkdir()
    mnt.mkdir()
    assert run_bounded([LOGFS, "mount", str(data), str(mnt)], DEADLINE_S).returncode == 0
    os.mkdir(mnt / "orders")
    assert run_bounded([LOGFS, "umount", str(mnt)], 30).returncode == 0
    _mount_must_be_refused(data / ".logfs", mnt, "logfs internals", str(data))
    _mount_must_be_refused(data / "orders", mnt, "a topic directory", str(data))
    assert not (data / ".logfs" / ".logfs").exists()


def test_a_good_layout_still_mounts(area):
    """Side by side, and the mountpoint named through a symlink: fine."""
    data, mnt = area / "data", area / "mnt"
    data.mkdir()
    mnt.mkdir()
    (area / "to-mnt").symlink_to(mnt)
    r = run_bounded([LOGFS, "mount", str(data), str(area / "to-mnt")], DEADLINE_S)
    assert r.returncode == 0, r
    try:
        os.mkdir(mnt / "t")
        with open(mnt / "t" / "l", "a") as f:
            f.write("x\n")
        assert (mnt / "t" / "l").read_text() == "x\n"
        r = run_bounded([LOGFS, "umount", str(area / "to-mnt")], 30)  # through the symlink too
        assert r.returncode == 0, r
    finally:
        run_bounded([LOGFS, "umount", str(mnt)], 30)
    assert not mounted(str(mnt))
