"""kill -9 of `logfs kafka` while a producer is sending (SPEC §8, docs/kafka.md
"Acknowledgement and durability"): after a restart on the same DATA, every record the
producer got an ack for is there, what is there is exactly a prefix of what was sent
(at most the unacknowledged tail is missing; nothing twice, nothing torn), the log
ends on a line boundary, Kafka's high watermark agrees with the lines, and the
partition takes new records after them."""

from __future__ import annotations

import threading

import pytest

from kafka_kit import (CALL_TIMEOUT, ck_consume, ck_produce, ck_producer, offsets_values,
                       wait_for)

TOPIC = "crash"


class Sender(threading.Thread):
    """Produces c0000000, c0000001, ... until told to stop; keeps the acked indexes."""

    def __init__(self, bootstrap: str, start: int) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.next = bootstrap, start
        self.acked: list[int] = []
        self.failed = 0
        self.stop_flag = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = ck_producer(self.bootstrap, **{"acks": "all", "enable.idempotence": True,
                                               "linger.ms": 1, "batch.num.messages": 50,
                                               "message.timeout.ms": 3000})

            def report(i):
                def cb(err, _msg):
                    if err is None:
                        self.acked.append(i)
                    else:
                        self.failed += 1
                return cb

            while not self.stop_flag.is_set():
                try:
                    p.produce(TOPIC, value=f"c{self.next:07d}".encode(), partition=0,
                              on_delivery=report(self.next))
                    self.next += 1
                except BufferError:
                    p.poll(0.005)
                    continue
                if self.next % 20 == 0:
                    p.poll(0)
            p.purge()
            p.flush(3)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.done.set()


def segment_bytes(data) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((data / TOPIC / "0").glob("*.log")))


@pytest.mark.slow
def test_kill9_during_produce_keeps_every_acked_record(listener):
    ck_produce(listener.bootstrap, TOPIC, ["c-first"], 0)
    sent_before = 0
    for cycle in range(3):
        sender = Sender(listener.bootstrap, sent_before)
        sender.start()
        wait_for(lambda: len(sender.acked) >= 1500 or sender.error, CALL_TIMEOUT,
                 f"cycle {cycle}: 1500 acks")
        listener.kill9()  # mid-stream: the sender is still producing
        sender.stop_flag.set()
        assert sender.done.wait(CALL_TIMEOUT), "the producer did not stop"
        assert sender.error is None, sender.error
        sent_before = sender.next

        listener.start()
        raw = segment_bytes(listener.data)
        assert raw.endswith(b"\n"), f"torn tail after recovery: {raw[-40:]!r}"
        lines = raw.decode().splitlines()
        assert lines[0] == "c-first"
        got = [int(v[1:]) for v in lines[1:]]
        # exactly a prefix of what was sent, in order, each once
        assert got == list(range(len(got))), "not a prefix of the sent sequence"
        assert max(sender.acked) < len(got), (
            f"cycle {cycle}: ack for c{max(sender.acked):07d} but only {len(got)} records")
        assert len(got) <= sent_before
        # Kafka sees the same records; new ones go after them
        from confluent_kafka import TopicPartition

        from kafka_kit import ck_consumer
        c = ck_consumer(listener.bootstrap)
        try:
            lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        finally:
            c.close()
        assert (lo, hi) == (0, len(lines))
        tail = ck_consume(listener.bootstrap, TOPIC, 0, len(lines) - 1, 1)
        assert offsets_values(tail) == [(len(lines) - 1, lines[-1])]
        assert sender.failed > 0, "nothing was in flight at the kill: not during produce"
        sent_before = len(got)  # the next cycle continues after what is there
    ck_produce(listener.bootstrap, TOPIC, ["c-last"], 0)
    assert segment_bytes(listener.data).endswith(b"\nc-last\n")
