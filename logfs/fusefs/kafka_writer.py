"""The Kafka listener's writer inside a mount (``-o kafka=HOST:PORT``).

Records produced over Kafka are appended by the daemon itself, not through the kernel,
so the kernel's cached size and its cached last page of the log would be stale. After
the append, the daemon stores the appended bytes into the kernel's page cache at the
old end (``pyfuse3.notify_store``, FUSE_NOTIFY_STORE), which also extends the kernel's
size, from a worker thread, before the producer is acknowledged. Then ``stat``, ``cat``
and an ``echo >>`` through the mount see the new end at once, and the log's earlier
pages stay cached.

Why not an invalidation: a getattr reply with a size the kernel did not expect drops
every cached page of the file (the kernel does that unless FUSE_CAP_EXPLICIT_INVAL_DATA
was agreed at INIT, which pyfuse3 cannot ask for), so invalidating from the old end
would cost the next reader a re-read of the whole log (measured on a 256 MiB log: a
4 KiB append, then a full read, 176 ms with an invalidation from the old end, 40 ms
after a store; docs/fuse.md).

A write through the mount that the kernel issued at the old size in the instant between
the append and the store is refused as any write not at the end is (EPERM, one line in
the daemon's log); nothing is lost or interleaved.
"""

from __future__ import annotations

import logging

import pyfuse3
import trio

from logfs.core import Log
from logfs.fusefs.operations import LogfsOperations

__all__ = ["MountWriter"]

log = logging.getLogger(__name__)


class MountWriter:
    """logfs.kafka.context.LogWriter for a mount."""

    def __init__(self, ops: LogfsOperations) -> None:
        self.ops = ops

    async def append(self, lg: Log, data: bytes) -> None:
        """Append (before the first await, as the broker requires), then give the
        kernel the new bytes."""
        old_end = lg.end_offset
        ino = self.ops.append_from_daemon(lg, data)
        if ino is None:  # the kernel has never looked the log up: nothing cached
            return
        try:
            # from a thread: the store waits for page locks a READ being answered by
            # this (trio) thread may hold
            await trio.to_thread.run_sync(pyfuse3.notify_store, ino, old_end, data)
            self.ops.totals["cache_stores"] = self.ops.totals.get("cache_stores", 0) + 1
        except OSError as exc:  # the kernel forgot the inode (nothing cached), or no store
            log.debug("notify_store(%d, %d): %s: invalidating instead", ino, old_end, exc)
            try:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, False)
            except OSError:
                pass
