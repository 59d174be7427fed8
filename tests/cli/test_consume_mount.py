"""`logfs consume` and `logfs groups` given paths in a real mount (issue 12): the
mount path is mapped to its data directory, so the bytes are those `cat` reads
through the mount; `--follow` wakes on the writer's checkpoint write (inotify), not
on a timer, so a line written through the mount after a quiet spell reaches stdout
in milliseconds (GNU `tail -f` on FUSE polls once a second)."""

from __future__ import annotations

import json
import os
import time

import pytest

from consume_kit import lines_of, logfs
from fuse_helpers import run

pytestmark = pytest.mark.fuse


def test_consume_a_mount_path_is_what_cat_reads(mount_factory):
    m = mount_factory("segment.bytes=4096")
    os.mkdir(m.p("orders"))
    for name in ("eu", "us"):
        with open(m.p("orders", name), "ab") as f:
            for i in range(500):
                f.write(b'{"log":"%s","n":%d}\n' % (name.encode(), i))
                f.flush()
    cat = run(["cat", m.p("orders", "eu")]).stdout.encode()
    assert logfs("consume", m.p("orders", "eu")).stdout == cat
    assert logfs("consume", str(m.data / "orders" / "eu")).stdout == cat
    both = lines_of(logfs("consume", m.p("orders")).stdout)
    assert len(both) == 1000 and sorted(both) == sorted(lines_of(cat) + lines_of(
        run(["cat", m.p("orders", "us")]).stdout.encode()))
    logfs("consume", "--group", "g", "--max", "10", m.p("orders", "eu"))
    assert logfs("groups", m.p()).stdout == b"g\n"
    d = json.loads(logfs("groups", "describe", "g", m.p(), "--json").stdout)
    assert (d["logs"][0]["committed_record"], d["logs"][0]["lag_records"]) == (10, 490)


def test_follow_through_a_mount_wakes_in_milliseconds(mount_factory, followers):
    m = mount_factory()
    os.mkdir(m.p("t"))
    path = m.p("t", "l")
    with open(path, "ab") as f:
        f.write(b"start\n")
    follower = followers("--from", "latest", path)
    time.sleep(1.0)  # it is waiting
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    latencies = []
    try:
        for i in range(10):
            time.sleep(0.3)  # a quiet spell before each line, as on an idle log
            line = b"line %d\n" % i
            os.write(fd, line)
            written = time.monotonic()
            latencies.append(max(0.0, follower.wait_for(line, 5) - written))
    finally:
        os.close(fd)
    latencies.sort()
    print(f"consume --follow through a mount: median {latencies[5] * 1000:.2f} ms, "
          f"max {latencies[-1] * 1000:.2f} ms")
    # a 1 s poll (tail -f on FUSE) would give a median of about 500 ms
    assert latencies[5] < 0.05, latencies
    assert follower.data == b"".join(b"line %d\n" % i for i in range(10))
