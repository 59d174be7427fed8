"""Produce and InitProducerId: record batches become one append each.

A partition's batches are decoded (records.py: CRC, decompression, one value per
record), checked (no null value, no ``\\n`` in a value: INVALID_RECORD, and nothing of
the batch is written), and appended as one contiguous write, never interleaved with
another producer's or with a line written through the mount: the append waits until
the log ends on a record boundary (a kernel-split write through the mount completes
within microseconds).

Idempotent producers: the broker keeps, per producer id and partition, the epoch and
the sequence ranges of the last five batches with their base offsets, in memory. A
retried batch is answered with its original offset and not written again; a gap in the
sequence is OUT_OF_ORDER_SEQUENCE_NUMBER. This state does not survive a restart of the
process (docs/kafka.md): a batch retried across a restart may be written twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from logfs.core import Log, StorageError

from .errors import Err, KafkaError, error_of
from .records import CorruptBatch, InvalidRecord, decode_batches

if TYPE_CHECKING:
    from .context import BrokerContext

__all__ = ["ProduceHandlers"]

log = logging.getLogger(__name__)

DEDUP_BATCHES = 5          # Kafka keeps the last five batches per producer and partition
TAIL_WAIT_S = 1.0          # how long a produce waits for a half-written line to complete
NO_TRANSACTIONS = "logfs does not support transactions (use an idempotent producer)"


@dataclass
class ProducerState:
    epoch: int
    batches: deque = field(default_factory=lambda: deque(maxlen=DEDUP_BATCHES))
    # each: (first sequence, last sequence, base offset)


class ProduceHandlers:
    def __init__(self, broker: "BrokerContext") -> None:
        self.broker = broker
        self.producers: dict[tuple[int, str, str], ProducerState] = {}
        self.next_producer_id = time.time_ns() // 1000  # unique across restarts

    async def init_producer_id(self, req: Any, version: int) -> dict:
        if req.transactional_id:
            return {"throttle_time": 0, "error_code": Err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "producer_id": -1, "producer_epoch": -1}
        pid, epoch = getattr(req, "producer_id", -1), getattr(req, "producer_epoch", -1)
        if pid >= 0 and epoch >= 0:  # KIP-360: bump the epoch of a known producer id
            return {"throttle_time": 0, "error_code": Err.NONE, "producer_id": pid,
                    "producer_epoch": (epoch + 1) & 0x7FFF}
        self.next_producer_id += 1
        return {"throttle_time": 0, "error_code": Err.NONE,
                "producer_id": self.next_producer_id, "producer_epoch": 0}

    async def produce(self, req: Any, version: int) -> dict | None:
        responses = []
        for t in req.topic_data:
            parts = []
            for p in t.partition_data:
                if req.transactional_id:
                    parts.append(_failed(p.index, Err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                                         NO_TRANSACTIONS))
                else:
                    parts.append(await self._partition(t.name, p.index, p.records or b""))
            responses.append({"name": t.name, "partition_responses": parts})
        if req.acks == 0:
            return None
        return {"responses": responses, "throttle_time": 0}

    async def _partition(self, name: str, index: int, records: bytes) -> dict:
        try:
            kt = self.broker.topic_handlers.find_or_create(name, True)
            if not 0 <= index < kt.partitions:
                raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"topic {name!r} has no partition {index}")
            if len(records) > self.broker.options.message_max_bytes:
                raise KafkaError(Err.MESSAGE_TOO_LARGE,
                                 f"a produce of {len(records)} bytes to {name}/{index} is larger "
                                 f"than message.max.bytes ({self.broker.options.message_max_bytes})")
            batch = _decode(records)
            lg = self.broker.store.log(kt.topic, kt.logs[index])
            return await self._append(lg, index, batch)
        except InvalidRecord as exc:
            log.warning("kafka: produce to %s/%d refused: %s", name, index, exc)
            out = _failed(index, Err.INVALID_RECORD, str(exc))
            out["record_errors"] = [{"batch_index": max(exc.index, 0),
                                     "batch_index_error_message": str(exc)}]
            return out
        except (KafkaError, StorageError) as exc:
            code, msg = error_of(exc, f"produce to {name}/{index}")
            if isinstance(exc, KafkaError):
                log.warning("kafka: produce to %s/%d refused: %s", name, index, msg)
            return _failed(index, code, msg)

    async def _append(self, lg: Log, index: int, batch: Any) -> dict:
        key = (batch.producer_id, lg.topic, lg.name)
        duplicate = self._check_sequence(key, batch)
        if duplicate is not None:
            return _done(index, duplicate, lg)
        await self._wait_for_record_boundary(lg)
        base = lg.records
        if batch.count:
            await self.broker.writer.append(lg, batch.data)  # appends before its first await
            self.broker.notify(lg.topic, lg.name)
        if batch.producer_id >= 0 and batch.base_sequence >= 0:
            st = self.producers.setdefault(key, ProducerState(batch.producer_epoch))
            st.batches.append((batch.base_sequence, batch.last_sequence, base))
        return _done(index, base, lg)

    def _check_sequence(self, key: tuple[int, str, str], batch: Any) -> int | None:
        """The base offset of an already written duplicate, None for a batch to write.
        Raises KafkaError for a fenced epoch or a sequence gap."""
        if batch.producer_id < 0 or batch.base_sequence < 0:
            return None
        st = self.producers.get(key)
        if st is None:
            return None  # a new producer, or one this process has not seen (a restart)
        if batch.producer_epoch < st.epoch:
            raise KafkaError(Err.INVALID_PRODUCER_EPOCH,
                             f"producer {batch.producer_id} epoch {batch.producer_epoch} is "
                             f"older than {st.epoch}")
        if batch.producer_epoch > st.epoch:
            st.epoch, st.batches = batch.producer_epoch, deque(maxlen=DEDUP_BATCHES)
            return None
        for first, last, base in st.batches:
            if first == batch.base_sequence and last == batch.last_sequence:
                log.info("kafka: duplicate batch of producer %d (sequence %d) not written again",
                         batch.producer_id, first)
                return base
        if st.batches and batch.base_sequence != (st.batches[-1][1] + 1) & 0x7FFFFFFF:
            raise KafkaError(Err.OUT_OF_ORDER_SEQUENCE_NUMBER,
                             f"producer {batch.producer_id}: sequence {batch.base_sequence} "
                             f"after {st.batches[-1][1]}")
        return None

    async def _wait_for_record_boundary(self, lg: Log) -> None:
        deadline = trio.current_time() + TAIL_WAIT_S
        while lg.complete_end != lg.end_offset:
            if trio.current_time() >= deadline:
                raise KafkaError(Err.KAFKA_STORAGE_ERROR,
                                 f"log {lg.topic}/{lg.name} ends inside a line written without "
                                 "its newline: finish it (echo >>) before producing")
            with trio.move_on_at(deadline):
                await self.broker.wakeups.wait([(lg.topic, lg.name)])


def _decode(records: bytes) -> Any:
    try:
        batch = decode_batches(records)
    except CorruptBatch as exc:
        raise KafkaError(Err.CORRUPT_MESSAGE, str(exc)) from None
    if batch.control or batch.transactional:
        raise KafkaError(Err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, NO_TRANSACTIONS)
    return batch


def _failed(index: int, code: int, message: str) -> dict:
    return {"index": index, "error_code": code, "base_offset": -1, "log_append_time": -1,
            "log_start_offset": -1, "record_errors": [], "error_message": message}


def _done(index: int, base: int, lg: Log) -> dict:
    return {"index": index, "error_code": Err.NONE, "base_offset": base,
            "log_append_time": time.time_ns() // 1_000_000, "log_start_offset": lg.start_record,
            "record_errors": [], "error_message": None}
