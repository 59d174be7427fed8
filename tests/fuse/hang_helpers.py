"""For tests of commands that hang when they fail: run with a deadline, never wait on
a process stuck in the kernel, and clear whatever is left under a test's directory.

A FUSE daemon that serves its own mount sits in D state (``fuse_get_req``,
``request_wait_answer``) and so does every process that touches the mount; a normal
``subprocess.run(timeout=...)`` would wait for the killed child forever. Here
:func:`run_bounded` gives up on it instead, and :func:`rescue` clears it: abort the
FUSE connection (where /sys/fs/fuse/connections is mounted), SIGKILL every process
that names the directory on its command line, unmount lazily, then reap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Bounded:
    returncode: int | None  # None: still running at the deadline (hung)
    stdout: str
    stderr: str
    pid: int

    @property
    def hung(self) -> bool:
        return self.returncode is None


def run_bounded(cmd: list[str], timeout: float, **kw) -> Bounded:
    """Run ``cmd`` for at most ``timeout`` seconds. Output goes to files, so a stuck
    grandchild holding a pipe cannot block us. A process still running at the
    deadline is sent SIGKILL and left for :func:`rescue` (it may be unkillable until
    its FUSE connection goes away)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, **kw)
        deadline = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        rc = p.poll()
        if rc is None:
            try:
                p.kill()
            except ProcessLookupError:
                pass
            p.returncode = -9  # so Popen.__del__ does not wait; rescue() reaps it
            _orphans.append(p.pid)
        out.seek(0)
        err.seek(0)
        return Bounded(rc, out.read().decode(errors="replace"),
                       err.read().decode(errors="replace"), p.pid)


_orphans: list[int] = []


def _fuse_mounts_under(root: str) -> list[tuple[str, str]]:
    """(mountpoint, "major:minor") of every mount at or below ``root``, deepest first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4].replace("\\040", " ")
            if mp == root or mp.startswith(root.rstrip("/") + "/"):
                found.append((mp, fields[2]))
    return sorted(found, key=lambda e: -len(e[0]))


def _pids_naming(root: str) -> list[int]:
    me = os.getpid()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if root in cmdline:
            pids.append(int(name))
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def rescue(root: Path | str) -> list[str]:
    """Clear every mount and process left under ``root`` (whatever state they are in);
    return what had to be done, for the test's failure message. Never blocks on the
    mounts themselves (no stat of anything below ``root``)."""
    root = str(root)
    done = []
    mounts = _fuse_mounts_under(root)
    for mp, dev in mounts:
        abort = f"/sys/fs/fuse/connections/{dev.split(':')[1]}/abort"
        try:
            with open(abort, "w") as f:
                f.write("1")
            done.append(f"aborted the FUSE connection of {mp}")
        except OSError:
            pass
    for pid in _pids_naming(root):
        try:
            os.kill(pid, signal.SIGKILL)
            done.append(f"killed pid {pid}")
        except ProcessLookupError:
            pass
    for mp, _dev in mounts:
        r = subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True, timeout=30)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", mp], capture_output=True, timeout=30)
        done.append(f"unmounted {mp} lazily")
    deadline = time.monotonic() + 20
    for pid in list(_orphans):
        try:
            while time.monotonic() < deadline:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    break
                time.sleep(0.02)
            else:
                continue
        except ChildProcessError:
            pass
        _orphans.remove(pid)
    for pid in _pids_naming(root):
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    left = _fuse_mounts_under(root)
    if left:
        done.append(f"still mounted after rescue: {left}")
    return done
