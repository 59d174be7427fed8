"""What the kernel says is mounted: /proc/self/mountinfo, and fusermount3.

The daemon mounts with ``fsname=DATA`` and ``subtype=logfs``, so a logfs mount
appears with type ``fuse.logfs`` and its data directory as the mount source.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

FSTYPE = "fuse.logfs"


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    source: str
    fstype: str
    device: str  # "major:minor"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[MountEntry]:
    """Every mount this process can see, in mount order. Blocks briefly."""
    entries = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            lf, rf = left.split(), right.split()
            if len(lf) < 5 or len(rf) < 2:
                continue
            entries.append(MountEntry(_unescape(lf[4]), _unescape(rf[1]), rf[0], lf[2]))
    return entries


def logfs_mount_at(mountpoint: str) -> MountEntry | None:
    """The logfs mount whose mountpoint is exactly ``mountpoint`` (the last one)."""
    mp = os.path.abspath(mountpoint)
    found = None
    for e in mounts():
        if e.mountpoint == mp and e.fstype == FSTYPE:
            found = e
    return found


def logfs_mount_containing(path: str) -> tuple[MountEntry, tuple[str, ...]] | None:
    """The logfs mount holding ``path`` and the path's components below the mount."""
    p = os.path.abspath(path)
    best = None
    for e in mounts():
        if e.fstype != FSTYPE:
            continue
        mp = e.mountpoint.rstrip("/") or "/"
        if p == mp or p.startswith(mp.rstrip("/") + "/"):
            if best is None or len(e.mountpoint) >= len(best.mountpoint):
                best = e
    if best is None:
        return None
    rel = os.path.relpath(p, best.mountpoint)
    parts = () if rel == "." else tuple(rel.split("/"))
    return best, parts


def is_dead_mountpoint(path: str) -> bool:
    """True if ``path`` is a FUSE mount whose daemon is gone (ENOTCONN)."""
    try:
        os.statvfs(path)  # never answered from the kernel's attribute cache
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def fusermount_unmount(mountpoint: str, lazy: bool = False) -> subprocess.CompletedProcess:
    """Run ``fusermount3 -u [-z] MOUNTPOINT``; blocks; never raises for its exit code."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"
    cmd = [tool, "-u"] + (["-z"] if lazy else []) + [mountpoint]
    return subprocess.run(cmd, capture_output=True, text=True)


# ------------------------------------------------------- where DATA and the mount may be

class LayoutError(Exception):
    """DATA and MOUNTPOINT are laid out so that the daemon would walk into its own
    mount (and hang in the kernel, unkillable but by SIGKILL); the message says how."""


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path) and path != "/":
        path = os.path.dirname(path)
    return path


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _ancestors(path: str) -> list[str]:
    """``path`` and every directory above it, nearest first (``path`` is real)."""
    out = [path]
    while path != "/":
        path = os.path.dirname(path)
        out.append(path)
    return out


def check_mount_layout(data: str, mountpoint: str) -> None:
    """Raise LayoutError if serving DATA on MOUNTPOINT would make the daemon use its
    own mount: DATA == MOUNTPOINT, MOUNTPOINT inside DATA, DATA inside MOUNTPOINT,
    or DATA on a logfs mount.

    Paths are compared as the kernel sees them: real paths (symlinks resolved) and
    ``(st_dev, st_ino)`` of every ancestor, so a bind mount of DATA (or of the
    mountpoint) elsewhere is recognised too. DATA may not exist yet (``logfs mount``
    creates it): its nearest existing ancestor is checked. MOUNTPOINT must exist.
    Blocks briefly (stat, /proc/self/mountinfo).
    """
    data_real = os.path.realpath(data)
    mnt_real = os.path.realpath(mountpoint)
    data_exists = os.path.isdir(data_real)
    try:
        mnt_id = _identity(mnt_real)
        mnt_chain = {_identity(p): p for p in reversed(_ancestors(mnt_real))}
        data_base = _nearest_existing(data_real)
        data_chain = {_identity(p): p for p in reversed(_ancestors(data_base))}
    except OSError as exc:
        raise LayoutError(f"cannot check where {data} and {mountpoint} are: "
                          f"{exc.filename}: {exc.strerror}") from None
    hint = "; the daemon would serve its own mount and hang: put them side by side, " \
           "e.g. DATA=/var/lib/logfs and MOUNTPOINT=/mnt/logs"
    if data_exists and _identity(data_real) == mnt_id:
        same = "" if data_real == mnt_real else f" ({data_real} and {mnt_real})"
        raise LayoutError(f"DATA {data} and MOUNTPOINT {mountpoint} are the same "
                          f"directory{same}{hint}")
    if data_exists and _identity(data_real) in mnt_chain:
        via = mnt_chain[_identity(data_real)]
        where = "" if via == data_real else f" (through {via}, the same directory)"
        raise LayoutError(f"MOUNTPOINT {mountpoint} is inside DATA {data}{where}{hint}")
    if mnt_id in data_chain:
        via = data_chain[mnt_id]
        where = "" if via == mnt_real else f" (through {via}, the same directory)"
        raise LayoutError(f"DATA {data} is inside MOUNTPOINT {mountpoint}{where}{hint}")
    dev = os.stat(data_base).st_dev
    device = f"{os.major(dev)}:{os.minor(dev)}"
    for e in mounts():
        if e.fstype == FSTYPE and e.device == device:
            raise LayoutError(f"DATA {data} is on the logfs mount {e.mountpoint} (of "
                              f"{e.source}): a data directory must be on a disk "
                              "filesystem, not inside a logfs mount")
