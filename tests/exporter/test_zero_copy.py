"""Zero copy, proven from the outside: the exporter runs under strace, and the bodies
of a whole-log GET, a Range GET and a follow stream are carried by sendfile calls
whose input is a segment file, while not one read/pread64 of a segment file happens
for them."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

from exporter_helpers import StreamReader, segment_bytes, start_exporter, stop_process

SYSCALL_RE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s*(\d+\.\d+) (\w+)\((.*)\)\s+=\s+(-?\d+)")
SEGMENT_FD_RE = re.compile(r"^\d+<([^>]*/\d{20}\.log)>")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (Debian package strace)")
def test_sendfile_carries_the_body_and_no_segment_byte_is_read(store, data_dir, tmp_path, processes):
    store.create_topic("big")
    log = store.create_log("big", "log")
    store.set_log_config("big", "log", {"segment.bytes": str(1 << 20)})
    line = b"0123456789abcdef" * 63 + b"zero-copy\n"
    for _ in range(6 * 1024):  # 6 MiB over 6+ segments
        log.append(line)
    expect = segment_bytes(data_dir, "big", "log")
    assert log.segment_count >= 6
    trace = tmp_path / "strace.txt"
    exporter = start_exporter(data_dir, tmp_path, prefix=["strace", "-f", "-y", "-ttt", "-qq",
                                                          "-e", "trace=sendfile,read,pread64",
                                                          "-o", str(trace)])
    try:
        # opening the log (first request) may read the active segment's tail to learn
        # its state; what follows is the body request alone
        assert exporter.request("HEAD", "/big/log")[0] == 200
        mark = time.time()
        out = subprocess.run(["curl", "-sS", "--fail", f"{exporter.url}/big/log"], capture_output=True,
                             timeout=30, check=True).stdout
        assert out == expect
        status, _h, part = exporter.get("/big/log", {"Range": "bytes=1000000-3100000"})
        assert status == 206 and part == expect[1000000:3100001]
        # a follow stream (chunked) from the end, while the writer appends 1 MiB
        # (offset=END: ?last=0 would count the lines after the last index entry, a
        # short read that belongs to the seek, not to the body)
        follower = subprocess.Popen(["curl", "-sSN", f"{exporter.url}/big/log?follow=1&offset={log.end_offset}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        processes.append(follower)
        reader = StreamReader(follower.stdout.read1)
        exporter.wait_metric("logfs_exporter_streams_open", lambda v: v == 1)
        appended = b""
        for i in range(1024):
            tagged = line[:-10] + f"{i:08d}\n".encode()
            log.append(tagged)
            appended += tagged
        reader.wait_for(appended[-30:], 10)
        follower.kill()
        follower.wait(timeout=5)
        assert reader.data == appended
        done = time.time()
    finally:
        stop_process(exporter.proc)
    sent = 0
    calls = 0
    segment_reads = []
    for raw in trace.read_text().splitlines():
        m = SYSCALL_RE.match(raw)
        if not m:
            continue
        _pid, ts, name, args, result = m.groups()
        if not (mark <= float(ts) <= done + 1):
            continue
        if name == "sendfile":
            in_fd = args.split(", ")[1]
            if SEGMENT_FD_RE.match(in_fd) and int(result) > 0:
                sent += int(result)
                calls += 1
        elif name in ("read", "pread64") and SEGMENT_FD_RE.match(args):
            segment_reads.append(raw)
    print(f"zero copy: {sent} body bytes in {calls} sendfile calls, "
          f"{len(segment_reads)} reads of segment files")
    assert not segment_reads, segment_reads[:5]
    assert sent == len(expect) + len(part) + len(appended), (sent, len(expect) + len(part) + len(appended))
