"""Kafka consumer groups over logfs's groups (SPEC §10-11, docs/kafka.md "Consumer
groups"): two members of a group rebalance a 2-partition topic when the second joins
and when one leaves, they commit, and after the consumers and the daemon restart
(umount + mount) a member continues from the committed offsets: every record read,
none read twice except those read but not committed (at-least-once), asserted as exact
sets. `logfs groups describe` shows what Kafka committed, and a position set by
`logfs groups reset` is where a Kafka consumer of the group starts.

Each member runs in a thread of its own (kafka-python joins a group inside poll()),
committing synchronously after each record unless its value starts with ``nc-``."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from kafka_kit import (CALL_TIMEOUT, ck_consumer, echo_append, kcat, kp_consumer, logfs_cli,
                       remount, wait_for)

TOPIC = "g"


class Member(threading.Thread):
    """One group member polling in its own thread until stopped."""

    kind = ""

    def __init__(self, bootstrap: str, group: str, name: str) -> None:
        super().__init__(daemon=True, name=f"{self.kind}-{name}")
        self.bootstrap, self.group, self.label = bootstrap, group, name
        self.consumed: list[tuple[int, int, str]] = []   # (partition, offset, value)
        self.committed: list[tuple[int, int]] = []       # (partition, next offset)
        self.events: list[tuple[str, frozenset]] = []    # ("assign"/"revoke", partitions)
        self.assignment: frozenset = frozenset()
        self.errors: list[BaseException] = []
        self.stop_flag = threading.Event()
        self.closed = threading.Event()
        self.consumer = self.make()

    # the client's part
    def make(self):
        raise NotImplementedError

    def poll_once(self) -> list[tuple[int, int, str]]:
        raise NotImplementedError

    def commit(self, partition: int, offset: int) -> None:
        raise NotImplementedError

    def close_consumer(self) -> None:
        raise NotImplementedError

    # the thread
    def run(self) -> None:
        try:
            while not self.stop_flag.is_set():
                for p, off, value in self.poll_once():
                    self.consumed.append((p, off, value))
                    if not value.startswith("nc-"):
                        self.commit(p, off + 1)
                        self.committed.append((p, off + 1))
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)
        finally:
            try:
                self.close_consumer()  # leaves the group
            except BaseException as exc:  # noqa: BLE001
                self.errors.append(exc)
            self.closed.set()

    def stop(self, timeout: float = CALL_TIMEOUT) -> None:
        self.stop_flag.set()
        assert self.closed.wait(timeout), f"{self.name} did not close in {timeout}s"
        self.join(5)
        assert not self.errors, f"{self.name}: {self.errors!r}"

    def wait_assigned(self, partitions: set[int], timeout: float = CALL_TIMEOUT) -> None:
        wait_for(lambda: self.assignment == frozenset(partitions) or self.errors, timeout,
                 f"{self.name} assigned {sorted(partitions)} (has {sorted(self.assignment)})")
        assert not self.errors, self.errors

    def wait_consumed(self, n: int, timeout: float = CALL_TIMEOUT) -> None:
        wait_for(lambda: len(self.consumed) >= n or self.errors, timeout,
                 f"{self.name} consumed {n} (has {len(self.consumed)})")
        assert not self.errors, self.errors


class ConfluentMember(Member):
    kind = "confluent"

    def make(self):
        c = ck_consumer(self.bootstrap, **{"group.id": self.group,
                                           "partition.assignment.strategy": "range"})

        def on_assign(consumer, parts):
            self.assignment = frozenset(p.partition for p in parts)
            self.events.append(("assign", self.assignment))

        def on_revoke(consumer, parts):
            self.events.append(("revoke", frozenset(p.partition for p in parts)))
            self.assignment = frozenset()

        c.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
        return c

    def poll_once(self):
        m = self.consumer.poll(0.1)
        if m is None or m.error():
            if m is not None and m.error().code() != -191:  # _PARTITION_EOF
                raise AssertionError(f"consumer error: {m.error()}")
            return []
        return [(m.partition(), m.offset(), m.value().decode())]

    def commit(self, partition, offset):
        from confluent_kafka import TopicPartition
        (tp,) = self.consumer.commit(offsets=[TopicPartition(TOPIC, partition, offset)],
                                     asynchronous=False)
        assert tp.error is None, tp.error

    def close_consumer(self):
        self.consumer.close()


class KafkaPythonMember(Member):
    kind = "kafka-python"

    def make(self):
        from kafka import ConsumerRebalanceListener

        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned):
                member.assignment = frozenset(tp.partition for tp in assigned)
                member.events.append(("assign", member.assignment))

            def on_partitions_revoked(self, revoked):
                member.events.append(("revoke", frozenset(tp.partition for tp in revoked)))
                member.assignment = frozenset()

        c = kp_consumer(self.bootstrap, group_id=self.group, max_poll_interval_ms=20000)
        # the topic's metadata before the join: a leader that joins without it assigns
        # nothing ("No partition metadata for topic") until the next rebalance
        wait_for(lambda: c.partitions_for_topic(TOPIC), 10, f"kafka-python metadata of {TOPIC}")
        c.subscribe([TOPIC], listener=Listener())
        return c

    def poll_once(self):
        out = []
        for _tp, msgs in self.consumer.poll(timeout_ms=100).items():
            out.extend((m.partition, m.offset, m.value.decode()) for m in msgs)
        return out

    def commit(self, partition, offset):
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata
        self.consumer.commit({TopicPartition(TOPIC, partition): OffsetAndMetadata(offset, "", -1)})

    def close_consumer(self):
        self.consumer.close(autocommit=False)


MEMBERS = [ConfluentMember, KafkaPythonMember]


def write_phase(m, phase: str, per_partition: int, uncommitted_last: bool = False) -> set:
    """*per_partition* lines into g/0 and g/1 through the mount; the (partition,
    value)s. With *uncommitted_last*, each partition's last line is marked nc-."""
    made = set()
    for p in (0, 1):
        lines = [f"{phase}-p{p}-{i}" for i in range(per_partition)]
        if uncommitted_last:
            lines[-1] = "nc-" + lines[-1]
        echo_append(m.p(TOPIC, str(p)), *lines)
        made |= {(p, v) for v in lines}
    return made


