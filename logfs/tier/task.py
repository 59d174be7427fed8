"""The writer daemon's tiering task, and remote reads off the trio thread.

:func:`run_tiering` runs in the mount's nursery (and ``logfs kafka``'s): every
``PASS_S`` (at once after a pass that took a full share of some backlog) it plans a
pass for each tiered log on the trio thread (the core is not thread-safe), runs the
network part of up to ``MAX_PARALLEL`` logs at once in worker threads of their own,
at a lower priority (``UPLOAD_NICE``), and installs what they committed back on the
trio thread (core/tiering.py). Appends never wait for it: the FUSE handlers run
between its awaits, and take the CPU first.

:func:`fetch_remote` brings the remote chunks a read needs into the cache from a
worker thread, so a read of a remote segment does not stall every other request;
the read itself then runs as any other (core/remote.py), and the next chunk is
fetched in the background when a read crosses into a new one (sequential reads).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading

import trio

from logfs.core import Log, LogStore, StorageError
from logfs.core.manifest import CHUNK_BYTES
from logfs.core.tiering import MAX_UPLOADS_PER_PASS

logger = logging.getLogger(__name__)

PASS_S = 1.0
ALL_LOGS_EVERY = 10  # passes: logs not opened since the mount are looked at this often
MAX_PARALLEL = 4


def _fetch_jobs(jobs: list) -> None:
    for seg, a, b in jobs:
        seg.fetch(a, b)


async def fetch_remote(lg: Log, a: int, b: int, spawn=None) -> None:
    """Make the remote bytes of [a, b) of *lg* local (a worker thread); with *spawn*
    (a nursery's start_soon), also start fetching the chunk after *b*. Raises what
    RemoteSegment.fetch raises (RemoteReadError: EIO)."""
    if not lg.remote_missing(a, b):
        return
    jobs = lg.remote_segments_for(a, b)
    await trio.to_thread.run_sync(_fetch_jobs, jobs)
    if spawn is not None:
        ahead = lg.remote_segments_for(b, b + CHUNK_BYTES)
        if ahead and lg.remote_missing(b, b + CHUNK_BYTES):
            spawn(_read_ahead, ahead)


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
    passes = 0
    while True:
        try:
            logs = _tiered_logs(store, passes % ALL_LOGS_EVERY == 0)
            now = store.clock.now_ms()
            plans = [(lg, p) for lg in logs if (p := tiering.plan(lg, now)) is not None]
            if plans:
                async with trio.open_nursery() as nursery:
                    for lg, plan in plans:
                        nursery.start_soon(_one, tiering, lg, plan, limiter)
            # a pass that took its full share of some log's backlog: the next one at once
            more = any(len(plan.uploads) >= MAX_UPLOADS_PER_PASS for _lg, plan in plans)
        except Exception:  # noqa: BLE001 - tiering must never end the mount
            logger.exception("tiering pass failed; will retry")
            more = False
        passes += 1
        await trio.sleep(0 if more else PASS_S)


UPLOAD_NICE = 10  # uploads are background work: appends and reads go first
_uploaders: concurrent.futures.ThreadPoolExecutor | None = None


def _nice_thread() -> None:
    """A thread of its own for uploads, at a lower priority (Linux niceness is per
    thread): under load, the FUSE handlers and readers get the CPU first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), UPLOAD_NICE)
    except OSError:
        pass


def _upload_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _uploaders
    if _uploaders is None:
        _uploaders = concurrent.futures.ThreadPoolExecutor(MAX_PARALLEL, "logfs-upload", _nice_thread)
    return _uploaders


async def _one(tiering, lg: Log, plan, limiter: trio.CapacityLimiter) -> None:
    state = tiering.state(lg)
    future = _upload_pool().submit(tiering.execute, plan, state)
    result = await trio.to_thread.run_sync(future.result, limiter=limiter)
    try:
        tiering.finish(lg, result)
    except StorageError as exc:
        logger.error("tiering of %s/%s: %s", lg.topic, lg.name, exc)
