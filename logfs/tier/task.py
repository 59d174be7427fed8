"""The writer daemon's tiering task, and remote reads off the trio thread.

:func:`run_tiering` runs in the mount's nursery (and ``logfs kafka``'s): every
``PASS_S`` (at once after a pass that took a full share of some backlog) it plans a
pass for each tiered log on the trio thread (the core is not thread-safe), runs the
network part of up to ``MAX_PARALLEL`` logs at once in worker processes
(:class:`UploadWorkers`), at a lower priority (``UPLOAD_NICE``), and installs what
they committed back on the trio thread (core/tiering.py). Appends never wait for it:
the FUSE handlers run between its awaits, never wait for the interpreter lock while
an upload hashes or sends, and take the CPU first.

:func:`fetch_remote` brings the remote chunks a read needs into the cache from a
worker thread, so a read of a remote segment does not stall every other request;
the read itself then runs as any other (core/remote.py), and the next chunk is
fetched in the background when a read crosses into a new one (sequential reads).
:func:`prepare_record_seek` and :func:`prepare_time_seeks` do the same for seeks
(index files, and the chunk a record seek scans).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import multiprocessing
import os
import signal
from concurrent.futures.process import BrokenProcessPool

import trio

from logfs.core import Log, LogStore, StorageError
from logfs.core.clock import SystemClock
from logfs.core.manifest import CHUNK_BYTES
from logfs.core.tiering import MAX_UPLOADS_PER_PASS, TierResult, Tiering

logger = logging.getLogger(__name__)

PASS_S = 1.0
ALL_LOGS_EVERY = 10  # passes: logs not opened since the mount are looked at this often
MAX_PARALLEL = 4
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _fetch_jobs(jobs: list, indexes: bool = False) -> None:
    for seg, a, b in jobs:
        if indexes:
            seg.ensure_indexes()
        seg.fetch(a, b)


async def fetch_remote(lg: Log, a: int, b: int, spawn=None, indexes: bool = False) -> None:
    """Make the remote bytes of [a, b) of *lg* local (a worker thread); with *indexes*,
    the index files of their segments too (what time marks read: Kafka's batches);
    with *spawn* (a nursery's start_soon), also start fetching the chunk after *b*.
    Raises what RemoteSegment.fetch raises (RemoteReadError: EIO)."""
    if indexes:
        jobs = lg.remote_segments_for(a, b)
        if any(not seg.has_indexes() for seg, _a, _b in jobs) or lg.remote_missing(a, b):
            await trio.to_thread.run_sync(_fetch_jobs, jobs, True)
        return
    if not lg.remote_missing(a, b):
        return
    jobs = lg.remote_segments_for(a, b)
    await trio.to_thread.run_sync(_fetch_jobs, jobs)
    if spawn is not None:
        ahead = lg.remote_segments_for(b, b + CHUNK_BYTES)
        if ahead and lg.remote_missing(b, b + CHUNK_BYTES):
            spawn(_read_ahead, ahead)


async def prepare_record_seek(lg: Log, n: int) -> None:
    """Make a seek to record *n* (``lg.record_position(n)``) read only local files:
    the index files of the remote segment it lands in and the chunks its scan reads
    are fetched from a worker thread. Raises what the fetches raise (RemoteReadError)."""
    seg = lg.remote_segment_of_record(n)
    if seg is None:
        return
    if not seg.has_indexes():
        await trio.to_thread.run_sync(seg.ensure_indexes)
    window = lg.remote_seek_window(n)
    if window is not None:
        await fetch_remote(lg, *window)


def _ensure_indexes(segments: list) -> None:
    for seg in segments:
        seg.ensure_indexes()


async def prepare_time_seeks(lg: Log) -> None:
    """Download, from a worker thread, the index files of every remote segment of *lg*
    that lacks them (a time seek reads the time indexes of the segments its binary
    search visits). Raises RemoteReadError."""
    missing = lg.remote_segments_without_indexes()
    if missing:
        await trio.to_thread.run_sync(_ensure_indexes, missing)


async def _read_ahead(jobs: list) -> None:
    try:
        await trio.to_thread.run_sync(_fetch_jobs, jobs)
    except StorageError as exc:  # the read that needs it will say so
        logger.debug("remote read-ahead: %s", exc)


def _tiered_logs(store: LogStore, everything: bool) -> list[Log]:
    if not everything:
        return [lg for lg in store.open_logs() if lg.config.tiered]
    logs = []
    for topic in store.topics():
        for name in store.logs(topic):
            try:
                lg = store.log(topic, name)
            except StorageError:
                continue
            if lg.config.tiered:
                logs.append(lg)
    return logs


async def run_tiering(store: LogStore) -> None:
    """Tier the store's logs forever (until cancelled). Never raises but cancellation."""
    tiering = store.tiering
    if tiering is None:
        return
    limiter = trio.CapacityLimiter(MAX_PARALLEL)
    workers = UploadWorkers(tiering)
    try:
        await _tier_forever(store, tiering, workers, limiter)
    finally:
        workers.close()


async def _tier_forever(store: LogStore, tiering, workers: UploadWorkers, limiter) -> None:
    passes = 0
    while True:
        try:
            logs = _tiered_logs(store, passes % ALL_LOGS_EVERY == 0)
            now = store.clock.now_ms()
            plans = [(lg, p) for lg in logs if (p := tiering.plan(lg, now)) is not None]
            if plans:
                async with trio.open_nursery() as nursery:
                    for lg, plan in plans:
                        nursery.start_soon(_one, tiering, workers, lg, plan, limiter)
            # a pass that took its full share of some log's backlog: the next one at once
            more = any(len(plan.uploads) >= MAX_UPLOADS_PER_PASS for _lg, plan in plans)
        except Exception:  # noqa: BLE001 - tiering must never end the mount
            logger.exception("tiering pass failed; will retry")
            more = False
        passes += 1
        await trio.sleep(0 if more else PASS_S)


UPLOAD_NICE = 10  # uploads are background work: appends and reads go first


class UploadWorkers:
    """The network part of tiering passes, in worker processes of their own (spawned,
    so nothing of the daemon's threads is forked): an upload's hashing and socket
    copies never take the daemon's GIL from the FUSE handlers, and the workers run at
    nice UPLOAD_NICE, so under load appends and reads get the CPU first. A worker dies
    with the daemon (PR_SET_PDEATHSIG): an upload a kill cut short is redone by the
    next mount, as after any crash (core/tiering.py). If a worker dies, the passes it
    had fail (transient: retried with backoff) and new workers are started."""

    def __init__(self, tiering) -> None:
        self._tiering = tiering
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                MAX_PARALLEL, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start,
                initargs=(self._tiering.objects, self._tiering.store_id, os.getpid(), UPLOAD_NICE))
        return self._pool

    async def execute(self, plan, state, limiter: trio.CapacityLimiter):
        """Tiering.execute(plan, state) in a worker; its log lines are logged here."""
        # submitted from this (the trio) thread: the workers' parent thread lives as
        # long as the daemon, which PR_SET_PDEATHSIG watches
        future = self._executor().submit(_worker_execute, plan, state)
        try:
            result, lines = await trio.to_thread.run_sync(future.result, limiter=limiter)
        except BrokenProcessPool:
            self.close()
            return TierResult(plan, error="an upload worker process died (the pass is redone)")
        for name, level, message in lines:
            logging.getLogger(name).log(level, "%s", message)
        return result

    def close(self) -> None:
        """Stop the workers (no pass is running: passes are awaited to the end)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


_worker_tiering = None
_worker_lines: list[tuple[str, int, str]] = []


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _worker_lines.append((record.name, record.levelno, record.getMessage()))


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the daemon died before the prctl
        os._exit(1)


def _worker_start(objects, store_id: str, parent_pid: int, nice: int) -> None:
    """In a new worker process: *objects* was rebuilt by unpickling (its own client)."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when to stop
    try:
        os.nice(nice)
    except OSError:
        pass
    root = logging.getLogger()
    root.handlers[:] = [_Collect()]
    root.setLevel(logging.INFO)
    global _worker_tiering
    _worker_tiering = Tiering(objects, store_id, SystemClock())


def _worker_execute(plan, state):
    _worker_lines.clear()
    result = _worker_tiering.execute(plan, state)
    return result, list(_worker_lines)


async def _one(tiering, workers: UploadWorkers, lg: Log, plan, limiter: trio.CapacityLimiter) -> None:
    result = await workers.execute(plan, tiering.state(lg), limiter)
    try:
        tiering.finish(lg, result)
    except StorageError as exc:
        logger.error("tiering of %s/%s: %s", lg.topic, lg.name, exc)
