"""A read-only replica mount (``logfs mount --replica s3://BUCKET/PREFIX``).

The replica's data directory holds no segments of its own: every log is the bucket's
manifest mirrored into DATA/T/L/remote.json (core/replica.py), read like any tiered
log's remote segments. The mount is made with the kernel's ``ro``, so every write is
EROFS before it reaches the daemon; :func:`run_replica_sync` mirrors the manifests
again every ``REPLICA_SYNC_S`` in a worker thread.
"""

from __future__ import annotations

import logging

import trio

from logfs.core.replica import ReplicaState, sync_replica

log = logging.getLogger("logfs")

REPLICA_SYNC_S = 2.0


def first_sync(data_dir: str, objects) -> ReplicaState:
    """The first mirror of the bucket's manifests (before the mount, so the first `ls`
    shows every log). Raises ObjectStoreError, OSError."""
    state = ReplicaState()
    changed = sync_replica(data_dir, objects, state)
    log.info("replica of %s: %d logs", objects.description, len(changed))
    return state


async def run_replica_sync(store, ops) -> None:
    """Every REPLICA_SYNC_S: mirror the bucket's manifests again (a worker thread);
    the kernel learns new sizes within its 1 s attribute timeout, and pages below a
    start retention moved are dropped. Never raises but cancellation."""
    objects, state = store.replica
    while True:
        await trio.sleep(REPLICA_SYNC_S)
        try:
            changed = await trio.to_thread.run_sync(sync_replica, store.data_dir, objects, state)
            if changed:
                log.info("replica: %d logs changed in %s", len(changed), objects.description)
                ops.invalidate_moved_starts()
        except Exception as exc:  # noqa: BLE001 - the replica keeps serving what it has
            log.warning("replica: refreshing from %s failed: %s", objects.description, exc)
