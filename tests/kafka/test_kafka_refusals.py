"""What the listener refuses, and how clients see it (docs/kafka.md "Values, keys,
headers", "Not supported", "Creating topics"): a value holding a newline and a null
value are INVALID_RECORD and nothing of their batch is written; a transactional
producer gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED ("logfs does not support
transactions"); with auto-create off, a produce to a missing topic fails cleanly and
creates nothing; a produce beyond message.max.bytes is MESSAGE_TOO_LARGE."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kafka_kit import ck_produce, ck_producer, kcat, kp_producer, offsets_values, q, sh


def segment_bytes(data: Path, topic: str, log: str = "0") -> bytes:
    return b"".join(p.read_bytes() for p in sorted((data / topic / log).glob("*.log")))


BATCHES = {"newline": ["ok1", "bad\nline", "ok2"], "null": ["ok1", None, "ok2"]}


@pytest.mark.parametrize("kind", sorted(BATCHES))
def test_confluent_invalid_record_refuses_whole_batch(listener, kind):
    from confluent_kafka import KafkaError
    bs = listener.bootstrap
    ck_produce(bs, kind, ["before"], 0)
    reports = ck_produce(bs, kind, BATCHES[kind], 0, check=False, one_batch=True,
                         **{"retries": 0})
    codes = [err.code() if err else None for err, _p, _o in reports]
    assert codes == [KafkaError.INVALID_RECORD] * 3, reports
    assert segment_bytes(listener.data, kind) == b"before\n"
    ck_produce(bs, kind, ["after"], 0)  # the partition still takes good batches
    assert segment_bytes(listener.data, kind) == b"before\nafter\n"
    assert ("newline" if kind == "newline" else "null value") in listener.stderr()


@pytest.mark.parametrize("kind", sorted(BATCHES))
def test_kafka_python_invalid_record_refuses_whole_batch(listener, kind):
    """kafka-python reads record_errors: the record to blame (index 1) fails with
    InvalidRecordError and the listener's message, its batch mates with KafkaError."""
    from kafka.errors import InvalidRecordError, KafkaError
    bs = listener.bootstrap
    p = kp_producer(bs, linger_ms=200, retries=0)
    try:
        futures = [p.send(kind, key=b"k", value=None if v is None else v.encode(), partition=0)
                   for v in BATCHES[kind]]  # a null value needs a key in kafka-python
        p.flush(15)
        failures = []
        for f in futures:
            with pytest.raises(KafkaError) as info:
                f.get(15)
            failures.append(info.value)
    finally:
        p.close(5)
    assert [type(e) is InvalidRecordError for e in failures] == [False, True, False]
    assert ("newline" if kind == "newline" else "null") in str(failures[1])
    assert segment_bytes(listener.data, kind) == b""


def test_kcat_newline_and_null_values_refused(listener):
    bs = listener.bootstrap
    r = kcat(bs, "-P", "-t", "nl", "-p", "0", "-D", "|", "-X", "linger.ms=200",
             input="ok1|bad\nline|ok2|", check=False)
    assert r.stderr.count("Delivery failed") == 3 and "validate record" in r.stderr, r.stderr
    assert r.returncode != 0
    assert segment_bytes(listener.data, "nl") == b""
    # -K: with -Z: key k1, empty value sent as NULL
    r = kcat(bs, "-P", "-t", "nul", "-p", "0", "-D", "|", "-K", ":", "-Z", input="k1:|",
             check=False)
    assert "Delivery failed" in r.stderr and "validate record" in r.stderr, r.stderr
    assert segment_bytes(listener.data, "nul") == b""


def test_newline_refused_through_a_mount_leaves_the_file(kmount):
    """The same refusal in a mount's listener: cat shows nothing of the batch."""
    from confluent_kafka import KafkaError
    os.mkdir(kmount.p("T"))
    sh(f"touch {q(kmount.p('T', 'eu'))}")
    reports = ck_produce(kmount.bootstrap, "T.eu", ["a", "b\nc"], 0, check=False,
                         one_batch=True, **{"retries": 0})
    assert [e.code() for e, _p, _o in reports] == [KafkaError.INVALID_RECORD] * 2
    assert sh(f"cat {q(kmount.p('T', 'eu'))}").stdout == ""


def test_confluent_transactional_producer_refused(listener):
    from confluent_kafka import KafkaError, KafkaException
    p = ck_producer(listener.bootstrap, **{"transactional.id": "tx-1"})
    with pytest.raises(KafkaException) as info:
        p.init_transactions(10)
    err = info.value.args[0]
    assert err.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, err
    assert not os.listdir(listener.data) or os.listdir(listener.data) == [".logfs"]


