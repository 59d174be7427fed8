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
