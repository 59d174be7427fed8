"""Produce, then consume one fixed partition from the beginning, from an offset, from a
timestamp and from the end, with each of the three clients against `logfs kafka`
(docs/kafka.md: Kafka offset = record number, timestamps are append times, a value is
a line without its newline)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kafka_kit import (CLIENTS, ck_consume, ck_consumer, ck_create_topic, ck_poll, ck_produce,
                       ck_quiet, offsets_values)

TOPIC = "pc"
PART = 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def log_lines(data: Path, topic: str, log: str) -> list[str]:
    """The log's bytes straight from its segment files (SPEC §7), as lines."""
    raw = b"".join(p.read_bytes() for p in sorted((data / topic / log).glob("*.log")))
    assert raw == b"" or raw.endswith(b"\n"), raw[-50:]
    return raw.decode().splitlines()




@pytest.fixture
def served(listener):
    """A listener with topic pc (2 partitions), whose time index has an entry at every
    append (index.interval.bytes=1): time seeks are exact to the append."""
    ck_create_topic(listener.bootstrap, TOPIC, 2, {"index.interval.bytes": "1"})
    return listener


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.name)
def test_produce_then_consume_every_way(served, client):
    bs = served.bootstrap
    first = [f"a{i}" for i in range(5)]
    offsets = client.produce(bs, TOPIC, first, PART)
    if offsets is not None:
        assert offsets == [0, 1, 2, 3, 4]
    assert offsets_values(client.consume(bs, TOPIC, PART, "beginning", 5)) == list(
        enumerate(first))
    assert offsets_values(client.consume(bs, TOPIC, PART, 3, 2)) == [(3, "a3"), (4, "a4")]

    time.sleep(0.03)
    t = now_ms()
    time.sleep(0.03)
    later = ["b0", "b1", "b2"]
    client.produce(bs, TOPIC, later, PART)
    got = client.from_time(bs, TOPIC, PART, t, 3)
    assert offsets_values(got) == [(5, "b0"), (6, "b1"), (7, "b2")]
    assert all(r.timestamp >= t for r in got), [r.timestamp for r in got]
    assert all(r.timestamp < t for r in client.consume(bs, TOPIC, PART, "beginning", 5))

    start, got = client.tail(bs, TOPIC, PART,
                             lambda: client.produce(bs, TOPIC, ["c0", "c1"], PART), 2)
    assert start == 8
    assert offsets_values(got) == [(8, "c0"), (9, "c1")]

    assert all(r.partition == PART and r.key is None for r in got)
    assert log_lines(served.data, TOPIC, "1") == first + later + ["c0", "c1"]
    assert log_lines(served.data, TOPIC, "0") == []


def test_keys_and_headers_accepted_not_stored(served):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": served.bootstrap, "linger.ms": 0})
    errors = []
    p.produce(TOPIC, key=b"k1", value=b"v1", partition=0, headers=[("h", b"x")],
              on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(10) == 0 and errors == [None]
    (rec,) = ck_consume(served.bootstrap, TOPIC, 0, 0, 1)
    assert (rec.offset, rec.value, rec.key, rec.headers) == (0, "v1", None, ())
    assert log_lines(served.data, TOPIC, "0") == ["v1"]


def test_offsets_past_the_end_and_empty_values(served):
    """An empty value is an empty line; ListOffsets latest/earliest are the record
    bounds; a fetch past the end is OFFSET_OUT_OF_RANGE, which auto.offset.reset
    turns into the end."""
    from confluent_kafka import TopicPartition
    ck_produce(served.bootstrap, TOPIC, ["", "x", ""], 0)
    assert log_lines(served.data, TOPIC, "0") == ["", "x", ""]
    c = ck_consumer(served.bootstrap, **{"auto.offset.reset": "latest"})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        assert (lo, hi) == (0, 3)
        c.assign([TopicPartition(TOPIC, 0, 100)])
        assert ck_quiet(c, 1.0) == []  # out of range: reset to the end, nothing before it
        ck_produce(served.bootstrap, TOPIC, ["after"], 0)
        assert offsets_values(ck_poll(c, 1)) == [(3, "after")]
    finally:
        c.close()
    assert offsets_values(ck_consume(served.bootstrap, TOPIC, 0, 0, 3)) == [
        (0, ""), (1, "x"), (2, "")]


def test_time_seek_exact_with_default_index_interval(listener):
    """Two produces 100 ms apart; a time between them must find the second."""
    from confluent_kafka import TopicPartition
    bs = listener.bootstrap
    ck_produce(bs, "ts", ["a0", "a1", "a2"], 0)
    time.sleep(0.05)
    t = now_ms()
    time.sleep(0.05)
    ck_produce(bs, "ts", ["b0", "b1"], 0)
    c = ck_consumer(bs)
    try:
        (tp,) = c.offsets_for_times([TopicPartition("ts", 0, t)], timeout=10)
    finally:
        c.close()
    assert tp.offset == 3
