"""Read-only replicas: another machine's view of every tiered log in a bucket.

A replica's data directory holds no segments. For each ``<topic>/<log>/manifest.json``
under the prefix it keeps ``<topic>/<log>/remote.json``, a copy of that manifest, and
a read-only store over the directory (``open_log_store(readonly=True, remote=...)``)
then serves each log from its remote segments, as any reader serves a tiered log
(log.py, remote.py). :func:`sync_replica` brings the copies up to date: new logs
appear, committed segments extend them, retention moves their start, and a deleted
manifest removes the log. The logs end where the last committed segment ends: the
writer's active segment is not in the bucket until it is sealed and uploaded.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field

from .fileio import replace_file
from .manifest import CorruptManifest, Manifest
from .naming import MANIFEST_COPY_FILE, is_user_name
from .objectstore import ObjectNotFound, ObjectStore

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


@dataclass
class ReplicaState:
    etags: dict[tuple[str, str], str] = field(default_factory=dict)
    synced: bool = False  # a first sync ran: logs of earlier runs were checked


def _manifest_keys(objects: ObjectStore) -> list[tuple[str, str]]:
    found = []
    for key in objects.list(""):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST_NAME and all(is_user_name(p) and p for p in parts[:2]):
            found.append((parts[0], parts[1]))
    return found


def sync_replica(data_dir: str, objects: ObjectStore, state: ReplicaState) -> list[tuple[str, str]]:
    """Mirror the bucket's manifests into *data_dir*; returns the (topic, log) pairs
    that changed (new, grown, shrunk or gone). Blocks on the network and the disk;
    raises ObjectStoreError, OSError."""
    changed = []
    present = set(_manifest_keys(objects))
    for topic, log in sorted(present):
        key = f"{topic}/{log}/{MANIFEST_NAME}"
        try:
            info = objects.head(key)
            if state.etags.get((topic, log)) == info.etag:
                continue
            data, etag = objects.get(key)
            Manifest.decode(data, etag)  # a copy that does not decode is not mirrored
        except ObjectNotFound:
            present.discard((topic, log))
            continue
        except CorruptManifest as exc:
            logger.warning("replica: %s: %s", key, exc)
            continue
        directory = os.path.join(data_dir, topic, log)
        os.makedirs(directory, exist_ok=True)
        replace_file(os.path.join(directory, MANIFEST_COPY_FILE), data, durable=False)
        state.etags[(topic, log)] = etag
        changed.append((topic, log))
    if not state.synced:  # logs an earlier run mirrored that the bucket no longer has
        state.synced = True
        for topic in filter(is_user_name, _listdir(data_dir)):
            for log in _listdir(os.path.join(data_dir, topic)):
                if (topic, log) not in present:
                    state.etags[(topic, log)] = ""
    for topic, log in [k for k in state.etags if k not in present]:
        del state.etags[(topic, log)]
        shutil.rmtree(os.path.join(data_dir, topic, log), ignore_errors=True)
        try:
            os.rmdir(os.path.join(data_dir, topic))
        except OSError:
            pass
        changed.append((topic, log))
    return changed


def _listdir(path: str) -> list[str]:
    try:
        return [n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))]
    except (FileNotFoundError, NotADirectoryError):
        return []
