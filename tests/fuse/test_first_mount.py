"""What the daemon says about the data directory it opens (issue 11, item 4).

Before: a directory that had never been mounted but held a subdirectory was
reported as "was not shut down cleanly: recovered, 0 recovery actions", a warning.
Now the first mount says it is the first, and only recovery that repaired something
is a warning.
"""

from __future__ import annotations

import os
import shutil

import pytest

from fuse_helpers import run

pytestmark = pytest.mark.fuse


def _opening_lines(m) -> list[str]:
    """The daemon log's lines from the last mount's opening (before "mounted ...")."""
    text = m.daemon_log()
    last = text.rsplit(" mounted ", 1)[0]
    return [ln for ln in last.splitlines() if "logfs.fusefs.mount:" in ln][-5:]


def _warnings(m) -> list[str]:
    return [ln for ln in m.daemon_log().splitlines() if " WARNING " in ln]


def test_first_mount_of_an_empty_directory(mount_factory):
    m = mount_factory()
    assert any("first mount of" in ln and "empty data directory" in ln
               for ln in _opening_lines(m)), m.daemon_log()
    assert _warnings(m) == []


def test_first_mount_of_a_directory_with_subdirectories(mount_factory):
    m = mount_factory(do_mount=False)
    (m.data / "logs").mkdir()  # what issue 11 found: a plain subdirectory
    m.mount()
    log = m.daemon_log()
    assert "not shut down cleanly" not in log, log
    assert "first mount of existing data directory" in log, log
    assert "0 logs in 1 topic checked, nothing to recover" in log, log
    assert _warnings(m) == [], log
    assert os.listdir(m.mnt) == ["logs"]  # it is a topic now


def test_first_mount_of_a_restored_backup(mount_factory):
    """Topics copied from another store (without its .logfs/): a first mount that
    checks every log, finds nothing to repair, and serves the data."""
    src = mount_factory(name="src")
    os.mkdir(src.p("orders"))
    run(f"printf 'a\\nb\\n' >> {src.p('orders', 'eu')}")
    src.umount()
    m = mount_factory(name="dst", do_mount=False)
    shutil.copytree(src.data / "orders", m.data / "orders")
    m.mount()
    log = m.daemon_log()
    assert "first mount of existing data directory" in log and "1 log in 1 topic" in log, log
    assert "nothing to recover" in log and _warnings(m) == [], log
    assert open(m.p("orders", "eu")).read() == "a\nb\n"


def test_clean_restart_is_no_first_mount(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    m.umount()
    m.mount()
    lines = _opening_lines(m)
    assert any("after a clean shutdown" in ln for ln in lines), lines
    assert not any("first mount" in ln for ln in lines[-2:]), lines
    assert _warnings(m) == []


def test_crash_with_nothing_to_recover_is_no_warning(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    run(f"echo x >> {m.p('t', 'l')} && sync")
    m.kill9()
    m.wait_unmounted(10)
    m.mount()
    log = m.daemon_log()
    assert "was not shut down cleanly: 1 log in 1 topic checked, nothing to recover" in log, log
    assert _warnings(m) == [] or all("dead mount" in w for w in _warnings(m)), _warnings(m)


def test_crash_with_something_to_recover_is_a_warning(mount_factory):
    m = mount_factory()
    os.mkdir(m.p("t"))
    run(f"echo x >> {m.p('t', 'l')}")
    m.kill9()
    m.wait_unmounted(10)
    seg = m.data / "t" / "l" / "00000000000000000000.log"
    with open(seg, "ab") as f:  # bytes no append acknowledged: recovery must cut them
        f.write(b"never acknowledged\n")
    m.mount()
    warn = [w for w in _warnings(m) if "dead mount" not in w]
    assert any("was not shut down cleanly" in w and "1 recovery action" in w for w in warn), warn
    assert any("recovery:" in w for w in warn), warn
    assert open(m.p("t", "l")).read() == "x\n"
