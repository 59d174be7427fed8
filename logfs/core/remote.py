"""Remote segments: sealed segments that live in the object store, read through a
bounded local cache.

A :class:`RemoteSegment` is a :class:`~logfs.core.segment.Segment` whose indexes are
local copies of its uploaded index files and whose bytes come in chunks of
``CHUNK_BYTES`` (manifest.py) by ranged GETs. Each chunk is checked against the
CRC-32C the manifest records for it, then kept as a file of its own in
``DATA/.logfs/remote-cache/<topic>/<log>/<base>-<id>/``; reads return slices of those
files (:class:`~logfs.core.reads.FileRange`), so the exporter still sends them with
``sendfile`` and the mount with ``pread``. Seeks use the local index copies and
fetch at most the chunk an index interval falls in.

The cache is bounded by ``remote.cache.bytes`` (:class:`ChunkCache`, least recently
used chunks go first). Evicting a chunk unlinks its file: a descriptor a reader
already holds stays valid, so an eviction never changes bytes being sent. Several
processes (the mount, ``logfs serve``) may share one cache directory: chunks are
written to a temporary name and renamed, and each process counts what it finds.
When the disk is full, a fetched chunk is kept in memory instead (a memfd) and the
read still succeeds.

Thread safety: :meth:`RemoteSegment.fetch` (the network) may run in a worker thread
while the owning thread reads other chunks; everything else belongs to the thread
that owns the log, like the rest of the core.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import crc32c

from .cache import ResourceCache
from .errors import StorageIOError
from .manifest import CHUNK_BYTES, RemoteSegmentInfo
from .naming import offset_index_name, time_index_name
from .objectstore import ObjectStore, ObjectStoreError
from .reads import FileRange
from .segment import Segment

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 1 << 30
MEMORY_FALLBACK_BYTES = 64 << 20  # chunks kept in memory while the disk is full


class RemoteReadError(StorageIOError):
    """A remote segment could not be read (store down, checksum mismatch): EIO."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errno.EIO)


@dataclass
class _Held:
    size: int
    memfd: int = -1  # a chunk kept in memory (the disk was full)


def write_unless_full(path: str, data: bytes) -> bool:
    """Write the file *path* whole (a temporary name, then a rename: readers never see
    part of it); False, with nothing left behind, if the disk is full (ENOSPC,
    EDQUOT). Raises other OSErrors."""
    tmp = f"{path}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
        return True
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return False


