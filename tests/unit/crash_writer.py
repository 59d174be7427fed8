"""A writer process for crash tests: appends a planned byte stream to one log,
fsyncs once a given number of bytes is in, prints ``DONE {json}`` and then waits to
be killed with SIGKILL (it never closes the store).

Usage: python crash_writer.py SPEC.json   (see storekit.run_writer_and_kill)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from logfs.core import ManualClock, open_log_store


def snapshot_metadata(data: str, topic: str, name: str, dest: str) -> None:
    """Copy every file of the log but the segments' data (indexes, checkpoint, meta):
    what a power loss right after this fsync would leave of them on disk."""
    src = os.path.join(data, topic, name)
    os.makedirs(dest, exist_ok=True)
    for entry in os.listdir(src):
        if not entry.endswith(".log"):
            shutil.copyfile(os.path.join(src, entry), os.path.join(dest, entry))


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    content = spec["content"].encode("latin-1")
    clock = ManualClock(spec.get("clock_start_ms", 1_700_000_000_000))
    step = spec.get("clock_step_ms", 1)
    store = open_log_store(spec["data"], defaults=spec.get("config", {}), clock=clock)
    topic, name = spec["topic"], spec["log"]
    if topic not in store.topics():
        store.create_topic(topic)
    log = store.log(topic, name) if store.has_log(topic, name) else store.create_log(topic, name)
    fsync_after = spec.get("fsync_after")
    fsynced = None
    pos = log.end_offset
    for size in spec["chunks"]:
        chunk = content[pos - spec.get("content_base", 0):][:size]
        at = log.append(chunk)
        assert at == pos, (at, pos)
        pos += len(chunk)
        clock.advance(step)
        if fsync_after is not None and fsynced is None and pos >= fsync_after:
            log.fsync()
            fsynced = pos
            if spec.get("snapshot_dir"):
                snapshot_metadata(spec["data"], topic, name, spec["snapshot_dir"])
    print("DONE " + json.dumps({"end": log.end_offset, "fsynced": fsynced,
                                 "records": log.records}), flush=True)
    while True:  # wait for SIGKILL: never close
        time.sleep(60)


if __name__ == "__main__":
    main()
