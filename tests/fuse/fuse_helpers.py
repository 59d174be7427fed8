"""Helpers for the FUSE tests: a Mount driven by the real `logfs` CLI, run(), wait_for()."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOGFS = str(REPO / ".venv" / "bin" / "logfs")
if not os.path.exists(LOGFS):
    LOGFS = shutil.which("logfs") or LOGFS
PYTHON = sys.executable


def _fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "fusermount3 is not installed (apt-get install fuse3)"
    return None


def require_fuse() -> None:
    """Skip without FUSE; under CI (CI=true) a missing FUSE is a failure, never a skip."""
    reason = _fuse_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but FUSE is unusable: {reason}")
    pytest.skip(reason)


def mounted(mnt: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mnt for line in f)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def run(cmd, *, check=True, timeout=60, input=None, **kw) -> subprocess.CompletedProcess:
    """Run a shell command (str) or argv (list); text output; fail loudly on error."""
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True,
                       timeout=timeout, input=input, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd!r} exited {r.returncode}\nstdout: {r.stdout[-2000:]}\n"
                             f"stderr: {r.stderr[-2000:]}")
    return r


class Mount:
    """One logfs mount of ``data`` on ``mnt``, made by a `logfs mount` subprocess."""

    def __init__(self, data: Path, mnt: Path, options: list[str]) -> None:
        self.data, self.mnt, self.options = data, mnt, options
        self.pid: int | None = None
        self.pids: list[int] = []

    # --- lifecycle
    def mount(self, check: bool = True) -> subprocess.CompletedProcess:
        args = [LOGFS, "mount"]
        for o in self.options:
            args += ["-o", o]
        r = run(args + [str(self.data), str(self.mnt)], check=check, timeout=30)
        if r.returncode == 0:
            self.pid = int((self.data / ".logfs" / "daemon.pid").read_text())
            self.pids.append(self.pid)
            assert mounted(str(self.mnt)), "logfs mount returned 0 but nothing is mounted"
        return r

    def umount(self) -> None:
        run([LOGFS, "umount", str(self.mnt)], timeout=30)
        assert not mounted(str(self.mnt))
        if self.pid:
            assert not _alive(self.pid), "daemon still running after logfs umount"

    def kill9(self) -> None:
        assert self.pid
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def wait_unmounted(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while mounted(str(self.mnt)) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not mounted(str(self.mnt))

    def cleanup(self) -> None:
        if mounted(str(self.mnt)):
            subprocess.run([LOGFS, "umount", str(self.mnt)], capture_output=True, timeout=30)
        if mounted(str(self.mnt)):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True,
                           timeout=30)
        for pid in self.pids:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in self.pids:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)

    # --- helpers
    def p(self, *parts: str) -> str:
        return os.path.join(str(self.mnt), *parts)

    def logfs(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run([LOGFS, *args], check=check, timeout=30)

    def describe(self, *parts: str) -> dict:
        return json.loads(self.logfs("describe", "--json", self.p(*parts)).stdout)

    def daemon_log(self) -> str:
        try:
            return (self.data / ".logfs" / "daemon.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""


def new_mount(made: list[Mount], data: Path, mnt: Path, options, do_mount: bool) -> Mount:
    """A :class:`Mount` of *data* on *mnt*, recorded in *made* for :func:`tear_down`."""
    data.mkdir(parents=True, exist_ok=True)
    mnt.mkdir(parents=True, exist_ok=True)
    m = Mount(data, mnt, list(options))
    made.append(m)
    if do_mount:
        m.mount()
    return m


def tear_down(made: list[Mount]) -> None:
    """Unmount and stop everything in *made*, whatever happened; then fail the test if
    a daemon logged an ERROR (an unexpected exception in a handler) or a mount is left."""
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


def wait_for(predicate, timeout: float, what: str, interval: float = 0.01):
    """Poll ``predicate`` until truthy; fail saying what was expected and what came."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")

