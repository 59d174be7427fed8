"""The ordered set of a log's segments (Kafka's ``LogSegments``).

A log directory holds its segments as ``<base>.log`` files (naming.py); this module
alone turns a listing of it into :class:`~logfs.core.segment.Segment` objects, by
base offset. Sealed segments never change, so their sizes are read once; the last
one is the active segment (the writer's) or, for a reader, the one still growing.

A tiered log's first segments may be remote (remote.py): they come first in the
same list, below the first local one, and ``nremote`` says how many there are.
"""

from __future__ import annotations

import os

from .cache import ResourceCache
from .index import OFFSET_MAGIC, TIME_MAGIC, inspect_index_file
from .naming import list_segment_bases, offset_index_name, time_index_name
from .segment import Segment


class LogSegments:
    """The segments of one log directory, oldest first. Not thread-safe.

    ``items`` and ``bases`` are the segments and their base offsets, in order. The
    log's hot paths index them directly, and may keep references to them: they are
    changed in place, and only through this class."""

    __slots__ = ("directory", "cache", "writable", "items", "bases", "dir_mtime_ns", "nremote", "remote")

    def __init__(self, directory: str, cache: ResourceCache, writable: bool) -> None:
        self.directory = directory
        self.cache = cache
        self.writable = writable
        self.items: list[Segment] = []
        self.bases: list[int] = []
        self.dir_mtime_ns = -1  # the directory's mtime at the last listing
        self.nremote = 0  # items[:nremote] are remote segments (below the local ones)
        # every remote segment of the manifest, local copies or not: which of them are
        # below the first local segment changes as a reader relists (retention)
        self.remote: list = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def active(self) -> Segment:
        """The last segment (IndexError if there is none)."""
        return self.items[-1]

    @property
    def end(self) -> int:
        """The offset after the last segment's last byte (0 without segments)."""
        if not self.items:
            return 0
        last = self.items[-1]
        return last.base + last.size

    def relist(self) -> None:
        """Read the directory again: new segments join, removed ones are closed;
        objects of segments still there are kept, with their state. Sealed segments
        get their sizes (once). Raises FileNotFoundError if the directory is gone,
        OSError."""
        st = os.stat(self.directory)
        names = os.listdir(self.directory)
        self.dir_mtime_ns = st.st_mtime_ns
        bases = list_segment_bases(names)
        known = {seg.base: seg for seg in self.items[self.nremote:]}
        previous_last = self.items[-1].base if self.items else None
        segments = []
        for base in bases:
            seg = known.pop(base, None)
            if seg is None:
                seg = Segment(self.directory, base, self.cache, self.writable)
            segments.append(seg)
        for gone in known.values():
            gone.close()
        for seg in segments[:-1]:  # sizes of sealed segments (they never change)
            if seg.size < 0 or not seg.sealed or seg.base == previous_last:
                seg.sealed = True
                try:
                    seg.size = os.stat(seg.path).st_size
                except FileNotFoundError:
                    seg.size = 0
        self._join(segments)

    def _join(self, local: list) -> None:
        """items = the remote segments below the first local one, then the local ones."""
        remote = self.remote
        if local:
            remote = [seg for seg in remote if seg.base < local[0].base]
        self.nremote = len(remote)
        self.items[:] = remote + local
        self.bases[:] = [seg.base for seg in self.items]

    def set_remote(self, remote: list) -> None:
        """The log's remote segments (oldest first, from its manifest), replacing the
        earlier ones; those a local segment covers stay out of ``items`` until the
        local copy goes."""
        new = {id(seg) for seg in remote}
        for seg in self.remote:
            if id(seg) not in new:
                seg.close()
        self.remote = list(remote)
        self._join(self.items[self.nremote:])

    @property
    def local(self) -> list:
        return self.items[self.nremote:]

    def add(self, seg: Segment) -> None:
        """A new last segment (a roll, or the first segment of a new log)."""
        self.items.append(seg)
        self.bases.append(seg.base)

    def remove_oldest(self) -> Segment:
        """Take the first local segment out of the set (retention deletes its files)."""
        self.bases.pop(self.nremote)
        return self.items.pop(self.nremote)

    def close(self) -> None:
        """Release every segment's descriptors and mappings (reopened on next use)."""
        for seg in self.items:
            seg.close()
        for seg in self.remote[self.nremote:]:
            seg.close()


def open_segments(directory: str, cache: ResourceCache) -> list[Segment]:
    """The segments in *directory* as a writer's recovery finds them: by base, each
    sized by its file, all opened read-only until recovery seals or repairs them.
    Raises FileNotFoundError if the directory is gone, OSError."""
    segments = [Segment(directory, base, cache, writable=True)
                for base in list_segment_bases(os.listdir(directory))]
    for seg in segments:
        seg.size = os.stat(seg.path).st_size
    return segments


def index_files_look_whole(directory: str) -> bool:
    """Every segment in *directory* has both its index files, each with a valid
    header for the segment and no torn entry (two header reads per segment): when not,
    the writer recovers the log before using it, even after a clean shutdown. Raises
    FileNotFoundError if the directory is gone, OSError."""
    for base in list_segment_bases(os.listdir(directory)):
        for name, magic in ((offset_index_name(base), OFFSET_MAGIC), (time_index_name(base), TIME_MAGIC)):
            problem, torn = inspect_index_file(os.path.join(directory, name), magic, base)
            if problem is not None or torn:
                return False
    return True
