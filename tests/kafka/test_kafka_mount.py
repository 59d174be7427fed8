"""The listener inside a mount (``-o kafka=``): lines written with ``echo >>`` are
Kafka records with the right offsets, records produced over Kafka are seen by ``cat``
and ``stat`` on the mount at once (no sleep between the ack and the read), and an
``echo >>`` after them lands after them (SPEC §11, docs/kafka.md "Where it runs")."""

from __future__ import annotations

import os
import subprocess

import pytest

from kafka_kit import (CLIENTS, LOGFS, cat_lines, echo_append, kcat_topics, offsets_values, q,
                       sh, stat_size)


def size_of(lines: list[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
def test_echo_and_produce_interleave_through_the_mount(kmount, client):
    m, bs = kmount, kmount.bootstrap
    os.mkdir(m.p("T"))
    for log in ("0", "1"):
        sh(f"touch {q(m.p('T', log))}")
    path = m.p("T", "1")
    echo_append(path, "m0", "m1", "m2")
    assert offsets_values(client.consume(bs, "T", 1, "beginning", 3)) == [
        (0, "m0"), (1, "m1"), (2, "m2")]

    offsets = client.produce(bs, "T", ["k0", "k1"], 1)
    # no sleep: the ack means cat and stat see the records
    after = sh(f"cat {q(path)}; stat -c %s {q(path)}").stdout.splitlines()
    assert after == ["m0", "m1", "m2", "k0", "k1", str(size_of(["m0", "m1", "m2", "k0", "k1"]))]
    if offsets is not None:
        assert offsets == [3, 4]

    echo_append(path, "m3")  # at the new end: no EPERM
    assert cat_lines(path) == ["m0", "m1", "m2", "k0", "k1", "m3"]
    assert stat_size(path) == size_of(cat_lines(path))
    assert offsets_values(client.consume(bs, "T", 1, 3, 3)) == [(3, "k0"), (4, "k1"), (5, "m3")]
    assert cat_lines(m.p("T", "0")) == []

    # T/eu is the topic T.eu: produced records land in the file T/eu
    echo_append(m.p("T", "eu"), "e0")
    client.produce(bs, "T.eu", ["e1", "e2"], 0)
    assert cat_lines(m.p("T", "eu")) == ["e0", "e1", "e2"]
    assert offsets_values(client.consume(bs, "T.eu", 0, "beginning", 3)) == [
        (0, "e0"), (1, "e1"), (2, "e2")]
    assert sorted(os.listdir(m.p("T"))) == ["0", "1", "eu"]


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
def test_echo_wakes_a_consumer_at_the_end(kmount, client):
    """A long-poll Fetch at the end is answered by a line written through the mount."""
    m, bs = kmount, kmount.bootstrap
    os.mkdir(m.p("w"))
    path = m.p("w", "0")
    echo_append(path, "old0", "old1")
    start, got = client.tail(bs, "w", 0, lambda: echo_append(path, "new0", "new1"), 2)
    assert start == 2
    assert offsets_values(got) == [(2, "new0"), (3, "new1")]


def test_auto_created_topic_appears_in_the_mount(kmount):
    from kafka_kit import kcat_produce
    kcat_produce(kmount.bootstrap, "fresh", ["x"])
    assert os.listdir(kmount.p("fresh")) == ["0"]
    assert cat_lines(kmount.p("fresh", "0")) == ["x"]
    assert kcat_topics(kmount.bootstrap) == {"fresh": 1}


def test_produce_waits_for_a_half_written_line(kmount):
    """A log left ending inside a line (echo -n) refuses produces with
    KAFKA_STORAGE_ERROR after about 1 s, and takes them once the line is finished:
    a record never glues onto someone else's half line."""
    from confluent_kafka import KafkaError

    from kafka_kit import ck_produce
    m, bs = kmount, kmount.bootstrap
    os.mkdir(m.p("h"))
    path = m.p("h", "0")
    sh(f"printf 'half' >> {q(path)}")
    (err, _p, _o), = ck_produce(bs, "h", ["k0"], 0, check=False, **{"retries": 0})
    assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
    assert sh(f"cat {q(path)}").stdout == "half"
    sh(f"echo ' done' >> {q(path)}")
    ((err, _p, off),) = ck_produce(bs, "h", ["k1"], 0)
    assert off == 1
    assert cat_lines(path) == ["half done", "k1"]


def test_mount_on_a_taken_port_says_so(tmp_path):
    """A busy -o kafka= port refuses the mount in one line naming the address, with
    no Traceback, and nothing is left mounted."""
    import socket

    from fuse_helpers import mounted
    data, mnt = tmp_path / "data", tmp_path / "mnt"
    data.mkdir()
    mnt.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([LOGFS, "mount", "-o", f"kafka=127.0.0.1:{port}", str(data), str(mnt)],
                           capture_output=True, text=True, timeout=30)
    if r.returncode == 0:  # pragma: no cover - it must not mount
        subprocess.run([LOGFS, "umount", str(mnt)], capture_output=True, timeout=30)
    assert r.returncode != 0
    log = (data / ".logfs" / "daemon.log").read_text()
    assert "Traceback" not in log, log[-1500:]
    assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not mounted(str(mnt))
