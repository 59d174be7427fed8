"""The mapping, as each client lists it (docs/kafka.md, "Mapping"): a topic made with
mkdir + echo through the mount is a Kafka topic with one partition per numbered log,
and any other log L of T is the one-partition topic T.L. CreateTopics makes the
directory and its logs; DeleteTopics removes them."""

from __future__ import annotations

import os

import pytest

from kafka_kit import (ck_admin, ck_create_topic, echo_append, kcat_topics, kp_consumer,
                       logfs_cli)


@pytest.fixture
def shaped(kmount):
    """A mount holding T (logs 0, 1, 2 and eu), made with mkdir and echo, plus a
    topic whose only log is not numbered and one with a gap (0, 2)."""
    m = kmount
    os.mkdir(m.p("T"))
    for log in ("0", "1", "2", "eu"):
        echo_append(m.p("T", log), f"first line of {log}")
    os.mkdir(m.p("solo"))
    echo_append(m.p("solo", "x"), "x")
    os.mkdir(m.p("gap"))
    echo_append(m.p("gap", "0"), "a")
    echo_append(m.p("gap", "2"), "c")
    return m


EXPECTED = {"T": 3, "T.eu": 1, "solo.x": 1, "gap": 1, "gap.2": 1}


def test_kcat_lists_mount_topics(shaped):
    assert kcat_topics(shaped.bootstrap) == EXPECTED


def test_confluent_lists_mount_topics(shaped):
    md = ck_admin(shaped.bootstrap).list_topics(timeout=10)
    assert {name: len(t.partitions) for name, t in md.topics.items()} == EXPECTED
    assert all(t.error is None for t in md.topics.values())
    assert sorted(md.topics["T"].partitions) == [0, 1, 2]
    assert md.topics["T"].partitions[2].leader == 0
    assert list(md.brokers) == [0] and md.brokers[0].port == int(shaped.bootstrap.split(":")[1])


def test_kafka_python_lists_mount_topics(shaped):
    c = kp_consumer(shaped.bootstrap)
    try:
        assert c.topics() == set(EXPECTED)
        for name, n in EXPECTED.items():
            assert c.partitions_for_topic(name) == set(range(n)), name
    finally:
        c.close()


def test_new_log_through_mount_is_a_new_partition(shaped):
    """Partitions follow the directory: echo into T/3 and T has 4 partitions."""
    echo_append(shaped.p("T", "3"), "fourth")
    assert kcat_topics(shaped.bootstrap)["T"] == 4


def test_create_topics_makes_directory_and_logs(kmount):
    ck_create_topic(kmount.bootstrap, "made", 3, {"retention.ms": "3600000"})
    assert sorted(os.listdir(kmount.p("made"))) == ["0", "1", "2"]
    assert kcat_topics(kmount.bootstrap)["made"] == 3
    assert kmount.describe("made", "1")["config"]["retention.ms"] == 3600000
    cfg = [line.split() for line in logfs_cli("config", kmount.p("made")).stdout.splitlines()]
    assert ["retention.ms", "3600000", "(1", "hour)", "topic"] in cfg, cfg


def test_create_topics_refusals(kmount):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic
    os.mkdir(kmount.p("T"))
    echo_append(kmount.p("T", "eu"), "x")
    admin = ck_admin(kmount.bootstrap)
    cases = {"T.eu": (NewTopic("T.eu", 1, 1), KafkaError.TOPIC_ALREADY_EXISTS),
             "rf3": (NewTopic("rf3", 1, 3), KafkaError.INVALID_REPLICATION_FACTOR),
             "badcfg": (NewTopic("badcfg", 1, 1, config={"cleanup.policy": "compact"}),
                        KafkaError.INVALID_CONFIG)}
    for name, (new, code) in cases.items():
        fut = admin.create_topics([new], request_timeout=10)[name]
        with pytest.raises(KafkaException) as info:
            fut.result(15)
        assert info.value.args[0].code() == code, (name, info.value)
    assert sorted(os.listdir(kmount.mnt)) == ["T"]


def test_delete_topics_removes_logs(kmount):
    ck_create_topic(kmount.bootstrap, "gone", 2)
    os.mkdir(kmount.p("keep"))
    echo_append(kmount.p("keep", "eu"), "x")
    echo_append(kmount.p("keep", "us"), "y")
    admin = ck_admin(kmount.bootstrap)
    fs = admin.delete_topics(["gone", "keep.eu"], request_timeout=10)
    for f in fs.values():
        f.result(15)
    assert not os.path.exists(kmount.p("gone"))
    assert os.listdir(kmount.p("keep")) == ["us"]
    assert set(kcat_topics(kmount.bootstrap)) == {"keep.us"}


def test_describe_configs_shows_topic_config(kmount):
    """DescribeConfigs answers the topic's effective configuration under Kafka's names,
    what `logfs config` set marked as the topic's."""
    from confluent_kafka.admin import ConfigResource
    os.mkdir(kmount.p("c"))
    echo_append(kmount.p("c", "0"), "x")
    logfs_cli("config", kmount.p("c"), "retention.ms=7200000")
    admin = ck_admin(kmount.bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, "c")
    configs = admin.describe_configs([res], request_timeout=10)[res].result(15)
    assert configs["retention.ms"].value == "7200000"
    assert not configs["retention.ms"].is_default
    assert configs["segment.bytes"].value == str(1 << 30) and configs["segment.bytes"].is_default
