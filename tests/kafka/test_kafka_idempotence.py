"""Idempotent producers write each record exactly once (docs/kafka.md "Idempotent
producers"), even when the network loses the broker's answers and the producer sends
the same batches again: a proxy (kafka_kit.DropProxy) in front of the mount's
listener drops the answers to the first Produce requests. Counted with wc -l on the
mount. The control: a producer without idempotence, through the same proxy, writes
the retried batches twice, as it would to Kafka."""

from __future__ import annotations

import pytest

from kafka_kit import DropProxy, ck_produce, kp_produce, q, sh

N = 2000


@pytest.fixture
def lossy(kmount_factory):
    """(mount, proxy): the mount's listener advertises the proxy, which drops the
    answers to the first three Produce requests."""
    proxy = DropProxy(drops=3)
    try:
        m = kmount_factory(f"kafka.advertise={proxy.address}")
        proxy.start(m.bootstrap)
        yield m, proxy
    finally:
        proxy.stop()


def wc_l(m, topic: str) -> int:
    return int(sh(f"wc -l < {q(m.p(topic, '0'))}").stdout)


def lines(m, topic: str) -> list[str]:
    return sh(f"cat {q(m.p(topic, '0'))}").stdout.splitlines()


VALUES = [f"r{i:05d}" for i in range(N)]


def test_confluent_idempotent_exactly_once(lossy):
    m, proxy = lossy
    reports = ck_produce(proxy.address, "idem", VALUES, 0, **{
        "enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 100})
    assert proxy.dropped == 3, (proxy.dropped, proxy.produce_requests)
    assert wc_l(m, "idem") == N
    assert lines(m, "idem") == VALUES
    assert sorted(off for _e, _p, off in reports) == list(range(N))


def test_kafka_python_default_is_idempotent_exactly_once(lossy):
    m, proxy = lossy
    mds = kp_produce(proxy.address, "idem", VALUES, 0, batch_size=2000, linger_ms=2,
                     retry_backoff_ms=20)
    assert proxy.dropped == 3, (proxy.dropped, proxy.produce_requests)
    assert wc_l(m, "idem") == N
    assert lines(m, "idem") == VALUES
    assert sorted(md.offset for md in mds) == list(range(N))


def test_without_idempotence_a_retry_writes_twice(lossy):
    """The control that shows the proxy works: the lost answers' batches land twice."""
    m, proxy = lossy
    ck_produce(proxy.address, "plain", VALUES, 0, **{
        "enable.idempotence": False, "linger.ms": 2, "batch.num.messages": 100,
        "max.in.flight.requests.per.connection": 1})
    assert proxy.dropped == 3
    got = lines(m, "plain")
    assert len(got) > N and set(got) == set(VALUES)
