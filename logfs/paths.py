"""From the paths a person types to a data directory and the topics and logs in it
(`logfs describe`, `config`, `consume`, `groups`).

A path is ``MOUNT``, ``MOUNT/topic`` or ``MOUNT/topic/log`` of a logfs mount (mapped
to the mount's data directory, which the kernel records as its source), or the same
in a data directory that is not mounted (``DATA``, ``DATA/topic``, ``DATA/topic/log``;
logfs/datadir.py recognises it). Every path of one command must lie in the same data
directory: its consumer groups are that directory's.

Nothing here opens a store; every call blocks briefly on ``stat`` and on reading
``/proc/self/mountinfo``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from logfs.datadir import find_data_dir
from logfs.fusefs import mounts

__all__ = ["Located", "PathError", "locate", "locate_all"]


class PathError(Exception):
    """A path that names no data directory, topic or log; the message says why."""


@dataclass(frozen=True)
class Located:
    """A path as logfs sees it: its data directory and the parts below it (none: the
    whole directory; one: a topic; two: a log)."""

    path: str
    data: str
    parts: tuple[str, ...]
    via_mount: bool

    @property
    def topic(self) -> str | None:
        return self.parts[0] if self.parts else None

    @property
    def log(self) -> str | None:
        return self.parts[1] if len(self.parts) > 1 else None


def locate(path: str) -> Located:
    """Where *path* lies. Raises PathError (missing, outside logfs, too deep)."""
    found = mounts.logfs_mount_containing(os.path.abspath(path))
    if found is not None:
        entry, parts = found
        located = Located(path, entry.source, parts, True)
    else:
        on_disk = find_data_dir(path) if os.path.lexists(path) else None
        if on_disk is None:
            if not os.path.lexists(path):
                raise PathError(f"{path} does not exist")
            raise PathError(f"{path} is not inside a logfs mount or a logfs data directory "
                            "(MOUNT[/topic[/log]] or DATA[/topic[/log]])")
        located = Located(path, on_disk[0], on_disk[1], False)
    if len(located.parts) > 2:
        raise PathError(f"{path}: a logfs path is MOUNT, MOUNT/topic or MOUNT/topic/log "
                        "(or DATA, DATA/topic, DATA/topic/log)")
    return located


def locate_all(paths: list[str], *, what: str) -> tuple[str, list[Located]]:
    """(DATA, the located paths) for paths that must share one data directory;
    *what* names them in messages ("logs to consume"). Raises PathError."""
    located = [locate(p) for p in paths]
    datas = {os.path.realpath(x.data) for x in located}
    if len(datas) > 1:
        raise PathError(f"the {what} lie in different data directories ({', '.join(sorted(datas))}): "
                        "a consumer group belongs to one")
    return located[0].data, located