def started(cls, bootstrap, group, name):
    mem = cls(bootstrap, group, name)
    mem.start()
    return mem


def described_members(group: str, bootstrap: str) -> int:
    """DescribeGroups (confluent's admin): the group is Stable; its member count."""
    from confluent_kafka import ConsumerGroupState

    from kafka_kit import ck_admin
    admin = ck_admin(bootstrap)
    d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(CALL_TIMEOUT)
    assert d.state == ConsumerGroupState.STABLE, d.state
    return len(d.members)


def describe(group: str, path) -> dict[str, int]:
    out = json.loads(logfs_cli("groups", "describe", group, str(path), "--json").stdout)
    return {f"{e['topic']}/{e['log']}": e["committed_record"] for e in out["logs"]}


@pytest.mark.slow
@pytest.mark.parametrize("cls", MEMBERS, ids=lambda c: c.kind)
def test_rebalance_commit_restart_continue(kmount, cls):
    m = kmount
    os.mkdir(m.p(TOPIC))
    everything = write_phase(m, "one", 4)
    seen: list[tuple[int, int, str]] = []
    members: list[Member] = []
    try:
        a = started(cls, m.bootstrap, "G", "a")
        members.append(a)
        a.wait_assigned({0, 1})
        a.wait_consumed(8)
        if cls is ConfluentMember:
            assert described_members("G", m.bootstrap) == 1

        b = started(cls, m.bootstrap, "G", "b")  # the second joins: a gives one up
        members.append(b)
        wait_for(lambda: len(a.assignment) == 1 and len(b.assignment) == 1 or a.errors or b.errors,
                 CALL_TIMEOUT, f"one partition each: a {a.assignment}, b {b.assignment}")
        assert a.assignment | b.assignment == {0, 1}
        assert ("revoke", frozenset({0, 1})) in a.events, a.events
        everything |= write_phase(m, "two", 3)
        a.wait_consumed(8 + 3)
        b.wait_consumed(3)
        assert {p for p, _o, v in b.consumed} == b.assignment
        if cls is ConfluentMember:
            assert described_members("G", m.bootstrap) == 2

        b.stop()  # leaves the group: a takes both again
        members.remove(b)
        seen += b.consumed
        a.wait_assigned({0, 1})
        everything |= write_phase(m, "three", 2, uncommitted_last=True)
        a.wait_consumed(8 + 3 + 4)
        a.stop()
        members.remove(a)
        seen += a.consumed
    finally:
        for mem in members:
            mem.stop_flag.set()
    assert sorted(seen) == sorted(set(seen)), "a record was read twice before any restart"
    assert {(p, v) for p, _o, v in seen} == everything

    # per partition: records 0-3, 4-6, 7 and nc- 8; committed: 8, the one after 7
    committed = {"g/0": 8, "g/1": 8}
    assert describe("G", m.mnt) == committed
    remount(m)
    assert describe("G", m.data) == committed
    uncommitted = {(p, v) for p, v in everything if v.startswith("nc-")}
    fresh = write_phase(m, "four", 2)

    again = started(cls, m.bootstrap, "G", "again")
    try:
        again.wait_consumed(len(uncommitted) + len(fresh))
        time.sleep(0.3)  # nothing more may come
    finally:
        again.stop()
    got = [(p, v) for p, _o, v in again.consumed]
    assert sorted(got) == sorted(uncommitted | fresh), "not exactly the uncommitted and new ones"
    # record 8 (nc-, read but not committed) again, then the new 9 and 10
    assert {(p, o) for p, o, _v in again.consumed} == {(p, o) for p in (0, 1) for o in (8, 9, 10)}
    assert describe("G", m.data) == {"g/0": 11, "g/1": 11}


