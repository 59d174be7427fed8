"""The writer half of test_two_processes: appends a deterministic stream to one log
with small segments and retention, never more than ``lead`` bytes ahead of the
reader's published position, running maintenance (retention) as it goes.

Usage: python follow_writer.py DATA PROGRESS_FILE TOTAL LEAD
Prints READY once the log exists, DONE when everything is appended and fsynced.
"""

from __future__ import annotations

import os
import sys
import time

from logfs.core import open_log_store

from storekit import chunk_plan, deterministic_stream

TOPIC, LOG = "follow", "me"


def main() -> None:
    data, progress_path, total, lead = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    content = deterministic_stream(total)
    store = open_log_store(data, defaults={"segment.bytes": "32768", "index.interval.bytes": "1024",
                                           "retention.bytes": "262144"})
    store.create_topic(TOPIC)
    log = store.create_log(TOPIC, LOG)
    print("READY", flush=True)
    progress_fd = os.open(progress_path, os.O_RDONLY)
    pos = 0
    deadline = time.monotonic() + 60
    for i, size in enumerate(chunk_plan(total, seed=3)):
        while pos - int(os.pread(progress_fd, 20, 0) or b"0") > lead:
            if time.monotonic() > deadline:
                print(f"STUCK at {pos}: the reader stopped following", flush=True)
                sys.exit(2)
            time.sleep(0.0005)
        at = log.append(content[pos:pos + size])
        assert at == pos
        pos += size
        if i % 50 == 0:
            store.run_maintenance()
    store.run_maintenance()
    log.fsync()
    print(f"DONE {log.end_offset} {log.start_offset} {log.segment_count}", flush=True)
    store.close()


if __name__ == "__main__":
    main()
