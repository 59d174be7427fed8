"""One consumer per group at a time.

Kafka shares a group's partitions among its members; logfs keeps it simpler: a
group has at most one consumer at a time, which reads every log it names. The
consumer holds an exclusive ``flock`` on the group's *member file*,
``DATA/.logfs/groups/<group file name>.member`` (beside the group's ``.offsets``
file, logfs/core/groups.py), for as long as it runs, with its pid written in it. A
second consumer of the group is refused at once with the holder's pid; ``logfs
groups reset`` and ``delete`` take the same lock for their own short while (so they
refuse while a consumer runs, and no consumer starts in the middle of them);
``describe`` shows the holder. The kernel drops the lock when the process ends,
however it ends (SIGKILL included), so a crashed consumer never leaves its group
locked. The file stays between consumers; ``delete`` removes it with the group,
while holding the lock: a taker checks, once it holds the lock, that the file it
locked is still the one the path names, and tries again if not.

Every call blocks briefly on the disk.
"""

from __future__ import annotations

import errno
import fcntl
import os

from logfs.core import GroupStore
from logfs.core.groups import group_file_name
from logfs.core.naming import GROUP_SUFFIX, MEMBER_SUFFIX

__all__ = ["GroupBusy", "GroupMember", "MEMBER_SUFFIX", "holder_pid", "member_path"]



class GroupBusy(Exception):
    """The group has a consumer already; ``pid`` is its process (None if unknown)."""

    def __init__(self, group: str, pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"consumer group {group!r} is in use by another consumer{who}: a group "
                         "has one consumer at a time (docs/consumers.md)")
        self.group = group
        self.pid = pid


def member_path(groups: GroupStore, name: str) -> str:
    """The member file of group *name*. InvalidName for a bad group id."""
    return os.path.join(groups.directory, group_file_name(name)[:-len(GROUP_SUFFIX)] + MEMBER_SUFFIX)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace")
    except OSError:
        return None
    word = text.split()[1] if text.startswith("pid ") and len(text.split()) > 1 else ""
    return int(word) if word.isdigit() else None


class GroupMember:
    """The exclusive membership of one group; a context manager."""

    def __init__(self, groups: GroupStore, name: str) -> None:
        self.groups = groups
        self.name = name
        self.path = member_path(groups, name)
        self._fd = -1

    def acquire(self) -> None:
        """Take the group, or raise GroupBusy; OSError if the file cannot be made."""
        self.groups.ensure_directory()
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                pid = _read_pid(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise GroupBusy(self.name, pid) from None
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
                self._fd = fd
                return
            os.close(fd)  # removed (by a delete) while we waited for it: again
        raise OSError(errno.EAGAIN, "the member file keeps changing", self.path)

    def remove(self) -> None:
        """Remove the member file while holding it (``delete``)."""
        if self._fd >= 0:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # drops the flock

    def __enter__(self) -> "GroupMember":
        if self._fd < 0:  # not taken yet
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(groups: GroupStore, name: str) -> int | None:
    """The pid of the consumer holding group *name* (0 if it holds it but wrote no
    pid yet), or None if none does. Creates nothing."""
    try:
        fd = os.open(member_path(groups, name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _read_pid(fd) or 0
            raise
        return None
    finally:
        os.close(fd)  # a lock we took goes with it
