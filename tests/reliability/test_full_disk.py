"""Case 3 of issue 5: a full disk.

DATA lives on a small tmpfs the test mounts itself, with a ballast file taking part
of it. Producers append through the mount until the disk is full:

* writers get ENOSPC (not EIO, not a dead mount), including on a log created while
  the disk is full and on rolls that cannot create the next segment;
* the daemon stays up and keeps serving reads, listings, stat and describe;
* nothing written before is damaged: every log holds exactly the bytes whose write()
  returned, in order;
* once the ballast is deleted, appends succeed again on every log, at the right offsets;
* the unmount is clean and the next mount needs no recovery.
"""

from __future__ import annotations

import errno
import os
import signal

import pytest

from exporter_helpers import segment_bytes
from fuse_helpers import _alive

TOPIC = "full"
MIB = 1 << 20


def fill(path: str, sizes: list[int], tag: bytes, limit: int = 10_000) -> tuple[bytes, int]:
    """Append lines to *path* until ENOSPC; (bytes whose write() returned, errno)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    done = bytearray()
    try:
        for i in range(limit):
            n = sizes[i % len(sizes)]
            line = tag + b" %06d " % i + b"x" * max(0, n - len(tag) - 9) + b"\n"
            try:
                w = os.write(fd, line)
            except OSError as exc:
                return bytes(done), exc.errno
            assert w == len(line), f"short write {w} of {len(line)} to {path}"
            done += line
    finally:
        try:
            os.close(fd)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, f"close of {path}: {exc}"
    raise AssertionError(f"{path}: {limit} writes and the disk never filled")


def test_full_disk(tmpfs, mount_factory, tmp_path, figures):
    disk = tmpfs(6 * MIB)
    ballast = disk / "ballast"
    ballast.write_bytes(b"\0" * (2 * MIB))
    m = mount_factory(disk / "data", tmp_path / "mnt", "segment.bytes=262144", "index.interval.bytes=4096")
    os.mkdir(m.p(TOPIC))
    content: dict[str, bytes] = {}
    for name in ("big", "aligned", "small", "tiny"):
        open(m.p(TOPIC, name), "wb").close()

    # fill the disk through three logs, with small and large writes
    got, err = fill(m.p(TOPIC, "big"), [60_000, 130_000, 5_000], b"big")
    content["big"] = got
    assert err == errno.ENOSPC, f"a write to a full disk failed with {errno.errorcode.get(err)}, not ENOSPC"
    # page-aligned whole-page writes are never refused early: they fill the disk for
    # real (through rolls: segment.bytes is 256 KiB)
    for name, sizes in (("aligned", [4096]), ("small", [100, 37, 900]), ("tiny", [1, 10])):
        got, err = fill(m.p(TOPIC, name), sizes, name.encode())
        content[name] = got
        assert err == errno.ENOSPC, f"{name}: {errno.errorcode.get(err)} instead of ENOSPC"
    # a log created while the disk is full: refused or empty, never a dead daemon
    try:
        got, err = fill(m.p(TOPIC, "late"), [200], b"late")
        content["late"] = got
        assert err == errno.ENOSPC
        figures["late_log"] = f"created, {len(got)} bytes taken"
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, f"creating a log on a full disk: {exc}"
        figures["late_log"] = "refused with ENOSPC"
        assert "late" not in os.listdir(m.p(TOPIC)), "a log whose create failed is listed"
    assert _alive(m.pid), "the daemon died when the disk filled"

    # the daemon keeps serving: reads, listings, stat, describe
    for name, want in content.items():
        with open(m.p(TOPIC, name), "rb") as f:
            assert f.read() == want, f"{name}: the log does not hold exactly what was acknowledged"
        assert os.stat(m.p(TOPIC, name)).st_size == len(want)
        assert segment_bytes(m.data, TOPIC, name) == want, f"{name}: segment files differ"
        assert m.describe(TOPIC, name)["end_offset"] == len(want)
    assert sorted(os.listdir(m.p(TOPIC))) == sorted(content)
    full_bytes = sum(len(v) for v in content.values())

    # an unmount on the full disk flushes and stops without an error (the clean marker
    # may not fit: then the next mount verifies every log, and cuts nothing)
    m.umount()
    m.mount()
    assert not list(m.data.rglob("quarantine-*")), "a mount after a full-disk unmount cut data"
    for name, want in content.items():
        with open(m.p(TOPIC, name), "rb") as f:
            assert f.read() == want, f"{name}: changed by an unmount and mount on the full disk"

    # free space: every log takes appends again, at its end
    ballast.unlink()
    for name in list(content):
        extra = b"after the disk was freed: %s\n" % name.encode()
        with open(m.p(TOPIC, name), "ab") as f:
            f.write(extra)
            f.flush()
            os.fsync(f.fileno())
        content[name] += extra
        with open(m.p(TOPIC, name), "rb") as f:
            assert f.read() == content[name], f"{name}: append after freeing space went wrong"
    assert _alive(m.pid)
    m.umount()
    assert (m.data / ".logfs" / "clean-shutdown").exists(), "the unmount after a full disk was not clean"
    m.mount()
    for name, want in content.items():
        with open(m.p(TOPIC, name), "rb") as f:
            assert f.read() == want
    log_text = m.daemon_log()
    last_mount = log_text[log_text.rfind("INFO logfs.fusefs.mount: mounted"):]
    assert "not shut down cleanly" not in last_mount, "the mount after space was freed needed recovery"
    enospc_lines = [ln for ln in log_text.splitlines() if "ENOSPC" in ln]
    assert any("No space left" in ln for ln in enospc_lines), \
        "the disk never filled for real (no ENOSPC from the backing filesystem in the daemon's log)"
    figures.update(disk_bytes=6 * MIB, bytes_acknowledged_when_full=full_bytes,
                   enospc_log_lines=len(enospc_lines))