def test_kafka_python_transactional_producer_refused(listener):
    from kafka.errors import TransactionalIdAuthorizationFailedError
    p = kp_producer(listener.bootstrap, transactional_id="tx-2")
    try:
        with pytest.raises(TransactionalIdAuthorizationFailedError):
            p.init_transactions()
    finally:
        p.close(5)


def test_transactional_produce_request_refused_with_message(listener):
    """A Produce carrying a transactional id (sent by hand: clients stop earlier) is
    refused per partition with the clear message, and nothing is written."""
    import socket
    import struct

    from kafka_kit import frame, read_response
    ck_produce(listener.bootstrap, "tx", ["x"], 0)
    tid, topic = b"tx-3", b"tx"
    # Produce v3: transactional_id, acks, timeout, [topic [partition records]]
    body = struct.pack(">h", len(tid)) + tid + struct.pack(">hi", -1, 5000)
    body += struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic
    body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", 0)  # empty records
    head = struct.pack(">hhih", 0, 3, 77, 4) + b"test"
    with socket.create_connection((listener.host, listener.port), timeout=5) as s:
        s.sendall(frame(head + body))
        resp = read_response(s)
    corr, n_topics = struct.unpack_from(">ii", resp)
    assert (corr, n_topics) == (77, 1)
    pos = 8
    (nlen,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + nlen
    _n_parts, index, code = struct.unpack_from(">iih", resp, pos)
    assert (index, code) == (0, 53)  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert segment_bytes(listener.data, "tx") == b"x\n"


@pytest.mark.slow
def test_no_auto_create_listener(listener_factory):
    from confluent_kafka import KafkaError
    lst = listener_factory("--no-auto-create")
    reports = ck_produce(lst.bootstrap, "missing", ["x"], 0, check=False,
                         **{"message.timeout.ms": 1000})
    (err, _p, _o), = reports
    assert err is not None and err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                              KafkaError._UNKNOWN_TOPIC, KafkaError._MSG_TIMED_OUT)
    r = kcat(lst.bootstrap, "-P", "-t", "missing", "-p", "0", "-X", "message.timeout.ms=1000",
             input="y\n", check=False)
    # librdkafka waits for the topic to appear until the message times out
    assert r.returncode != 0 and "Delivery failed" in r.stderr, r.stderr
    from kafka.errors import KafkaTimeoutError
    p = kp_producer(lst.bootstrap, max_block_ms=1000)
    try:
        with pytest.raises(KafkaTimeoutError):
            p.send("missing", b"z").get(5)
    finally:
        p.close(5)
    assert not (lst.data / "missing").exists()
    assert lst.alive()
    # an existing topic is still served
    from confluent_kafka.admin import NewTopic

    from kafka_kit import ck_admin, ck_consume
    admin = ck_admin(lst.bootstrap)
    admin.create_topics([NewTopic("made", 1, 1)], request_timeout=10)["made"].result(15)
    ck_produce(lst.bootstrap, "made", ["ok"], 0)
    assert offsets_values(ck_consume(lst.bootstrap, "made", 0, 0, 1)) == [(0, "ok")]


def test_no_auto_create_mount(kmount_factory):
    from confluent_kafka import KafkaError

    from kafka_kit import ck_admin
    m = kmount_factory("kafka.auto_create=false")
    r = kcat(m.bootstrap, "-P", "-t", "missing", "-p", "0", "-X", "message.timeout.ms=1000",
             input="y\n", check=False)
    assert r.returncode != 0 and "Delivery failed" in r.stderr, r.stderr
    md = ck_admin(m.bootstrap).list_topics("missing", timeout=10)
    assert md.topics["missing"].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert os.listdir(m.mnt) == []
    os.mkdir(m.p("here"))
    sh(f"touch {q(m.p('here', '0'))}")
    assert set(ck_admin(m.bootstrap).list_topics(timeout=10).topics) == {"here"}
    ck_produce(m.bootstrap, "here", ["fine"], 0)  # an existing topic still takes records
    assert sh(f"cat {q(m.p('here', '0'))}").stdout == "fine\n"
    assert os.listdir(m.mnt) == ["here"]


def test_message_too_large(listener):
    from confluent_kafka import KafkaError
    big = "x" * 1_060_000  # beyond message.max.bytes (1 MiB), within the frame's headroom
    reports = ck_produce(listener.bootstrap, "big", [big], 0, check=False,
                         **{"message.max.bytes": 2_000_000, "retries": 0})
    (err, _p, _o), = reports
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    assert segment_bytes(listener.data, "big") == b""
