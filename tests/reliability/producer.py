"""A producer for the daemon-crash trials: appends self-checking lines to a log
through the mount until a write fails (the daemon was killed), then prints what it
knows as one JSON line: the last sequence number whose write() returned, and the
last one acknowledged by fsync.

Usage: python producer.py PATH TRIAL PRODUCER FSYNC_EVERY SEED

Each line is ``<trial> <producer> <seq> <ms> <crc32 of the payload> <payload>\\n``;
``ms`` is taken just before the write, so the daemon's append time is at or after it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import zlib


def make_line(trial: int, producer: int, seq: int, rnd: random.Random) -> bytes:
    n = rnd.choice([10, 60, 200, 900, 3000, 7000])
    payload = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))
    ms = time.time_ns() // 1_000_000
    return b"%d %d %d %d %08x %s\n" % (trial, producer, seq, ms, zlib.crc32(payload), payload)


def main() -> None:
    path, trial, producer, fsync_every, seed = sys.argv[1], *map(int, sys.argv[2:6])
    rnd = random.Random(seed)
    written = synced = -1
    error = None
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    print("STARTED", flush=True)
    seq = 0
    try:
        while True:
            line = make_line(trial, producer, seq, rnd)
            n = os.write(fd, line)
            if n != len(line):
                error = f"short write {n} of {len(line)}"
                break
            written = seq
            if fsync_every and seq % fsync_every == 0:
                os.fsync(fd)
                synced = seq
            seq += 1
    except OSError as exc:
        error = f"{exc.errno} {exc.strerror}"
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    print(json.dumps({"written": written, "synced": synced, "error": error}), flush=True)


if __name__ == "__main__":
    main()