class ChunkCache:
    """Cached chunk files under *root*, at most *capacity* bytes (this process's
    count), least recently used first out. Thread-safe."""

    def __init__(self, root: str, capacity: int = DEFAULT_CACHE_BYTES) -> None:
        self.root = root
        self.capacity = capacity
        self._lock = threading.Lock()
        self._chunks: OrderedDict[str, _Held] = OrderedDict()
        self.bytes = 0
        self.memory_bytes = 0
        self.fetched = 0  # chunks fetched from the store (figures)
        self.hits = 0
        self._disk_full = False  # warned once per episode, not per chunk
        self._scan()

    def _scan(self) -> None:
        """Count what an earlier run left, oldest use first (mtime)."""
        found = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith("c") and not name.endswith(".tmp"):
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    found.append((st.st_mtime_ns, path, st.st_size))
        for _t, path, size in sorted(found):
            self._chunks[path] = _Held(size)
            self.bytes += size
        self._evict()

    def lookup(self, path: str) -> _Held | None:
        """The chunk at *path* if it is cached (here or by another process)."""
        with self._lock:
            held = self._chunks.get(path)
            if held is not None:
                self._chunks.move_to_end(path)
                self.hits += 1
                return held
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return None
        with self._lock:
            held = self._chunks.get(path)
            if held is None:
                held = self._chunks[path] = _Held(size)
                self.bytes += size
                self._evict(keep=path)
            return held

    def store(self, path: str, data: bytes) -> _Held:
        """Keep *data* as the chunk *path*: a file, or in memory if the disk is full."""
        if write_unless_full(path, data):
            held = _Held(len(data))
            if self._disk_full:
                self._disk_full = False
                logger.warning("remote cache: chunks are written to %s again", self.root)
        else:
            held = self._in_memory(path, data)
        with self._lock:
            old = self._chunks.pop(path, None)
            if old is not None:
                self._drop(old)
            self._chunks[path] = held
            if held.memfd < 0:
                self.bytes += held.size
            self.fetched += 1
            self._evict(keep=path)
        return held

    def disk_full(self, path: str) -> None:
        """*path* could not be written for want of room: one warning an episode."""
        if not self._disk_full:
            self._disk_full = True
            logger.warning("remote cache: the disk is full (%s and the next ones kept in memory, "
                           "chunks at most %d MiB)", path, MEMORY_FALLBACK_BYTES >> 20)

    def _in_memory(self, path: str, data: bytes) -> _Held:
        self.disk_full(path)
        fd = os.memfd_create("logfs-chunk", os.MFD_CLOEXEC)
        os.write(fd, data)
        self.memory_bytes += len(data)
        return _Held(len(data), fd)

    def _evict(self, keep: str | None = None) -> None:
        """Drop least recently used chunks down to the capacity, never *keep* (the
        one about to be read)."""
        while len(self._chunks) > (keep is not None) and (
                self.bytes > self.capacity or self.memory_bytes > MEMORY_FALLBACK_BYTES):
            path, held = self._chunks.popitem(last=False)
            if path == keep:
                self._chunks[path] = held
                continue
            self._drop(held)
            if held.memfd < 0:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def _drop(self, held: _Held) -> None:
        if held.memfd >= 0:
            os.close(held.memfd)
            self.memory_bytes -= held.size
        else:
            self.bytes -= held.size

    def forget(self, path: str) -> None:
        """The chunk file *path* is gone (another process evicted it)."""
        with self._lock:
            held = self._chunks.pop(path, None)
            if held is not None:
                self._drop(held)

    def forget_dir(self, directory: str) -> None:
        """A remote segment is gone (retention): drop its chunks from the count."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            for path in [p for p in self._chunks if p.startswith(prefix)]:
                self._drop(self._chunks.pop(path))

    def close(self) -> None:
        with self._lock:
            for held in self._chunks.values():
                if held.memfd >= 0:
                    os.close(held.memfd)
            self._chunks.clear()


class RemoteSource:
    """Where a store's remote segments come from: the object store and the cache."""

    def __init__(self, objects: ObjectStore, cache: ChunkCache) -> None:
        self.objects = objects
        self.chunks = cache


