"""A writer that dies by SIGKILL at a chosen point inside the core's append path,
for the tests of what recovery keeps of an append that was never acknowledged.

Usage: python kill_inside_append.py DATA WHERE TENTATIVE

It appends the lines of LINES one by one, then PARTIAL (the first part of a write
the kernel split at a page boundary, as the mount appends it: tentative, or not),
which fills the segment to exactly segment.bytes, and kills itself with SIGKILL:

* WHERE=after-data: once the segment holds PARTIAL's bytes (and their offset-index
  entry), before the live tail mark says so: the daemon died inside the append;
* WHERE=after-append: once the append returned (the mount would then reply to the
  kernel, which would send the rest of the write);
* WHERE=before-rest: inside the append of REST (the rest of the write), before its
  bytes reach a segment: after any roll that append would make;
* WHERE=torn-live: in the middle of PARTIAL's store into the checkpoint's live tail
  (one pwrite, which a power loss can leave half on disk): the second half of
  the bytes it changed are put back as they were, through the file, then SIGKILL;
* WHERE=inside-roll: PARTIAL is appended (not tentative; its last 100 bytes apart, so
  they lie past the last index entry), then REST, which rolls: SIGKILL once the next
  segment exists, before the full one is sealed;
* WHERE=more: reopen the store (recovering it), append MORE, SIGKILL.

Nothing is stubbed: the child's real segment, index and checkpoint files are what
a daemon killed at that point leaves in the page cache.
"""

from __future__ import annotations

import os
import signal
import sys

from logfs.core import checkpoint as checkpoint_module
from logfs.core import open_log_store
from logfs.core import segment as segment_module

TOPIC, LOG = "t", "l"
LINES = [b"line %04d %s\n" % (i, b"x" * (37 * i % 300)) for i in range(40)]
PARTIAL = b"the first part of a line whose rest never came " + b"y" * 1500
REST = b" and its rest\n"
MORE = [b"more %d\n" % i for i in range(300)]
SEGMENT_BYTES = sum(map(len, LINES)) + len(PARTIAL)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data, where, tentative = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    os.makedirs(data, exist_ok=True)
    store = open_log_store(data, defaults={"index.interval.bytes": "512",
                                           "segment.bytes": str(SEGMENT_BYTES)})
    if where == "more":
        log = store.log(TOPIC, LOG)
        for line in MORE:
            log.append(line)
        die()
    store.create_topic(TOPIC)
    log = store.create_log(TOPIC, LOG)
    for line in LINES:
        log.append(line)
    real = segment_module.Segment.append
    if where == "after-data":
        def append_then_die(self, *args):
            real(self, *args)
            die()
        segment_module.Segment.append = append_then_die  # type: ignore[method-assign]
    if where == "torn-live":
        real_write_live = checkpoint_module.Checkpoint.write_live

        def write_live_torn(self, *args, **kwargs):
            with open(self.path, "rb") as f:
                before = f.read()
            real_write_live(self, *args, **kwargs)
            with open(self.path, "rb") as f:
                after = f.read()
            changed = [i for i in range(len(before)) if before[i] != after[i]]
            half = changed[(len(changed) + 1) // 2]
            fd = os.open(self.path, os.O_WRONLY)
            os.pwrite(fd, before[half:changed[-1] + 1], half)  # same page cache as the mapping
            die()
        checkpoint_module.Checkpoint.write_live = write_live_torn  # type: ignore[method-assign]
    if where == "inside-roll":  # in two appends: the last 100 bytes past any index entry
        log.append(PARTIAL[:-100])
        log.append(PARTIAL[-100:])
    else:
        log.append(PARTIAL, tentative=tentative)
    if where == "inside-roll":
        segment_module.Segment.seal = lambda *_args: die()  # type: ignore[method-assign]
        log.append(REST)
    if where == "before-rest":
        segment_module.Segment.append = lambda *_args: die()  # type: ignore[method-assign]
        log.append(REST)
    die()


if __name__ == "__main__":
    main()
