"""Tiering: copy sealed segments to the object store, commit them in the log's
manifest, and apply retention to the remote segments (KIP-405's RemoteLogManager).

One pass over a log has three steps, so that the network never runs on the thread
that owns the log (the mount's trio thread):

1. :meth:`Tiering.plan` (owner thread, no I/O): which sealed local segments are not
   in the manifest yet, which remote segments retention.* has expired;
2. :meth:`Tiering.execute` (any thread): read the manifest once, upload each
   segment's three files (each PUT carries Content-MD5, so the server checks the
   bytes; the answer's size and ETag are checked again), commit the new manifest with
   a conditional PUT (If-Match the ETag read, If-None-Match for the first), then
   delete what it no longer names;
3. :meth:`Tiering.finish` (owner thread): install the committed manifest in the log,
   then run the log's retention, which may now delete local copies
   (local.retention.*; never one the manifest does not hold).

A crash anywhere leaves either the old manifest (the uploads are orphans, deleted
by the next pass, which uploads again under a new id) or the new one (its segments
are whole and verified). A segment is never counted twice: the manifest is keyed by
base offset and its entries are contiguous. When the object store is unreachable,
appends go on; the pass is retried with backoff (1 s doubling to 60 s) and the
backlog shows in ``describe``. A lost conditional PUT means another writer: tiering
of that log stops, with one error line, and nothing local is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field

import crc32c

from .clock import Clock
from .log import Log
from .fileio import read_json, write_json_atomic
from .naming import REMOTE_CONFIG_FILE, STORE_META_DIR
from .manifest import CHUNK_BYTES, Manifest, RemoteSegmentInfo, log_prefix, manifest_key, parse_segment_key
from .objectstore import ObjectNotFound, ObjectStore, ObjectStoreError, PreconditionFailed

logger = logging.getLogger(__name__)

MAX_UPLOADS_PER_PASS = 4
BACKOFF_MIN_MS = 1000
BACKOFF_MAX_MS = 60_000


@dataclass(frozen=True)
class UploadJob:
    base: int
    size: int
    base_record: int
    records: int
    boundary: bool
    first_ms: int | None
    last_ms: int | None
    paths: tuple[str, str, str]  # .log, .index, .timeindex


@dataclass
class TierPlan:
    topic: str
    log: str
    uploads: list[UploadJob]
    drop_below: int | None  # remote segments ending at or below this go (retention.*)
    end: int


@dataclass
class TierResult:
    plan: TierPlan
    manifest: Manifest | None = None  # as committed (or read), None if unchanged/unknown
    uploaded: list[RemoteSegmentInfo] = field(default_factory=list)
    dropped: list[RemoteSegmentInfo] = field(default_factory=list)
    error: str | None = None
    transient: bool = True
    seconds: float = 0.0


@dataclass
class LogTierState:
    manifest: Manifest | None = None
    loaded: bool = False  # the bucket's manifest was read since the start
    failures: int = 0
    next_try_ms: int = 0
    last_error: str | None = None
    stopped: bool = False  # another writer, or a permanent error: no more passes
    uploaded_segments: int = 0
    uploaded_bytes: int = 0


class Tiering:
    """The writer's tiering of every tiered log of one store to *objects*."""

    def __init__(self, objects: ObjectStore, store_id: str, clock: Clock) -> None:
        self.objects = objects
        self.store_id = store_id
        self.clock = clock
        self._states: dict[tuple[str, str], LogTierState] = {}

    def state(self, log: Log) -> LogTierState:
        return self._states.setdefault((log.topic, log.name), LogTierState())

    # -- 1. owner thread ------------------------------------------------------------
    def plan(self, log: Log, now_ms: int) -> TierPlan | None:
        """What a pass over *log* would do, or None (not tiered, backing off, done)."""
        cfg = log.config
        st = self.state(log)
        if not cfg.tiered or st.stopped or now_ms < st.next_try_ms:
            return None
        segments = log.segments()
        manifest = st.manifest
        have = manifest.end if manifest is not None and manifest.segments else None
        uploads = []
        for seg, after in zip(segments, segments[1:]):  # sealed ones, each with its successor
            if seg.remote or (have is not None and seg.base < have):
                continue
            first = seg.time_index().get(0) if seg.time_index().count else None
            uploads.append(UploadJob(seg.base, seg.size, seg.base_record,
                                     after.base_record - seg.base_record, seg.starts_at_record_boundary,
                                     first[0] if first else None, seg.largest_timestamp(),
                                     (seg.path, seg.offset_index_path, seg.time_index_path)))
            if len(uploads) >= MAX_UPLOADS_PER_PASS:
                break
        drop_below = self._expired_below(log, manifest, now_ms)
        if st.loaded and not uploads and drop_below is None:
            return None
        return TierPlan(log.topic, log.name, uploads, drop_below, log.end_offset)

    @staticmethod
    def _expired_below(log: Log, manifest: Manifest | None, now_ms: int) -> int | None:
        """The end of the newest remote segment retention.* has expired, or None."""
        if manifest is None or not manifest.segments:
            return None
        cfg = log.config
        end = log.end_offset
        below = None
        for seg in manifest.segments:
            by_bytes = cfg.retention_bytes >= 0 and end - seg.end >= cfg.retention_bytes
            by_time = cfg.retention_ms >= 0 and seg.last_ms is not None and now_ms - seg.last_ms > cfg.retention_ms
            if not (by_bytes or by_time) or seg.end >= end:
                break
            below = seg.end
        return below

    # -- 2. any thread -----------------------------------------------------------------
    def execute(self, plan: TierPlan, state: LogTierState) -> TierResult:
        """The network part of a pass (blocking). Never raises ObjectStoreError: the
        result says what failed."""
        t0 = time.monotonic()
        result = TierResult(plan)
        try:
            manifest = state.manifest
            if not state.loaded:
                manifest = self._read_manifest(plan.topic, plan.log)
                if manifest is not None and manifest.writer and manifest.writer != self.store_id:
                    result.error = (f"{self.objects.description}/{manifest_key(plan.topic, plan.log)} is "
                                    f"written by another store ({manifest.writer}); tiering of "
                                    f"{plan.topic}/{plan.log} stops")
                    result.transient = False
                    return result
                self._delete_orphans(plan.topic, plan.log, manifest)
                result.manifest = manifest
            segments = list(manifest.segments) if manifest is not None else []
            have = segments[-1].end if segments else None
            for job in plan.uploads:
                if have is not None and job.base < have:
                    continue  # the bucket's manifest already holds it (a pass before a crash)
                if have is not None and job.base != have:
                    segments = []  # a gap: what lies before was deleted by retention.*
                info = self._upload(plan.topic, plan.log, job)
                segments.append(info)
                result.uploaded.append(info)
                have = info.end
            if plan.drop_below is not None:
                result.dropped = [s for s in segments if s.end <= plan.drop_below]
                segments = [s for s in segments if s.end > plan.drop_below]
            if result.uploaded or result.dropped or (manifest is None and segments):
                result.manifest = self._commit(plan.topic, plan.log, manifest, segments)
            for info in result.dropped:
                self._delete_segment(plan.topic, plan.log, info)
        except PreconditionFailed as exc:
            result.error = (f"the manifest of {plan.topic}/{plan.log} changed under us ({exc}): another "
                            "writer uses this bucket and prefix; tiering of the log stops")
            result.transient = False
        except ObjectStoreError as exc:
            result.error = str(exc)
            result.transient = exc.transient
        except OSError as exc:  # reading a local segment file
            result.error = f"reading a segment of {plan.topic}/{plan.log}: {exc.strerror or exc}"
        result.seconds = time.monotonic() - t0
        return result

    def _read_manifest(self, topic: str, log: str) -> Manifest | None:
        try:
            data, etag = self.objects.get(manifest_key(topic, log))
        except ObjectNotFound:
            return None
        return Manifest.decode(data, etag)

    def _upload(self, topic: str, log: str, job: UploadJob) -> RemoteSegmentInfo:
        seg_id = uuid.uuid4().hex[:12]
        md5s, sizes = [], []
        crcs: list[int] = []
        for path, suffix in zip(job.paths, (".log", ".index", ".timeindex")):
            md5, size = _digest(path, crcs if suffix == ".log" else None)
            if suffix == ".log" and size != job.size:
                raise OSError(f"{path} is {size} bytes, {job.size} expected")
            key = f"{log_prefix(topic, log)}segments/{job.base:020d}-{seg_id}{suffix}"
            got = self.objects.put_file(key, path, md5)
            # the MD5 was checked by the server (Content-MD5) or by the adapter (a plain
            # ETag; SSE-KMS and SSE-C ETags are not MD5s): the size is left to check
            if got.size != size:
                raise ObjectStoreError(f"upload of {key} does not verify: {got.size} bytes "
                                       f"stored, {size} bytes sent")
            md5s.append(md5)
            sizes.append(size)
        return RemoteSegmentInfo(job.base, job.size, job.base_record, job.records, job.boundary,
                                 job.first_ms, job.last_ms, seg_id, tuple(md5s), tuple(sizes),  # type: ignore[arg-type]
                                 tuple(crcs), self.clock.now_ms())

    def _commit(self, topic: str, log: str, old: Manifest | None,
                segments: list[RemoteSegmentInfo]) -> Manifest:
        new = Manifest(topic, log, self.store_id, segments)
        if old is None or old.etag is None:
            info = self.objects.put_bytes(manifest_key(topic, log), new.encode(), if_none_match=True)
        else:
            info = self.objects.put_bytes(manifest_key(topic, log), new.encode(), if_match=old.etag)
        new.etag = info.etag
        return new

    def _delete_segment(self, topic: str, log: str, info: RemoteSegmentInfo) -> None:
        for suffix in (".log", ".index", ".timeindex"):
            self.objects.delete(info.key(topic, log, suffix))

    def _delete_orphans(self, topic: str, log: str, manifest: Manifest | None) -> None:
        """Objects of uploads a crash interrupted (no manifest names them)."""
        named = {(s.base, s.id) for s in manifest.segments} if manifest is not None else set()
        prefix = log_prefix(topic, log)
        for key in list(self.objects.list(prefix + "segments/")):
            parsed = parse_segment_key(key[len(prefix):])
            if parsed is not None and (parsed[0], parsed[1]) not in named:
                logger.info("tiering: deleting %s (an upload no manifest names)", key)
                self.objects.delete(key)

    # -- 3. owner thread -----------------------------------------------------------------
    def finish(self, log: Log, result: TierResult) -> list[str]:
        """Install what the pass committed; retention may then delete local copies.
        Returns one line per action."""
        st = self.state(log)
        lines: list[str] = []
        first_load = not st.loaded and result.manifest is not None
        if result.error is None:
            st.loaded = True
        if result.manifest is not None or (result.error is None and st.manifest is None):
            st.manifest = result.manifest
            if result.manifest is not None:
                log.install_manifest(result.manifest)
        for info in result.uploaded:
            st.uploaded_segments += 1
            st.uploaded_bytes += info.size
            lines.append(f"tiering: uploaded {log.topic}/{log.name} segment {info.base} "
                         f"({info.size} bytes, id {info.id})")
        for info in result.dropped:
            lines.append(f"tiering: retention deleted remote segment {info.base} of "
                         f"{log.topic}/{log.name} ({info.size} bytes)")
        if result.error is not None:
            st.failures += 1
            st.last_error = result.error
            if not result.transient:
                st.stopped = True
                logger.error("tiering: %s", result.error)
            else:
                delay = min(BACKOFF_MAX_MS, BACKOFF_MIN_MS << min(st.failures - 1, 6))
                st.next_try_ms = self.clock.now_ms() + delay
                logger.warning("tiering of %s/%s: %s (retrying in %.0f s)", log.topic, log.name,
                               result.error, delay / 1000)
        else:
            st.failures = 0
            st.last_error = None
            st.next_try_ms = 0
        for line in lines:
            logger.info("%s", line)
        # (a first load too: a commit whose local bookkeeping a kill cut short)
        if result.uploaded or result.dropped or first_load:
            log.apply_retention(self.clock.now_ms())
            lines.extend(log.pop_events())
        return lines

    def run_pass(self, log: Log) -> list[str]:
        """All three steps on this thread (tests, the CLI)."""
        plan = self.plan(log, self.clock.now_ms())
        if plan is None:
            return []
        return self.finish(log, self.execute(plan, self.state(log)))

    def describe(self, log: Log) -> dict:
        """What the uploader did for *log* and why it waits, JSON-ready (the backlog itself
        is the log's: Log.describe)."""
        st = self.state(log)
        return {"uploaded_segments": st.uploaded_segments, "uploaded_bytes": st.uploaded_bytes,
                "tiering_error": st.last_error, "tiering_stopped": st.stopped}


