"""The ordered set of a log's segments (Kafka's ``LogSegments``).

A log directory holds its segments as ``<base>.log`` files (naming.py); this module
alone turns a listing of it into :class:`~logfs.core.segment.Segment` objects, by
base offset. Sealed segments never change, so their sizes are read once; the last
one is the active segment (the writer's) or, for a reader, the one still growing.
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

    __slots__ = ("directory", "cache", "writable", "items", "bases", "dir_mtime_ns")

    def __init__(self, directory: str, cache: ResourceCache, writable: bool) -> None:
        self.directory = directory
        self.cache = cache
        self.writable = writable
        self.items: list[Segment] = []
        self.bases: list[int] = []
        self.dir_mtime_ns = -1  # the directory's mtime at the last listing

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
        known = {seg.base: seg for seg in self.items}
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
        self.items[:] = segments
        self.bases[:] = bases

    def add(self, seg: Segment) -> None:
        """A new last segment (a roll, or the first segment of a new log)."""
        self.items.append(seg)
        self.bases.append(seg.base)

    def remove_oldest(self) -> Segment:
        """Take the first segment out of the set (retention deletes its files)."""
        self.bases.pop(0)
        return self.items.pop(0)

    def close(self) -> None:
        """Release every segment's descriptors and mappings (reopened on next use)."""
        for seg in self.items:
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
