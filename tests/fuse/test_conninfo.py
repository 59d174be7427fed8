"""The connection settings logfs asks pyfuse3 for, and the fallbacks of a stock pyfuse3.

logfs builds pyfuse3 with three patches (patches/README.md): ``enable_auto_inval_data``
(libfuse's auto_inval_data off in the INIT handshake), ``main(busy_poll_us=N)`` (the
request loop's cheaper wait) and ``Operations.write_sync`` (writes answered without a
coroutine). These tests check that the suite runs the patched build, that the INIT
reply the kernel gets really has AUTO_INVAL_DATA cleared (read from libfuse's own debug
output), and that with the patches ignored (LOGFS_IGNORE_PYFUSE3_PATCHES=1, what a
stock pyfuse3 gives) the mount falls back to coarse mtimes, to fastloop's proxy of
trio and to the async write handler. The page cache behaviour itself is tested in
test_fuse_read.py::test_appends_keep_the_cache.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyfuse3
import pytest

from fuse_helpers import PYTHON, run, wait_for
from logfs.core import open_log_store
from logfs.fusefs.operations import LogfsOperations

FUSE_AUTO_INVAL_DATA = 1 << 12  # the kernel protocol's INIT flag (linux/fuse.h)
IGNORE = "LOGFS_IGNORE_PYFUSE3_PATCHES"


def _init_reply_flags(m) -> int:
    """The flags of libfuse's INIT reply, from its debug output (-o debug) in daemon.log:
    the request's lines are "INIT: 7.x" / "flags=0x...", the reply's are indented."""
    text = wait_for(lambda: re.search(r"^   INIT: \d+\.\d+\n   flags=0x([0-9a-f]+)$",
                                      m.daemon_log(), re.M),
                    10, "libfuse's INIT reply in daemon.log")
    return int(text.group(1), 16)


@pytest.mark.parametrize("keep, ignore, granularity, want, auto, mtime_s, warns", [
    (False, False, None, False, False, 0, False),   # the default: off, exact mtimes
    (True, False, None, None, True, 60, False),     # -o auto_inval_data: libfuse's default
    (False, True, None, None, True, 60, True),      # a stock pyfuse3: fallback, one warning
    (True, True, None, None, True, 60, False),      # asked for: no warning
    (False, False, 5, False, False, 5, False),      # -o mtime_granularity=5 wins either way
    (False, True, 0, None, True, 0, True),
])
def test_what_operations_ask_of_the_init_handshake(tmp_path, monkeypatch, caplog, keep, ignore,
                                                   granularity, want, auto, mtime_s, warns):
    """No kernel: what LogfsOperations sets for pyfuse3's fuse_init to read, what it
    reports (describe), and what init() logs."""
    if ignore:
        monkeypatch.setenv(IGNORE, "1")
    store = open_log_store(str(tmp_path))
    try:
        ops = LogfsOperations(store, str(tmp_path), mtime_granularity_s=granularity,
                              keep_auto_inval_data=keep)
        assert ops.enable_auto_inval_data is want
        assert ops.auto_inval_data is auto
        assert ops.mtime_granularity_ns == mtime_s * 1_000_000_000
        with caplog.at_level(logging.INFO, logger="logfs.fusefs.operations"):
            ops.init()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == (1 if warns else 0), caplog.text
        assert f"auto_inval_data {'on' if auto else 'off'}" in caplog.text
    finally:
        store.close()


@pytest.mark.fuse
def test_the_suite_runs_the_patched_pyfuse3(mount_factory):
    assert hasattr(pyfuse3.Operations, "enable_auto_inval_data"), pyfuse3.__file__
    assert "busy_poll_us" in inspect.signature(pyfuse3.main).parameters, pyfuse3.__file__
    assert hasattr(pyfuse3.Operations, "write_sync"), pyfuse3.__file__
    assert "+logfs." in pyfuse3.__version__, pyfuse3.__version__
    m = mount_factory()
    d = m.describe()["pyfuse3"]  # and so does the daemon
    assert d == {"version": pyfuse3.__version__, "auto_inval_data_switch": True,
                 "busy_poll": True, "write_sync": True}, d
    text = m.daemon_log()
    assert "request loop: pyfuse3 busy polling, spin_us=50" in text
    assert "write requests: answered through pyfuse3's write_sync" in text


@pytest.mark.fuse
@pytest.mark.parametrize("options, cleared", [(("debug",), True),
                                              (("debug", "auto_inval_data"), False)])
def test_the_init_reply_clears_auto_inval_data(mount_factory, options, cleared):
    m = mount_factory(*options)
    flags = _init_reply_flags(m)
    assert bool(flags & FUSE_AUTO_INVAL_DATA) is not cleared, hex(flags)
    d = m.describe()
    assert d["auto_inval_data"] is not cleared
    assert d["mtime_granularity_s"] == (0 if cleared else 60)
    assert "cannot turn off" not in m.daemon_log()  # -o auto_inval_data is no fallback


@pytest.mark.fuse
def test_a_stripped_pyfuse3_still_turns_it_off(mount_factory, tmp_path, monkeypatch):
    """The switch needs no symbols: a pyfuse3 whose extension is stripped (as Debian
    ships it) still clears the flag (the memory scan this replaced could not)."""
    strip = shutil.which("strip")
    assert strip, "strip (binutils) is missing"
    site = tmp_path / "site"
    pkg = Path(pyfuse3.__file__).parent
    shutil.copytree(pkg, site / "pyfuse3")
    so = site / "pyfuse3" / Path(pyfuse3.__file__).name
    run([strip, "--strip-all", str(so)])
    assert b"__pyx_v_7pyfuse3_session" not in so.read_bytes()
    dist = next(pkg.parent.glob("pyfuse3-*.dist-info"))  # pyfuse3.__version__ reads it
    shutil.copytree(dist, site / dist.name)
    monkeypatch.setenv("PYTHONPATH", str(site))
    m = mount_factory("debug")
    assert not _init_reply_flags(m) & FUSE_AUTO_INVAL_DATA
    d = m.describe()
    assert d["auto_inval_data"] is False and d["mtime_granularity_s"] == 0, d
    pid = m.pid
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert str(so) in maps, "the daemon did not load the stripped copy"


@pytest.mark.fuse
def test_without_the_patches_the_mount_falls_back(mount_factory, monkeypatch):
    """What a stock pyfuse3 gives: auto_inval_data stays on (one warning), log mtimes
    are rounded down to 60 s so appends keep the cache, and the request loop uses
    fastloop's proxy."""
    monkeypatch.setenv(IGNORE, "1")
    m = mount_factory("debug")
    assert _init_reply_flags(m) & FUSE_AUTO_INVAL_DATA
    d = m.describe()
    assert d["auto_inval_data"] is True and d["mtime_granularity_s"] == 60, d
    assert d["pyfuse3"]["auto_inval_data_switch"] is False and d["pyfuse3"]["busy_poll"] is False
    assert d["pyfuse3"]["write_sync"] is False
    text = m.daemon_log()
    warnings = [ln for ln in text.splitlines() if " WARNING " in ln]
    assert len(warnings) == 1 and f"cannot turn off libfuse's auto_inval_data ({IGNORE} is set)" \
        in warnings[0], warnings
    assert "request loop: fastloop's proxy of trio" in text
    assert f"write requests: the async write handler ({IGNORE} is set)" in text
    os.mkdir(m.p("t"))
    log = m.p("t", "l")
    with open(log, "ab") as f:
        f.write(b"x" * 100_000)
    mtime = os.stat(log).st_mtime_ns
    assert mtime % 60_000_000_000 == 0, mtime  # rounded down to the minute
    assert mtime // 1_000_000 <= m.describe("t", "l")["last_append_ms"]


