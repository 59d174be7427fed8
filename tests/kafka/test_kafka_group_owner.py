"""One consumer of a group at a time, whatever kind (docs/kafka.md "Consumer groups",
docs/consumers.md): while `logfs consume --group G` runs, a Kafka consumer cannot join
G (JoinGroup answers INCONSISTENT_GROUP_PROTOCOL); while Kafka members hold G,
`logfs consume --group G` is refused in one line naming the daemon; once the Kafka
members leave, `logfs consume --group G` runs and goes on from their commits."""

from __future__ import annotations

import subprocess
import time

from confluent_kafka import KafkaError

from fuse_helpers import LOGFS
from kafka_kit import ck_consumer, echo_append, wait_for


def _group_consumer(bootstrap: str, group: str):
    return ck_consumer(bootstrap, **{"group.id": group, "auto.offset.reset": "earliest",
                                     "enable.auto.commit": False})


def test_a_kafka_member_and_logfs_consume_never_share_a_group(kmount):
    (kmount.mnt / "own").mkdir()
    echo_append(kmount.p("own", "0"), "r0", "r1", "r2")
    follower = subprocess.Popen([LOGFS, "consume", "--group", "G", "--follow", kmount.p("own")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline() == "r0\n"  # it holds G now
        c = _group_consumer(kmount.bootstrap, "G")
        try:
            c.subscribe(["own"])
            deadline = time.monotonic() + 20
            code = None
            while time.monotonic() < deadline and code is None:
                m = c.poll(0.5)
                if m is not None and m.error() is not None:
                    code = m.error().code()
                elif m is not None:
                    raise AssertionError(f"joined a group logfs consume holds: {m.value()!r}")
            assert code == KafkaError.INCONSISTENT_GROUP_PROTOCOL, code
        finally:
            c.close()
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert "cannot join" in kmount.daemon_log() and "in use by another consumer" in kmount.daemon_log()

    # logfs consume committed r0-r2 as it stopped; now a Kafka member holds G, from there:
    # logfs consume --group G is refused, naming the daemon
    echo_append(kmount.p("own", "0"), "r3", "r4", "r5")
    c = _group_consumer(kmount.bootstrap, "G")
    try:
        c.subscribe(["own"])
        got = []
        wait_for(lambda: got.extend(m.value() for m in [c.poll(0.5)] if m is not None and
                                    m.error() is None) or len(got) == 3, 30, "the Kafka member's records")
        assert got == [b"r3", b"r4", b"r5"], got
        c.commit(asynchronous=False)
        r = subprocess.run([LOGFS, "consume", "--group", "G", kmount.p("own")], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode != 0 and r.stdout == "", (r.returncode, r.stdout)
        assert "in use by another consumer" in r.stderr and f"pid {kmount.pid}" in r.stderr, r.stderr
    finally:
        c.close()  # leaves the group: the daemon lets go of G
    echo_append(kmount.p("own", "0"), "r6")
    r = subprocess.run([LOGFS, "consume", "--group", "G", kmount.p("own")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["r6"], r.stdout  # from where the Kafka member committed
