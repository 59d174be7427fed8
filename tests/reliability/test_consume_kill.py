"""`logfs consume --group` killed with SIGKILL in a loop while a producer appends
through a real mount (issue 12, part 2): across all the runs no record is ever
skipped, and what a run re-reads of the one before is bounded by the uncommitted
window (``--commit-every``).

One producer process writes numbered lines of varied length through the mount, one
``write()`` each, the whole time. Each trial starts ``logfs consume --group g
--follow`` on the mount's log with its stdout to a file, lets it run for a random
moment (catching up, or following the producer) and kills it with SIGKILL: no last
commit, no chance to clean up. A last run without ``--follow`` after the producer
stopped reads to the end. Then, with run k printing records ``[s_k, e_k)`` (its
last line may be cut by the kill: that record was not written, and is not counted):

* every run prints a gap-free run of records in order, starting at record 0 for the
  first and ending at the producer's last line for the last;
* ``s_{k+1} <= e_k``: no run skips anything its predecessor had not written;
* ``e_k - s_{k+1} <= commit_every``: at most the uncommitted window is read twice.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from fuse_helpers import LOGFS

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

TRIALS = int(os.environ.get("LOGFS_CONSUME_KILL_TRIALS", "25"))
WINDOW = 300  # --commit-every

PRODUCER = r"""
import os, random, sys, time
path, stop = sys.argv[1], sys.argv[2]
rnd = random.Random(5)
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
seq = 0
print("started", flush=True)
while not os.path.exists(stop):
    for _ in range(50):
        os.write(fd, b"%d %s\n" % (seq, b"x" * rnd.choice((0, 3, 30, 200, 1500))))
        seq += 1
    time.sleep(0.001)
os.close(fd)
print(seq, flush=True)
"""


def whole_records(raw: bytes, run: int) -> list[int]:
    """The record numbers a run printed (a line cut by the kill dropped); they must
    follow each other without a gap."""
    end = raw.rfind(b"\n") + 1
    seqs = [int(line.split(b" ", 1)[0]) for line in raw[:end].splitlines()]
    for a, b in zip(seqs, seqs[1:]):
        assert b == a + 1, f"run {run} jumped from record {a} to {b}"
    return seqs


def test_sigkill_in_a_loop_never_skips_and_rereads_at_most_the_window(mount_factory, tmp_path, figures):
    m = mount_factory(tmp_path / "data", tmp_path / "mnt", "segment.bytes=262144")
    os.mkdir(m.p("t"))
    log = m.p("t", "l")
    stop = tmp_path / "stop-producer"
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, log, str(stop)], stdout=subprocess.PIPE,
                                text=True)
    runs: list[list[int]] = []
    rnd = random.Random(12)
    try:
        assert producer.stdout.readline().strip() == "started"
        for trial in range(TRIALS):
            out = tmp_path / f"run{trial}.out"
            with open(out, "wb") as f:
                p = subprocess.Popen([LOGFS, "consume", "--group", "g", "--follow", "--commit-every",
                                      str(WINDOW), log], stdout=f, stderr=subprocess.PIPE)
            try:
                time.sleep(rnd.choice((0.05, 0.15, 0.3, 0.6, 1.0)))
                assert p.poll() is None, p.stderr.read()
            finally:
                p.kill()
                p.wait()
                p.stderr.close()
            runs.append(whole_records(out.read_bytes(), trial))
    finally:
        stop.touch()
        last_seq = int(producer.communicate(timeout=60)[0].strip())
    final = subprocess.run([LOGFS, "consume", "--group", "g", log], capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr
    runs.append(whole_records(final.stdout, len(runs)))

    printed = [r for r in runs if r]
    assert printed[0][0] == 0, "the first run did not start at record 0"
    assert printed[-1][-1] == last_seq - 1, "the last run did not reach the producer's last line"
    reread = []
    for k, (before, after) in enumerate(zip(printed, printed[1:])):
        assert after[0] <= before[-1] + 1, f"run {k + 1} skipped records {before[-1] + 1}..{after[0] - 1}"
        again = before[-1] + 1 - after[0]
        assert 0 <= again <= WINDOW, f"run {k + 1} re-read {again} records (window {WINDOW})"
        reread.append(again)
    figures.update(trials=TRIALS, records=last_seq, max_reread=max(reread or [0]),
                   reread_total=sum(reread))
    print(f"{TRIALS} consumers killed while {last_seq:,} records were produced: re-reads "
          f"{sorted(reread)} (window {WINDOW})")
