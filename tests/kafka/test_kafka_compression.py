"""Produce accepts gzip, snappy, lz4 and zstd batches (docs/kafka.md "Values, keys,
headers"): each codec from confluent-kafka, kafka-python and kcat, consumed back with
the right offsets and read by cat on the mount as plain lines."""

from __future__ import annotations

import random
import string

import pytest

from kafka_kit import (cat_lines, ck_consume, ck_produce, kcat_consume, kcat_produce, kp_consume,
                       kp_produce, offsets_values)

CODECS = ["gzip", "snappy", "lz4", "zstd"]


def values(seed: int) -> list[str]:
    """Compressible and incompressible values, empty ones, UTF-8, and one of 150 KB
    (beyond one 64 KiB LZ4 block and one 32 KiB xerial snappy chunk)."""
    rnd = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + " {}\":,.-_é€\t"
    out = [f"record {i} " + "x" * (i % 50) for i in range(150)]
    out += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 300))) for _ in range(100)]
    out += ["", "ünïcödé ✓", "z" * 150_000, "tail"]
    return out


def check(m, topic: str, sent: list[str], got) -> None:
    assert offsets_values(got) == list(enumerate(sent))
    assert cat_lines(m.p(*topic.split(".", 1)) if "." in topic else m.p(topic, "0")) == sent


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_codec(module_kmount, codec):
    m, topic, sent = module_kmount, f"ck-{codec}", values(1)
    reports = ck_produce(m.bootstrap, topic, sent, 0, **{"compression.type": codec,
                                                         "linger.ms": 20})
    assert [off for _e, _p, off in reports] == list(range(len(sent)))
    check(m, topic, sent, ck_consume(m.bootstrap, topic, 0, 0, len(sent)))


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_codec(module_kmount, codec):
    m, topic, sent = module_kmount, f"kp-{codec}", values(2)
    mds = kp_produce(m.bootstrap, topic, sent, 0, compression_type=codec, linger_ms=20,
                     max_request_size=1 << 20)
    assert [md.offset for md in mds] == list(range(len(sent)))
    check(m, topic, sent, kp_consume(m.bootstrap, topic, 0, 0, len(sent)))


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_codec(module_kmount, codec):
    m, topic = module_kmount, f"kc-{codec}"
    sent = [v for v in values(3) if v]  # kcat -P skips empty lines
    kcat_produce(m.bootstrap, topic, sent, 0, "-z", codec, "-X", "linger.ms=20")
    check(m, topic, sent, kcat_consume(m.bootstrap, topic, 0, "beginning"))