def _syscalls(strace_out: str) -> dict[str, int]:
    counts = {}
    for line in strace_out.splitlines():
        mt = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if mt:
            counts[mt.group(2)] = int(mt.group(1))
    return counts


@pytest.mark.fuse
@pytest.mark.parametrize("ignore", [False, True], ids=["busy-poll", "proxy"])
def test_the_request_loop_skips_the_event_loop(mount_factory, monkeypatch, tmp_path, ignore):
    """Under a stream of small writes the daemon finds most requests by poll(2), not by
    parking in trio's epoll: with the patched pyfuse3 (busy polling) and, as with a stock
    one, through fastloop's proxy. pyfuse3's own loop makes no poll at all and two
    epoll_waits per request (one to park until the fd is readable, one in the scheduler
    pass of its lock's yield); the cheaper wait leaves only the scheduler pass of the
    lock's hand-over between pyfuse3's two worker tasks. With write_sync (patches/0003)
    that goes too: a write is answered without a coroutine, and the loop reads the next
    request at once, so at most one request in 32 goes through the event loop (measured:
    about 190 epoll_waits for 3,000 writes, against about 3,170 without)."""
    if ignore:
        monkeypatch.setenv(IGNORE, "1")
    m = mount_factory()
    os.mkdir(m.p("t"))
    log = m.p("t", "l")
    out = tmp_path / "strace.txt"
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(out), "-p", str(m.pid),
                               "-e", "trace=poll,ppoll,epoll_wait,epoll_pwait"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # attached
        n = 3000
        run([PYTHON, "-c", "import os, sys\n"
             "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)\n"
             f"for i in range({n}): os.write(fd, b'%099d\\n' % i)\n", log], timeout=120)
    finally:
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
    assert os.stat(log).st_size == 100 * n
    calls = _syscalls(out.read_text())
    polls = calls.get("poll", 0) + calls.get("ppoll", 0)
    epolls = calls.get("epoll_wait", 0) + calls.get("epoll_pwait", 0)
    assert polls >= n // 2 and epolls <= 1.5 * n, (calls, out.read_text())
    if not ignore:  # write_sync: the next request is read at once, most of the time
        assert epolls <= n // 4, (calls, out.read_text())
