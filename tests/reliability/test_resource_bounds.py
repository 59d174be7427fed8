"""Case 6 of issue 5: resource bounds of the mount daemon.

1,000 logs in 10 topics, 20 of them with 300 segments each, are written with the
core and closed cleanly. Then, through a real mount: every log is listed, stat'ed
and read whole (and checked byte for byte), the 6,000-segment logs once more from
random offsets. Meanwhile the daemon's open descriptors (/proc/PID/fd) are sampled;
at the end its peak memory (VmHWM). Bounds:

* descriptors: at most FD_BOUND = 2 x 256 + 64, whatever the number of logs and
  segments. The core's resource cache holds at most 256 files and mappings
  (docs/design.md), each at most 2 descriptors (an index file's own and the dup that
  Python's mmap keeps); the rest is the daemon's own (FUSE, control socket, log file,
  trio's wakeup pipes, worker threads' reads).
* memory: peak RSS under 100 MiB;
* `logfs mount` returns in under 2 s after a clean shutdown (twice: after the core
  closed the store, and after a `logfs umount` of the mount that read everything).
"""

from __future__ import annotations

import os
import random
import threading
import time

from logfs.core import ManualClock, open_log_store

TOPICS = 10
LOGS = 1000
BIG_LOGS = 20
BIG_SEGMENTS = 300
SEGMENT_BYTES = 1000
# the core's resource cache holds 256 entries; an entry is a segment (1 descriptor), an
# index (its descriptor plus the one Python's mmap keeps, a dup) or a checkpoint mapping
# (the mmap's dup): at most 2 descriptors each. Plus the daemon's own.
FD_BOUND = 2 * 256 + 64
RSS_BOUND_KIB = 100 * 1024
MOUNT_S = 2.0


def log_content(i: int) -> bytes:
    if i < BIG_LOGS:
        line = b"big log %04d: %s\n" % (i, b"z" * 60)
        n = BIG_SEGMENTS * SEGMENT_BYTES // len(line)
        return b"".join(b"%06d " % k + line for k in range(n))
    return b"".join(b"log %04d record %d\n" % (i, k) for k in range(1 + i % 5))


def names(i: int) -> tuple[str, str]:
    return f"topic{i % TOPICS:02d}", f"log{i:04d}"


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def test_thousand_logs(tmpfs, mount_factory, tmp_path, figures):
    # DATA on a tmpfs when we may mount one: building 25,000 files costs thousands of
    # fsyncs on a disk, none on a tmpfs; what is measured is the daemon, not the disk
    base = tmpfs(512 << 20) if os.geteuid() == 0 else tmp_path
    data, mnt = base / "data", tmp_path / "mnt"
    data.mkdir()
    started = time.monotonic()
    with open_log_store(str(data), defaults={"segment.bytes": str(SEGMENT_BYTES),
                                             "index.interval.bytes": "512"},
                        clock=ManualClock(1_790_000_000_000)) as store:
        for t in range(TOPICS):
            store.create_topic(f"topic{t:02d}")
        for i in range(LOGS):
            log = store.create_log(*names(i))
            content = log_content(i)
            step = 999 if i < BIG_LOGS else len(content)
            for a in range(0, len(content), step):
                log.append(content[a:a + step])
    build_s = time.monotonic() - started
    segments = sum(1 for _ in data.rglob("*.log"))
    assert segments >= BIG_LOGS * BIG_SEGMENTS

    m = mount_factory(data, mnt, do_mount=False)
    t0 = time.monotonic()
    m.mount()
    mount_s = time.monotonic() - t0
    assert mount_s < MOUNT_S, f"mount after a clean shutdown took {mount_s:.2f} s"
    pid = m.pid

    peak_fds = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak_fds[0] = max(peak_fds[0], len(os.listdir(f"/proc/{pid}/fd")))
            except OSError:
                pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    checked = 0
    try:
        assert sorted(os.listdir(mnt)) == [f"topic{t:02d}" for t in range(TOPICS)]
        listed = sum(len(os.listdir(mnt / f"topic{t:02d}")) for t in range(TOPICS))
        assert listed == LOGS
        for i in range(LOGS):
            topic, name = names(i)
            path = mnt / topic / name
            want = log_content(i)
            assert os.stat(path).st_size == len(want)
            with open(path, "rb") as f:
                assert f.read() == want, f"{topic}/{name} read back wrong"
            checked += len(want)
        rnd = random.Random(6)
        for i in range(BIG_LOGS):
            topic, name = names(i)
            want = log_content(i)
            fd = os.open(mnt / topic / name, os.O_RDONLY)
            try:
                for _ in range(50):
                    at = rnd.randrange(len(want))
                    assert os.pread(fd, 3000, at) == want[at:at + 3000]
                    checked += min(3000, len(want) - at)
            finally:
                os.close(fd)
    finally:
        stop.set()
        sampler.join()
    hwm = status_kib(pid, "VmHWM")
    rss = status_kib(pid, "VmRSS")
    assert peak_fds[0] <= FD_BOUND, f"the daemon held {peak_fds[0]} descriptors (bound {FD_BOUND})"
    assert hwm < RSS_BOUND_KIB, f"the daemon's peak RSS was {hwm} KiB (bound {RSS_BOUND_KIB} KiB)"

    m.umount()
    t0 = time.monotonic()
    m.mount()
    remount_s = time.monotonic() - t0
    assert remount_s < MOUNT_S, f"remount after a clean unmount took {remount_s:.2f} s"
    with open(mnt / "topic05" / "log0005", "rb") as f:
        assert f.read() == log_content(5)
    files = sum(1 for _ in data.rglob("*"))
    figures.update(logs=LOGS, segments=segments, files=files, bytes_read_and_checked=checked,
                   max_daemon_fds=peak_fds[0], fd_bound=FD_BOUND, max_peak_rss_kib=hwm,
                   rss_after_kib=rss, max_mount_s=round(max(mount_s, remount_s), 3),
                   build_s=round(build_s, 1))
