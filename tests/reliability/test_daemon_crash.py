"""Case 1 of issue 5: the mount daemon is killed with SIGKILL while producers append.

Each trial mounts DATA (the same DATA every time, so each remount recovers from the
previous kill as well), starts producers (tests/reliability/producer.py) that append
self-checking lines to three logs through the mount, some calling fsync after every
line or every few lines, kills the daemon at a random moment, and remounts. Then:

* every line whose write() returned is present (after a daemon crash the page cache
  survives, so logfs promises more than fsync: nothing acknowledged is lost), and in
  particular every line acknowledged by fsync;
* every line present is whole, carries a valid CRC and was written by a producer:
  no zeros, no garbage, no torn line, no duplicate, each producer's lines in order;
* `describe` records == `wc -l` through the mount == lines parsed;
* seeks by record and by time (through the exporter, `?record=` and `?since=`) land
  on the right line;
* the exporter (running across all the kills) serves the same bytes as the mount and
  as the segment files.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from exporter_helpers import segment_bytes, start_exporter, stop_process
from fuse_helpers import mounted, run

HERE = Path(__file__).resolve().parent
PRODUCER = str(HERE / "producer.py")
TRIALS = int(os.environ.get("LOGFS_CRASH_TRIALS", "20"))
TOPIC = "crash"
# (log, fsync every N lines: 0 = never)
PRODUCERS = [("l0", 1), ("l0", 0), ("l1", 7), ("l2", 0)]
LINE_RE = re.compile(rb"(\d+) (\d+) (\d+) (\d+) ([0-9a-f]{8}) ([a-z0-9]*)\n")


def parse_log(raw: bytes, name: str) -> list[tuple[int, int, int, int, int]]:
    """[(trial, producer, seq, ms, start offset)]; fails on any byte that is not part
    of a whole, valid line."""
    out = []
    pos = 0
    while pos < len(raw):
        m = LINE_RE.match(raw, pos)
        assert m, f"{name}: bytes at offset {pos} are not a whole producer line: {raw[pos:pos + 80]!r}"
        payload = m.group(6)
        assert int(m.group(5), 16) == zlib.crc32(payload), f"{name}: bad CRC in the line at {pos}"
        out.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), pos))
        pos = m.end()
    return out


def http_get(exp, path: str) -> bytes:
    status, _h, body = exp.get(path)
    assert status in (200, 206), f"GET {path}: {status} {body[:200]!r}"
    return body


def test_sigkill_during_appends(mount_factory, tmp_path, figures):
    rnd = random.Random(20261125)
    data, mnt = tmp_path / "data", tmp_path / "mnt"
    m = mount_factory(data, mnt, "segment.bytes=65536", "index.interval.bytes=1024")
    os.mkdir(m.p(TOPIC))
    exp = start_exporter(data, tmp_path)
    acked: dict[tuple[int, int], dict] = {}
    totals = {"trials": 0, "lines_checked": 0, "bytes_checked": 0, "fsynced_lines": 0,
              "record_seeks": 0, "time_seeks": 0, "recovery_actions": 0, "quarantined_bytes": 0}
    try:
        for trial in range(TRIALS):
            procs = []
            try:
                for i, (name, every) in enumerate(PRODUCERS):
                    p = subprocess.Popen([sys.executable, PRODUCER, m.p(TOPIC, name), str(trial), str(i),
                                          str(every), str(trial * 100 + i)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
                    procs.append(p)
                for p in procs:
                    # unbuffered: a report printed early must stay for communicate()
                    assert p.stdout.readline().strip() == b"STARTED", p.stderr.read()
                time.sleep(rnd.uniform(0.05, 0.6))
                m.kill9()
                for i, p in enumerate(procs):
                    out, err = p.communicate(timeout=30)
                    out, err = out.decode(), err.decode(errors="replace")
                    lines_out = out.strip().splitlines()
                    assert lines_out, (f"producer {i} printed no report (exit {p.returncode}): "
                                       f"stderr {err[-2000:]!r}")
                    report = json.loads(lines_out[-1])
                    assert report["error"], f"producer {i} stopped without an error: {report}"
                    # the write that failed must have failed because the daemon died
                    # (ECONNABORTED, ENOTCONN), not earlier for a reason of its own
                    assert report["error"].split()[0] in {str(errno.ECONNABORTED), str(errno.ENOTCONN), "short"}, \
                        f"producer {i} stopped before the kill: {report}"
                    acked[(trial, i)] = report
            finally:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
            m.wait_unmounted(5)
            m.mount()  # cleans up a dead mount that auto_unmount missed, recovers DATA
            log_text = m.daemon_log()
            # the core logs each recovery action once (logfs.core.recovery); the mount
            # adds only a one-line summary, which this pattern does not match
            totals["recovery_actions"] = log_text.count("logfs.core.recovery: recovery ")
            totals["trials"] += 1
            check_everything(m, exp, acked, trial, totals)
        quarantine = sum(f.stat().st_size for f in (data / TOPIC).rglob("quarantine-*"))
        totals["quarantined_bytes"] = quarantine
    finally:
        stop_process(exp.proc)
        if mounted(str(mnt)):
            m.umount()
    figures.update(totals)


def check_everything(m, exp, acked: dict, trial: int, totals: dict) -> None:
    seen: dict[tuple[int, int], list[int]] = {}
    for name in sorted({n for n, _e in PRODUCERS}):
        path = m.p(TOPIC, name)
        with open(path, "rb") as f:
            raw = f.read()
        on_disk = segment_bytes(m.data, TOPIC, name)
        assert raw == on_disk, f"trial {trial}: {name} through the mount differs from its segment files"
        served = http_get(exp, f"/{TOPIC}/{name}")
        assert served == raw, f"trial {trial}: the exporter serves {len(served)} bytes of {name}, " \
                              f"the mount {len(raw)}"
        lines = parse_log(raw, name)
        keys = [(t, p, s) for t, p, s, _ms, _o in lines]
        assert len(set(keys)) == len(keys), f"trial {trial}: duplicate lines in {name}"
        for t, p, s, _ms, _o in lines:
            seen.setdefault((t, p), []).append(s)
        # records: describe, wc -l, parsed lines
        wc = int(run(["wc", "-l", path]).stdout.split()[0])
        desc = m.describe(TOPIC, name)
        assert desc["records"] == wc == len(lines), \
            f"trial {trial}: {name}: describe records {desc['records']}, wc -l {wc}, lines {len(lines)}"
        assert desc["end_offset"] == len(raw)
        # seeks by record through the exporter
        rnd = random.Random(trial)
        for n in rnd.sample(range(len(lines)), min(5, len(lines))) + [len(lines)]:
            body = http_get(exp, f"/{TOPIC}/{name}?record={n}")
            want = raw[lines[n][4]:] if n < len(lines) else b""
            assert body == want, f"trial {trial}: {name}?record={n} starts at the wrong line"
            totals["record_seeks"] += 1
        # seeks by time: never later than the first line whose producer stamp is >= T
        # (the daemon appended it at or after that stamp); always at a line start
        starts = {o for *_x, o in lines}
        for _ in range(5):
            if not lines:
                break
            t_ms = rnd.choice(lines)[3] + rnd.choice([0, 1, 50])
            first = next((o for *_x, ms, o in lines if ms >= t_ms), len(raw))
            body = http_get(exp, f"/{TOPIC}/{name}?since={t_ms}")
            at = len(raw) - len(body)
            assert body == raw[at:], f"trial {trial}: {name}?since={t_ms} is not a suffix of the log"
            assert at <= first, f"trial {trial}: {name}?since={t_ms} starts at {at}, skipping the line at {first}"
            assert at in starts or at == len(raw), f"trial {trial}: {name}?since={t_ms} starts mid-line at {at}"
            totals["time_seeks"] += 1
        totals["bytes_checked"] += len(raw) * 3  # mount, segment files, exporter
        totals["lines_checked"] += len(lines)
    # each producer: its lines are 0..k in order, with k >= every acknowledged write
    for (t, p), report in acked.items():
        seqs = seen.get((t, p), [])
        assert seqs == list(range(len(seqs))), f"producer {p} of trial {t}: lines out of order or missing"
        assert len(seqs) - 1 >= report["written"], (
            f"producer {p} of trial {t}: write() of line {report['written']} returned, but only "
            f"{len(seqs)} lines survived the kill")
        assert len(seqs) - 1 >= report["synced"], f"producer {p} of trial {t}: lost fsynced lines"
        if t == trial:
            totals["fsynced_lines"] += report["synced"] + 1
