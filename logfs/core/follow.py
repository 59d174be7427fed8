"""A reader's view of a log that another process writes (the exporter's).

The reader never writes. It catches up with the writer's appends, rolls and
retention cheaply: a stat of the log directory (its mtime changes when a segment is
created or deleted), a look at the checkpoint's live slot (the writer's published
end, checkpoint.py) and an fstat of the last segment. It counts records from the
last offset-index entry on, remembering how far it has counted.
"""

from __future__ import annotations

from .checkpoint import LIVE_SLOT, Checkpoint
from .segment import Segment
from .segments import LogSegments


def catch_up(segments: LogSegments, checkpoint: Checkpoint, dir_mtime_ns: int, force: bool) -> None:
    """Bring *segments* up to what the writer has published: relist when the
    directory changed (or *force*, or the live slot points past the last segment's
    file), then size the last segment by the live slot, so a reader never sees half
    an append. *dir_mtime_ns* is the directory's mtime now. Raises FileNotFoundError
    if the directory is gone, OSError."""
    live = checkpoint.read(LIVE_SLOT)
    items = segments.items
    relist = force or dir_mtime_ns != segments.dir_mtime_ns or not items
    if not relist and live is not None:
        last = items[-1]
        if live.position > last.base + max(last.size, 0):
            try:
                relist = live.position > last.base + last.stat_size()
            except FileNotFoundError:  # deleted since the listing
                relist = True
    if relist:
        segments.relist()
        if not items:
            return
    last = items[-1]
    try:
        file_size = last.stat_size()
    except FileNotFoundError:  # deleted since the listing: list again
        segments.relist()
        if not items:
            return
        last = items[-1]
        file_size = last.stat_size()
    size = file_size
    if live is not None and last.base <= live.position <= last.base + file_size:
        size = live.position - last.base
    last.size = size


class RecordCounter:
    """Counts the newlines of a reader's last segment: from its last offset-index
    entry on, then only the bytes added since the previous count."""

    __slots__ = ("_base", "_pos", "_count")

    def __init__(self) -> None:
        self._base, self._pos, self._count = -1, 0, 0

    def newlines(self, seg: Segment) -> int:
        """Newlines in ``[0, seg.size)`` of *seg*. Raises OSError, CorruptIndex."""
        pos, count = self._pos, self._count
        if self._base != seg.base or pos > seg.size:
            oindex = seg.offset_index()
            oindex.refresh_count()
            entry = oindex.last()
            if entry is not None and entry[1] <= seg.size:
                pos, count = entry[1], entry[0]
            else:
                pos, count = 0, 0
        if pos < seg.size:
            count += seg.count_newlines(pos, seg.size)
            pos = seg.size
        self._base, self._pos, self._count = seg.base, pos, count
        return count
