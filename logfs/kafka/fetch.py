"""Fetch (long-poll) and ListOffsets.

Fetch reads whole lines from the record offset asked for and answers them as
RecordBatch v2, uncompressed, one batch per time-index interval so that each batch
carries the append time of its records (timestamp type LogAppendTime). When less than
``min_bytes`` is available it waits, up to ``max_wait``, for an append to any of the
partitions asked for: the log's writer wakes it (Broker.notify), never a timer.
High watermark = last stable offset = the number of complete records; a line still
being written is not offered.

Records in tiered segments (docs/tiered-storage.md) are fetched into the remote cache
from a worker thread before the answer is built (:func:`logfs.tier.task.fetch_remote`),
and so are the index files and the scanned chunk of the seek to the fetch offset
(``prepare_record_seek``) and the index files a ListOffsets by time reads: a Fetch of
old records does not stall the listener's other connections, nor the mount's FUSE
requests when the listener runs in the mount daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from logfs.core import Log, StorageError
from logfs.tier.task import fetch_remote, prepare_record_seek, prepare_time_seeks

from .errors import Err, KafkaError, error_of
from .records import encode_batch
from .wire import ms

if TYPE_CHECKING:
    from .context import BrokerContext

__all__ = ["FetchHandlers"]

LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3


class FetchHandlers:
    def __init__(self, broker: "BrokerContext") -> None:
        self.broker = broker

    # -- Fetch -------------------------------------------------------------------
    async def fetch(self, req: Any, version: int) -> dict:
        deadline = trio.current_time() + max(ms(req.max_wait), 0) / 1000
        min_bytes = max(req.min_bytes, 1)
        while True:
            await self._fetch_remote_parts(req)
            responses, total, keys, failed = self._fetch_once(req)
            if total >= min_bytes or failed or not keys or trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline):
                await self.broker.wakeups.wait(keys)
        return {"throttle_time": 0, "error_code": Err.NONE, "session_id": 0,
                "responses": responses}

    def _fetch_once(self, req: Any) -> tuple[list, int, list, bool]:
        budget = getattr(req, "max_bytes", 0x7FFFFFFF)
        total, keys, failed, responses = 0, [], False, []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                try:
                    lg = self._log(t.topic, p.partition)
                    keys.append((lg.topic, lg.name))
                    out, n = self._read(lg, p, budget, total == 0)
                except (KafkaError, StorageError) as exc:
                    code, msg = error_of(exc, f"fetch of {t.topic}/{p.partition}")
                    out, n, failed = _fetch_error(p.partition, code), 0, True
                parts.append(out)
                total += n
                budget -= n
            responses.append({"topic": t.topic, "partitions": parts})
        return responses, total, keys, failed

    async def _fetch_remote_parts(self, req: Any) -> None:
        """Bring what each partition's answer will read of remote segments into the
        cache, off the trio thread. An error is left to the read, which reports it."""
        budget = getattr(req, "max_bytes", 0x7FFFFFFF)
        for t in req.topics:
            for p in t.partitions:
                try:
                    lg = self._log(t.topic, p.partition)
                    local_start = lg.local_start_offset
                    if lg.start_offset >= local_start or \
                            not lg.start_record <= p.fetch_offset < lg.records:
                        continue  # no remote-only bytes (every untiered log), or nothing to read
                    await prepare_record_seek(lg, p.fetch_offset)  # index files, scanned chunk
                    pos = lg.record_position(p.fetch_offset)
                    if pos >= local_start:
                        continue
                    end = min(lg.complete_end, pos + max(min(p.partition_max_bytes, budget), 1))
                    budget -= end - pos
                    await fetch_remote(lg, pos, end, indexes=True)  # batches carry time marks
                except (KafkaError, StorageError):
                    continue

    def _log(self, name: str, partition: int) -> Log:
        kt = self.broker.topics.find(name)
        if kt is None or not 0 <= partition < kt.partitions:
            raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                             f"topic {name!r} partition {partition} does not exist")
        return self.broker.store.log(kt.topic, kt.logs[partition])

    def _read(self, lg: Log, p: Any, budget: int, first: bool) -> tuple[dict, int]:
        """One partition's answer and its record bytes. The first partition with data
        gets at least one whole record even past the limits (KIP-74)."""
        hw, start = lg.records, lg.start_record
        offset = p.fetch_offset
        out = {"partition_index": p.partition, "error_code": Err.NONE, "high_watermark": hw,
               "last_stable_offset": hw, "log_start_offset": start,
               "aborted_transactions": [], "preferred_read_replica": -1, "records": b""}
        if offset < start or offset > hw:
            out["error_code"] = Err.OFFSET_OUT_OF_RANGE
            return out, 0
        limit = min(p.partition_max_bytes, budget)
        if offset == hw or (limit <= 0 and not first):
            return out, 0
        pos = lg.record_position(offset)
        end = lg.complete_end
        data = lg.read(pos, min(end - pos, max(limit, 0)))
        cut = data.rfind(b"\n") + 1
        if not cut:  # one record larger than the limit: it goes whole
            data = lg.read(pos, lg.record_position(offset + 1) - pos)
            cut = len(data)
        out["records"] = self._batches(lg, data[:cut] if cut < len(data) else data, pos, offset)
        return out, cut

    @staticmethod
    def _batches(lg: Log, data: bytes, pos: int, offset: int) -> bytes:
        """RecordBatches of *data* (whole lines from byte *pos*, record *offset*), one
        per time-index interval: a mark inside a line cuts at that line's end."""
        marks = lg.time_marks(pos, pos + len(data)) or [(pos, 0)]
        cuts, times = [0], [marks[0][1]]
        for at, ts in marks[1:]:
            cut = data.rfind(b"\n", cuts[-1], at - pos) + 1
            if cut > cuts[-1]:
                cuts.append(cut)
                times.append(ts)
        cuts.append(len(data))
        view = memoryview(data)
        parts = []
        for i, ts in enumerate(times):
            a, b = cuts[i], cuts[i + 1]
            if b > a:
                batch, count = encode_batch(view[a:b], offset, ts)
                parts.append(batch)
                offset += count
        return b"".join(parts)

    # -- ListOffsets -------------------------------------------------------------
    async def list_offsets(self, req: Any, version: int) -> dict:
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                try:
                    lg = self._log(t.name, p.partition_index)
                    if p.timestamp >= 0:
                        await prepare_time_seeks(lg)  # remote index files, off this thread
                    offset, ts = self._offset_for(lg, p.timestamp)
                    parts.append({"partition_index": p.partition_index, "error_code": Err.NONE,
                                  "timestamp": ts, "offset": offset, "leader_epoch": 0})
                except (KafkaError, StorageError) as exc:
                    code, _msg = error_of(exc, f"list offsets of {t.name}/{p.partition_index}")
                    parts.append({"partition_index": p.partition_index, "error_code": code})
            topics.append({"name": t.name, "partitions": parts})
        return {"throttle_time": 0, "topics": topics}

    @staticmethod
    def _offset_for(lg: Log, timestamp: int) -> tuple[int, int]:
        """(offset, timestamp) ListOffsets answers for *timestamp* (or -1/-2/-3)."""
        if timestamp == LATEST:
            return lg.records, -1
        if timestamp == EARLIEST:
            return lg.start_record, -1
        last = lg.last_append_ms
        if timestamp == MAX_TIMESTAMP:
            n = lg.records
            return (n - 1, last if last is not None else -1) if n > lg.start_record else (-1, -1)
        if timestamp < 0:
            raise KafkaError(Err.INVALID_TIMESTAMP, f"timestamp {timestamp} is not a time")
        if last is None or timestamp > last:
            return -1, -1  # no record appended at or after it
        pos = lg.time_position(timestamp)
        offset = max(lg.record_at(pos), lg.start_record)
        if offset >= lg.records:
            return -1, -1
        marks = lg.time_marks(pos, pos + 1)
        return offset, (marks[0][1] if marks else timestamp)


def _fetch_error(partition: int, code: int) -> dict:
    return {"partition_index": partition, "error_code": code, "high_watermark": -1,
            "last_stable_offset": -1, "log_start_offset": -1, "aborted_transactions": None,
            "preferred_read_replica": -1, "records": None}