def _digest(path: str, crcs: list[int] | None) -> tuple[str, int]:
    """MD5 (hex) and size of *path*; with *crcs*, the CRC-32C of every chunk too."""
    md5 = hashlib.md5()
    size = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            block = f.read(CHUNK_BYTES)
            if not block:
                break
            md5.update(block)
            if crcs is not None:
                crcs.append(crc32c.crc32c(block))
            size += len(block)
    return md5.hexdigest(), size


def remote_config_path(data_dir: str) -> str:
    return os.path.join(data_dir, STORE_META_DIR, REMOTE_CONFIG_FILE)


def read_remote_config(data_dir: str) -> dict:
    """DATA/.logfs/remote.json: ``url``, ``endpoint``, ``store_id`` ({} if none).
    Raises OSError."""
    return read_json(remote_config_path(data_dir))


def write_remote_config(data_dir: str, url: str, endpoint: str | None, replica: bool = False) -> dict:
    """Record where *data_dir* tiers to (the mount's -o remote=), keeping its store id
    (a new one the first time). Readers (``logfs serve DATA``) find it there. Raises
    OSError."""
    current = read_remote_config(data_dir)
    value = {"url": url, "endpoint": endpoint, "replica": replica,
             "store_id": current.get("store_id") or uuid.uuid4().hex}
    if value != current:
        os.makedirs(os.path.dirname(remote_config_path(data_dir)), exist_ok=True)
        write_json_atomic(remote_config_path(data_dir), value)
    return value


def remote_store_id(data_dir: str) -> str:
    """This store's id, written into every manifest it commits (writes remote.json
    with a new id if there is none)."""
    current = read_remote_config(data_dir)
    if current.get("store_id"):
        return str(current["store_id"])
    value = dict(current, store_id=uuid.uuid4().hex)
    os.makedirs(os.path.dirname(remote_config_path(data_dir)), exist_ok=True)
    write_json_atomic(remote_config_path(data_dir), value)
    return value["store_id"]
