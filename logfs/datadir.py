"""Where a data directory may be, and how to find the one a path belongs to.

Shared by the two command lines (`logfs mount|describe|config` and `logfs serve`):
each checks DATA here before it opens a store, so a bad path is refused with one
line that says what is wrong instead of failing later, deep in the core.

- :func:`check_data_dir` refuses what cannot be a data directory: a file, a path
  inside another store's internals (``DATA/.logfs/...``), a topic or log directory
  of another store.
- :func:`find_data_dir` maps a path (``DATA``, ``DATA/topic``, ``DATA/topic/log``)
  to its data directory and the parts below it, for `describe` and `config` without
  a mount.

Nothing here writes; every call blocks briefly on ``stat``.
"""

from __future__ import annotations

import os

from logfs.core.naming import LOCK_FILE, LOG_META_FILE, RESERVED_PREFIX, STORE_META_DIR

__all__ = ["DataDirError", "check_data_dir", "find_data_dir", "is_store_dir"]


class DataDirError(Exception):
    """A path that cannot be used as a data directory; the message says why."""


def is_store_dir(path: str) -> bool:
    """True if ``path`` holds a store's metadata directory (``.logfs/``)."""
    return os.path.isdir(os.path.join(path, STORE_META_DIR))


def _has_written_store(path: str) -> bool:
    # a writer (a mount) has opened it: .logfs/lock is created then and never removed
    return os.path.exists(os.path.join(path, STORE_META_DIR, LOCK_FILE))


def check_data_dir(path: str, *, must_exist: bool) -> str:
    """The real path of DATA, or DataDirError saying why ``path`` cannot be one.

    With ``must_exist=False`` a missing DATA is accepted (``logfs mount`` creates
    it); the checks then apply to where it would be created.
    """
    real = os.path.realpath(path)
    if os.path.lexists(real):
        if not os.path.isdir(real):
            raise DataDirError(f"{path} is not a data directory (it is a file, not a directory)")
    elif must_exist:
        raise DataDirError(f"data directory {path} does not exist")
    parts = real.split("/")
    for i, part in enumerate(parts):
        if part.startswith(RESERVED_PREFIX):
            owner = "/".join(parts[:i]) or "/"
            raise DataDirError(f"{path} is inside the logfs internals of the data directory "
                               f"{owner} ({part}/ is logfs's own): use {owner} itself, or "
                               "another directory")
    parent = os.path.dirname(real)
    for level, what in ((1, "a topic"), (2, "a log")):
        if parent in ("", "/"):
            break
        if _has_written_store(parent):
            raise DataDirError(f"{path} is {what} directory of the data directory {parent}: "
                               f"use {parent} itself, or a directory outside it")
        parent = os.path.dirname(parent)
    return real


def _logs_below(path: str, depth: int) -> bool:
    """True if some directory ``depth`` levels below ``path`` is a log (has log.json)."""
    if depth == 0:
        return os.path.isfile(os.path.join(path, LOG_META_FILE))
    try:
        entries = os.scandir(path)
    except OSError:
        return False
    with entries:
        for e in entries:
            if not e.name.startswith(RESERVED_PREFIX) and e.is_dir(follow_symlinks=False) \
                    and _logs_below(e.path, depth - 1):
                return True
    return False


def find_data_dir(path: str) -> tuple[str, tuple[str, ...]] | None:
    """``(DATA, parts)`` for a path that is DATA, DATA/topic or DATA/topic/log.

    DATA is recognised by its ``.logfs/`` directory; a data directory that was never
    mounted (a restored backup) by the logs in it (``topic/log/log.json``).
    None if the path belongs to no data directory.
    """
    real = os.path.realpath(path)
    if not os.path.isdir(real) or any(p.startswith(RESERVED_PREFIX) for p in real.split("/")):
        return None
    candidates = [(real, ()),
                  (os.path.dirname(real), (os.path.basename(real),)),
                  (os.path.dirname(os.path.dirname(real)),
                   (os.path.basename(os.path.dirname(real)), os.path.basename(real)))]
    for data, parts in candidates:
        if data and is_store_dir(data):
            return data, parts
    for depth, (data, parts) in zip((2, 1, 0), candidates):
        if _logs_below(real, depth) and data not in ("", "/"):
            return data, parts
    return None
