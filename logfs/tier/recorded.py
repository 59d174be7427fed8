"""The object store a data directory tiers to, as ``DATA/.logfs/remote.json`` records
it (written by ``logfs mount -o remote=``): readers of the directory (``logfs serve``,
``logfs consume``, ``logfs describe``, ``logfs kafka``) read tiered segments through it
without being told again. Credentials come from the standard AWS chain."""

from __future__ import annotations

import logging

from logfs.core.objectstore import ObjectStore, ObjectStoreError
from logfs.core.tiering import read_remote_config

logger = logging.getLogger(__name__)


def recorded_remote(data_dir: str) -> ObjectStore | None:
    """The recorded object store of *data_dir*, or None. Unchecked: a reader that
    cannot reach it fails only when it reads a remote segment (EIO, one line)."""
    try:
        recorded = read_remote_config(data_dir)
    except OSError as exc:
        logger.warning("cannot read the remote configuration of %s: %s", data_dir, exc.strerror or exc)
        return None
    if not recorded.get("url"):
        return None
    from logfs.tier.s3 import S3ObjectStore  # noqa: PLC0415 - boto3 only with a remote

    try:
        return S3ObjectStore(recorded["url"], endpoint=recorded.get("endpoint"))
    except ObjectStoreError as exc:  # a bad AWS profile, say: local data still reads
        logger.warning("remote %s: %s (remote segments cannot be read)", recorded["url"], exc)
        return None
