"""What the daemon does on its own: recovery at mount, the maintenance task (segment.ms
rolls, flush.ms fsyncs), each action logged once, and the slow part of a flush.ms
fsync kept off the thread that serves every request (docs/fuse.md, Lifecycle)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from fuse_helpers import run, wait_for

pytestmark = pytest.mark.fuse


def test_each_recovery_action_is_logged_once(mount_factory):
    """The core logs every recovery action (logfs.core.recovery); the mount adds a
    one-line summary, not a second line per action."""
    m = mount_factory("segment.bytes=4096")
    os.mkdir(m.p("t"))
    with open(m.p("t", "l"), "ab") as f:
        for i in range(3):
            f.write(f"{i}".encode() * 4095 + b"\n")
            f.flush()
    m.umount()
    indexes = sorted((m.data / "t" / "l").glob("*.index"))
    assert len(indexes) >= 2, indexes
    indexes[0].unlink()                                  # recovery must rebuild it
    (m.data / ".logfs" / "clean-shutdown").unlink()      # as after a crash
    m.mount()
    text = m.daemon_log()
    actions = [line for line in text.splitlines() if "index-rebuilt" in line]
    assert len(actions) == 1, "one line per recovery action expected:\n" + "\n".join(actions)
    assert "logfs.core.recovery" in actions[0]
    assert re.search(r"not shut down cleanly: .*1 recovery action\b", text), text[-2000:]
    assert open(m.p("t", "l"), "rb").read() == b"".join(f"{i}".encode() * 4095 + b"\n"
                                                         for i in range(3))


def test_each_maintenance_action_is_logged_once(mount_factory):
    """A segment.ms roll made by the maintenance task: the core's line, and no second
    line from the mount."""
    m = mount_factory("segment.ms=200", "flush.ms=50")  # passes every 50 ms
    os.mkdir(m.p("t"))
    run(f"echo one >> {m.p('t', 'l')}")
    wait_for(lambda: "rolled t/l" in m.daemon_log(), 10, "the segment.ms roll in the daemon's log")
    time.sleep(0.5)  # several more passes: nothing more to roll (the new segment is empty)
    lines = [line for line in m.daemon_log().splitlines() if "rolled t/l" in line]
    assert len(lines) == 1, "one line per maintenance action expected:\n" + "\n".join(lines)
    assert m.describe("t", "l")["segments"] == 2


SYNC_RE = re.compile(r"^(fsync|fdatasync)\((\d+)<([^>]*)>\)")
SEGMENT_RE = re.compile(r"/\d{20}\.log$")


def _segment_syncs(path) -> list[str]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = SYNC_RE.match(line)
        if m and SEGMENT_RE.search(m.group(3)):
            out.append(m.group(3))
    return out


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (Debian package strace)")
def test_flush_ms_writes_the_pages_out_from_a_worker_thread(mount_factory, tmp_path):
    """With flush.ms, the maintenance task fsyncs the log. The slow part (the dirty
    pages of the segment) must be written from a worker thread, as the fsync handler
    does, not from the one thread that serves every FUSE request. Seen from outside
    with strace: a worker thread syncs the segment file."""
    m = mount_factory("flush.ms=300")
    os.mkdir(m.p("t"))
    log = m.p("t", "l")
    run(f"echo first >> {log}")
    time.sleep(0.7)  # the first flush is done
    prefix = tmp_path / "trace"
    tracer = subprocess.Popen(["strace", "-f", "-ff", "-y", "-e", "trace=fsync,fdatasync",
                               "-o", str(prefix), "-p", str(m.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = tracer.stderr.readline()
        if "attached" not in line:
            tracer.kill()
            pytest.skip(f"strace cannot attach to the daemon: {line.strip()}")
        with open(log, "ab") as f:
            f.write(b"x" * (8 << 20) + b"\n")

        def main_thread_synced():
            main = prefix.parent / f"{prefix.name}.{m.pid}"
            return main.exists() and _segment_syncs(main)

        wait_for(main_thread_synced, 10, "the core's fsync of the segment (main thread)")
    finally:
        tracer.terminate()
        try:
            tracer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(timeout=10)
        tracer.stderr.close()
    workers = [p for p in prefix.parent.glob(f"{prefix.name}.*") if p.name != f"{prefix.name}.{m.pid}"]
    worker_syncs = [s for p in workers for s in _segment_syncs(p)]
    assert worker_syncs, ("the segment's pages were written out only by the request thread "
                          f"(worker threads traced: {[p.name for p in workers]})")
    assert open(log, "rb").read() == b"first\n" + b"x" * (8 << 20) + b"\n"