class _ChunkFd:
    """A chunk's open descriptor, held in the store's ResourceCache."""

    __slots__ = ("fd", "cache", "__weakref__")

    def __init__(self, fd: int, cache: ResourceCache) -> None:
        self.fd = fd
        self.cache = cache

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class RemoteSegment(Segment):
    """A sealed segment in the object store (see the module docstring)."""

    __slots__ = ("info", "topic", "log", "source", "_fds", "_fetch_lock", "_index_fds")
    remote = True

    def __init__(self, info: RemoteSegmentInfo, topic: str, log: str, cache_dir: str,
                 source: RemoteSource, cache: ResourceCache) -> None:
        super().__init__(cache_dir, info.base, cache, writable=False)
        self.info = info
        self.topic = topic
        self.log = log
        self.source = source
        self.size = info.size
        self.records = info.records
        self.first_ms = info.first_ms
        self.last_ms = info.last_ms
        self.sealed = True
        self.path = f"{source.objects.description}/{info.key(topic, log, '.log')}"
        self._fds: dict[int, _ChunkFd] = {}
        self._fetch_lock = threading.Lock()
        self._index_fds: dict[str, int] = {}  # index files kept in memory (the disk was full)

    # -- indexes: local copies, downloaded once ------------------------------------
    def has_indexes(self) -> bool:
        """Both index files are local (a seek into the segment downloads nothing else
        than the chunks it reads)."""
        return all(name in self._index_fds or os.path.exists(os.path.join(self.directory, name))
                   for name in (offset_index_name(self.base), time_index_name(self.base)))

    @property
    def offset_index_path(self) -> str:
        fd = self._index_fds.get(offset_index_name(self.base))
        return f"/proc/self/fd/{fd}" if fd is not None else super().offset_index_path

    @property
    def time_index_path(self) -> str:
        fd = self._index_fds.get(time_index_name(self.base))
        return f"/proc/self/fd/{fd}" if fd is not None else super().time_index_path

    def ensure_indexes(self) -> None:
        """Download the index files that are not local. Blocks on the network;
        thread-safe (it only writes files). Raises RemoteReadError."""
        for name, suffix, i in ((offset_index_name(self.base), ".index", 1),
                                (time_index_name(self.base), ".timeindex", 2)):
            if name in self._index_fds or os.path.exists(os.path.join(self.directory, name)):
                continue
            key = self.info.key(self.topic, self.log, suffix)
            try:
                data, _etag = self.source.objects.get(key)
            except ObjectStoreError as exc:
                raise RemoteReadError(f"index of remote segment {self.base} of {self.topic}/{self.log}: "
                                      f"{exc}") from None
            if hashlib.md5(data).hexdigest() != self.info.md5[i]:
                raise RemoteReadError(f"index {key} of remote segment {self.base} of "
                                      f"{self.topic}/{self.log}: checksum mismatch")
            self._keep_index(name, data)

    def _keep_index(self, name: str, data: bytes) -> None:
        """A verified index file into the cache directory; in memory if the disk is full."""
        path = os.path.join(self.directory, name)
        try:
            if write_unless_full(path, data):
                return
        except OSError as exc:
            raise RemoteReadError(f"remote segment {self.base} of {self.topic}/{self.log}: caching "
                                  f"index {name}: {exc.strerror or exc}") from None
        self.source.chunks.disk_full(path)
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.write(fd, data)
        if self._index_fds.setdefault(name, fd) != fd:  # another thread kept it first
            os.close(fd)

    def offset_index(self):  # type: ignore[override]
        if self._oindex is None:
            self.ensure_indexes()
        return super().offset_index()

    def time_index(self):  # type: ignore[override]
        if self._tindex is None:
            self.ensure_indexes()
        return super().time_index()

    def largest_timestamp(self) -> int | None:
        return self.info.last_ms

    @property
    def base_record(self) -> int:
        return self.info.base_record

    @property
    def starts_at_record_boundary(self) -> bool:
        return self.info.boundary

    # -- data: chunks ----------------------------------------------------------------
    def _chunk_path(self, i: int) -> str:
        return os.path.join(self.directory, f"c{i:06d}")

    def _chunk_len(self, i: int) -> int:
        return min(CHUNK_BYTES, self.size - i * CHUNK_BYTES)

    def missing(self, a: int, b: int) -> bool:
        """Some chunk of the segment-relative bytes [a, b) is not cached."""
        chunks = self.source.chunks
        for i in range(a // CHUNK_BYTES, (max(a, b - 1)) // CHUNK_BYTES + 1):
            if i * CHUNK_BYTES >= self.size:
                break
            if chunks.lookup(self._chunk_path(i)) is None:
                return True
        return False

    def fetch(self, a: int, b: int) -> None:
        """Bring the chunks of [a, b) into the cache (ranged GETs, each verified).
        Blocks on the network; thread-safe. Raises RemoteReadError."""
        for i in range(a // CHUNK_BYTES, (max(a, b - 1)) // CHUNK_BYTES + 1):
            if i * CHUNK_BYTES >= self.size:
                break
            self._held(i)

    def _held(self, i: int) -> _Held:
        chunks = self.source.chunks
        path = self._chunk_path(i)
        held = chunks.lookup(path)
        if held is not None:
            return held
        with self._fetch_lock:
            held = chunks.lookup(path)
            if held is not None:
                return held
            data = self._get_chunk(i)
            try:
                return chunks.store(path, data)
            except OSError as exc:
                raise RemoteReadError(f"remote segment {self.base} of {self.topic}/{self.log}: "
                                      f"caching chunk {i}: {exc.strerror or exc}") from None

    def _get_chunk(self, i: int) -> bytes:
        key = self.info.key(self.topic, self.log, ".log")
        want = self._chunk_len(i)
        for attempt in (1, 2):
            try:
                data = self.source.objects.get_range(key, i * CHUNK_BYTES, want)
            except ObjectStoreError as exc:
                raise RemoteReadError(f"remote segment {self.base} of {self.topic}/{self.log} "
                                      f"({key}): {exc}") from None
            if len(data) == want and crc32c.crc32c(data) == self.info.chunk_crcs[i]:
                return data
            logger.warning("remote segment %d of %s/%s (%s): chunk %d failed its checksum "
                           "(attempt %d)", self.base, self.topic, self.log, key, i, attempt)
        raise RemoteReadError(f"remote segment {self.base} of {self.topic}/{self.log} ({key}): "
                              f"chunk {i} (bytes {i * CHUNK_BYTES}-{i * CHUNK_BYTES + want - 1}) "
                              "does not match its checksum: the object is corrupt")

    def _chunk_fd(self, i: int) -> int:
        held = self._held(i)
        if held.memfd >= 0:
            return held.memfd
        entry = self._fds.get(i)
        if entry is None or entry.fd < 0:
            try:
                fd = os.open(self._chunk_path(i), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:  # evicted between the lookup and the open
                self.source.chunks.forget(self._chunk_path(i))
                held = self._held(i)
                if held.memfd >= 0:
                    return held.memfd
                fd = os.open(self._chunk_path(i), os.O_RDONLY | os.O_CLOEXEC)
            entry = _ChunkFd(fd, self.cache)
            self._fds[i] = entry
        self.cache.touch(entry)
        return entry.fd

    def pread(self, n: int, pos: int) -> bytes:
        parts = []
        end = min(self.size, pos + n)
        while pos < end:
            i = pos // CHUNK_BYTES
            take = min(end, (i + 1) * CHUNK_BYTES) - pos
            parts.append(os.pread(self._chunk_fd(i), take, pos - i * CHUNK_BYTES))
            pos += take
        return b"".join(parts)

    def ranges(self, a: int, n: int, limit: int) -> list[FileRange]:
        """Slices of chunk files holding the segment-relative bytes [a, a+n), at most
        *limit* of them. Fetches missing chunks (blocking) if the caller did not."""
        out: list[FileRange] = []
        end = min(self.size, a + n)
        while a < end and len(out) < limit:
            i = a // CHUNK_BYTES
            take = min(end, (i + 1) * CHUNK_BYTES) - a
            fd = self._chunk_fd(i)
            out.append(FileRange(self._chunk_path(i), fd, a - i * CHUNK_BYTES, take, self.base + a))
            a += take
        return out

    def fd(self) -> int:  # pragma: no cover - remote bytes are read by chunk
        raise OSError(errno.EIO, "a remote segment has no single descriptor", self.path)

    def release(self) -> None:
        for entry in self._fds.values():
            entry.release()
            self.cache.forget(entry)
        self._fds.clear()

    def close(self) -> None:
        self.release()
        super().close()
        for fd in self._index_fds.values():
            os.close(fd)
        self._index_fds.clear()

    def delete_files(self) -> None:  # pragma: no cover - retention of remote segments is tiering's
        raise OSError(errno.EPERM, "remote segments are deleted by tiering", self.path)

    def load_tail_state(self, size: int | None = None) -> None:
        return None

    def stat_size(self) -> int:
        return self.size