@pytest.mark.parametrize("cls", MEMBERS, ids=lambda c: c.kind)
def test_reset_by_cli_is_where_kafka_consumer_starts(kmount, cls):
    """A Kafka commit first (the coordinator has the group open), then `logfs groups
    reset` from outside: the next member starts at the reset positions."""
    m = kmount
    os.mkdir(m.p(TOPIC))
    write_phase(m, "r", 6)
    a = started(cls, m.bootstrap, "R", "a")
    try:
        a.wait_consumed(12)
    finally:
        a.stop()
    assert describe("R", m.mnt) == {"g/0": 6, "g/1": 6}

    logfs_cli("groups", "reset", "R", "--to", "record=2", m.p(TOPIC, "0"))
    logfs_cli("groups", "reset", "R", "--to", "record=4", m.p(TOPIC, "1"))
    assert describe("R", m.mnt) == {"g/0": 2, "g/1": 4}
    b = started(cls, m.bootstrap, "R", "b")
    try:
        b.wait_consumed(4 + 2)
        time.sleep(0.3)
    finally:
        b.stop()
    assert sorted((p, o) for p, o, _v in b.consumed) == [(0, 2), (0, 3), (0, 4), (0, 5),
                                                          (1, 4), (1, 5)]
    assert describe("R", m.mnt) == {"g/0": 6, "g/1": 6}


def test_reset_by_cli_then_kcat_group_consumer(kmount):
    m = kmount
    os.mkdir(m.p(TOPIC))
    write_phase(m, "k", 3)
    logfs_cli("groups", "reset", "K", "--to", "record=1", m.p(TOPIC))
    r = kcat(m.bootstrap, "-G", "K", "-c", "4", "-J", "-X", "session.timeout.ms=6000",
             "-X", "heartbeat.interval.ms=200", TOPIC, timeout=30)
    got = sorted((j["partition"], j["offset"]) for j in map(json.loads, r.stdout.splitlines()))
    assert got == [(0, 1), (0, 2), (1, 1), (1, 2)]
    wait_for(lambda: describe("K", m.mnt) == {"g/0": 3, "g/1": 3}, 10, "kcat's commits")


def test_offset_fetch_and_list_groups_from_confluent(kmount):
    """An admin's view: a commit made by `logfs groups reset` is what OffsetFetch
    (committed()) answers, and the group is listed."""
    from confluent_kafka import TopicPartition

    from kafka_kit import ck_admin
    m = kmount
    os.mkdir(m.p(TOPIC))
    write_phase(m, "o", 3)
    logfs_cli("groups", "reset", "O", "--to", "record=2", m.p(TOPIC, "1"))
    c = ck_consumer(m.bootstrap, **{"group.id": "O"})
    try:
        got = c.committed([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)], timeout=10)
    finally:
        c.close()
    assert [(tp.partition, tp.offset) for tp in got] == [(0, -1001), (1, 2)]
    admin = ck_admin(m.bootstrap)  # alive until its answer came
    listed = admin.list_consumer_groups(request_timeout=10).result(CALL_TIMEOUT)
    assert {g.group_id for g in listed.valid} == {"O"} and not listed.errors
