"""The mount's maintenance task: retention, ``segment.ms`` rolls and ``flush.ms``
fsyncs, every ``store.retention_interval_s`` or as often as the smallest ``flush.ms``
asks.

Theory of operation
-------------------
The store is not thread-safe, so only the trio thread calls it, and every FUSE
request waits while it does. A ``flush.ms`` fsync is slow when the log has many
dirty pages, so each pass first writes those pages out from a worker thread through
descriptors of its own (``diskio.write_out_pages``: fsync works per inode, not per
descriptor), exactly as the fsync handler does, and only then calls
``store.run_maintenance()`` inline, whose fsync now finds the data clean and is
short. Which logs need it is decided here from the core's public figures: a log
with ``flush.ms`` set whose end moved since its pages were last written out, at
least ``flush.ms`` ago. A log this misses is still fsynced by the core, only inline.

The core logs every action it takes (a roll, a deletion, a failure), one line each;
this task adds no second line for them, and logs only a pass that failed as a whole.
"""

from __future__ import annotations

import logging
import time

import trio

from logfs.core import LogStore, StorageError
from logfs.fusefs.diskio import write_out_pages
from logfs.fusefs.operations import LogfsOperations, segment_paths

log = logging.getLogger(__name__)

__all__ = ["Maintenance"]

MIN_INTERVAL_S = 0.05
RECHECK_S = 1.0


class Maintenance:
    """Runs the maintenance passes of one mount; :meth:`run` is the task."""

    def __init__(self, store: LogStore, ops: LogfsOperations) -> None:
        self.store = store
        self.ops = ops
        # (topic, log) -> (end offset, monotonic time) when its pages were last written out
        self._written_out: dict[tuple[str, str], tuple[int, float]] = {}

    def interval_s(self) -> float:
        """store.retention_interval_s, or less if a log's flush.ms (or the mount-wide
        default, which logs opened later take) asks for more often."""
        interval = float(self.store.retention_interval_s)
        default = self.store.defaults.get("flush.ms")
        if isinstance(default, int) and default >= 0:
            interval = min(interval, default / 1000)
        for lg in self.store.open_logs():
            flush_ms = lg.config.flush_ms
            if flush_ms is not None and flush_ms >= 0:
                interval = min(interval, flush_ms / 1000)
        return max(MIN_INTERVAL_S, interval)

    def pages_to_write_out(self, now: float) -> list[str]:
        """Segment files of the logs whose flush.ms fsync is due, holding what they
        received since their pages were last written out. Calls the store (trio
        thread); never raises for one log (its fsync then just runs inline)."""
        paths: list[str] = []
        seen = set()
        for lg in self.store.open_logs():
            key = (lg.topic, lg.name)
            seen.add(key)
            flush_ms = lg.config.flush_ms
            if flush_ms is None:
                continue
            end = lg.end_offset
            last_end, last_t = self._written_out.get(key, (end - 1, float("-inf")))
            if end == last_end or now - last_t < flush_ms / 1000:
                continue
            try:
                paths += segment_paths(lg, last_end, end)
            except StorageError as exc:
                log.debug("maintenance: cannot list the segments of %s/%s: %s", *key, exc)
            self._written_out[key] = (end, now)
        for key in set(self._written_out) - seen:  # deleted or renamed logs
            del self._written_out[key]
        return paths

    async def run_once(self) -> None:
        """One pass: dirty pages written out off the trio thread, then the core's
        maintenance inline, then the cached pages of logs whose start moved are
        dropped. Never raises but cancellation: a failed pass is logged and the next
        one tries again."""
        try:
            paths = self.pages_to_write_out(time.monotonic())
            if paths:
                await trio.to_thread.run_sync(write_out_pages, paths)
            self.store.run_maintenance()  # the core logs each action itself
            self.ops.invalidate_moved_starts()
        except Exception:  # noqa: BLE001 - maintenance must never end the mount
            log.exception("maintenance failed; will retry")

    async def run(self) -> None:
        """Run passes forever (until cancelled), one each interval_s(), which is
        looked at again at least every RECHECK_S (a log opened since, with a short
        flush.ms, does not wait out a long sleep)."""
        last = trio.current_time()
        while True:
            await trio.sleep(min(self.interval_s(), RECHECK_S))
            if trio.current_time() - last >= self.interval_s() - 1e-3:
                last = trio.current_time()
                await self.run_once()
