"""Configuration: Kafka's key names, inherited builtin -> store defaults -> topic ->
log, persisted in DATA (topic and log overrides, not the mount-wide defaults),
validated with a message that names the bad key or value."""

from __future__ import annotations

import pytest

from logfs.core import ConfigError, LogConfig, NotFound, open_log_store, parse_config


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_builtin_defaults_are_kafkas(data):
    with open_log_store(str(data)) as store:
        store.create_topic("t")
        cfg = store.create_log("t", "l").config
    assert cfg == LogConfig(segment_bytes=1 << 30, segment_ms=7 * 24 * 3600 * 1000, retention_bytes=-1,
                            retention_ms=-1, index_interval_bytes=4096, flush_ms=None)


def test_inheritance_defaults_topic_log(data):
    with open_log_store(str(data), defaults={"segment.bytes": "100000", "retention.ms": 5000,
                                             "index.interval.bytes": "512"}) as store:
        store.create_topic("t")
        a = store.create_log("t", "a")
        b = store.create_log("t", "b")
        assert a.config.segment_bytes == 100000 and a.config.retention_ms == 5000
        store.set_topic_config("t", {"retention.ms": "60000", "retention.bytes": "1000000"})
        assert store.topic_config("t") == {"retention.ms": "60000", "retention.bytes": "1000000"}
        store.set_log_config("t", "a", {"retention.ms": "1000"})
        assert a.config.retention_ms == 1000            # log wins
        assert b.config.retention_ms == 60000           # topic wins over defaults
        assert a.config.retention_bytes == 1000000      # inherited from the topic
        assert a.config.segment_bytes == 100000         # inherited from the defaults
        assert a.config.index_interval_bytes == 512
        assert a.config.segment_ms == 7 * 24 * 3600 * 1000  # builtin
        # removing an override falls back to the next layer ("" and None both remove)
        store.set_log_config("t", "a", {"retention.ms": ""})
        assert a.config.retention_ms == 60000
        store.set_topic_config("t", {"retention.ms": None})
        assert a.config.retention_ms == 5000 and b.config.retention_ms == 5000
        assert store.topic_config("t") == {"retention.bytes": "1000000"}


def test_config_overrides_are_strings_like_topic_config(data):
    """docs/core-api.md: Log.config_overrides -> dict[str, str], as topic_config."""
    with open_log_store(str(data)) as store:
        store.create_topic("t")
        store.create_log("t", "a")
        store.create_log("t", "b")
        store.set_log_config("t", "a", {"retention.ms": "1000", "segment.bytes": 4096})
        assert store.log("t", "a").config_overrides == {"retention.ms": "1000", "segment.bytes": "4096"}
        assert store.log("t", "b").config_overrides == {}


def test_overrides_persist_across_reopen_and_defaults_do_not(data):
    with open_log_store(str(data), defaults={"segment.bytes": "100000"}) as store:
        store.create_topic("t")
        store.create_log("t", "l")
        store.set_topic_config("t", {"retention.bytes": "777777"})
        store.set_log_config("t", "l", {"segment.ms": "123456", "flush.ms": "1000"})
    with open_log_store(str(data), defaults={"segment.bytes": "200000"}) as store:
        cfg = store.log("t", "l").config
        assert cfg.retention_bytes == 777777
        assert cfg.segment_ms == 123456 and cfg.flush_ms == 1000
        assert cfg.segment_bytes == 200000, "mount-wide defaults come from the mount, not from DATA"
        assert store.topic_config("t") == {"retention.bytes": "777777"}
    with open_log_store(str(data), readonly=True) as reader:
        assert reader.log("t", "l").config.segment_ms == 123456


@pytest.mark.parametrize("key,value", [
    ("retention.hours", "1"),          # not a Kafka key
    ("segment.bytes", "abc"),
    ("segment.bytes", "-5"),
    ("segment.bytes", "0"),
    ("segment.bytes", "1.5"),
    ("segment.ms", "0"),
    ("retention.ms", "-2"),
    ("retention.bytes", "lots"),
    ("index.interval.bytes", "0"),
    ("flush.ms", "-1"),
])
def test_bad_key_or_value_is_refused_naming_it(data, key, value):
    with pytest.raises(ConfigError) as exc:
        parse_config({key: value})
    assert key in str(exc.value), f"message does not name {key!r}: {exc.value}"
    with open_log_store(str(data)) as store:
        store.create_topic("t")
        store.create_log("t", "l")
        before_topic = store.topic_config("t")
        before_log = store.log("t", "l").config
        for setter in (lambda: store.set_topic_config("t", {"retention.ms": "5", key: value}),
                       lambda: store.set_log_config("t", "l", {"retention.ms": "5", key: value})):
            with pytest.raises(ConfigError) as exc:
                setter()
            assert key in str(exc.value)
            if key != "retention.hours":
                assert value in str(exc.value), f"message does not show the value: {exc.value}"
        # a refused update changes nothing, not even its valid part
        assert store.topic_config("t") == before_topic
        assert store.log("t", "l").config == before_log
    with pytest.raises(ConfigError) as exc:
        open_log_store(str(data), defaults={key: value})
    assert key in str(exc.value)


def test_good_values(data):
    assert parse_config({"retention.bytes": "-1", "retention.ms": -1, "segment.bytes": 1 << 20,
                         "flush.ms": "1000", "index.interval.bytes": "4096"}) == {
        "retention.bytes": -1, "retention.ms": -1, "segment.bytes": 1 << 20, "flush.ms": 1000,
        "index.interval.bytes": 4096}


def test_config_of_missing_topic_or_log(data):
    with open_log_store(str(data)) as store:
        with pytest.raises(NotFound):
            store.set_topic_config("nope", {"retention.ms": "1"})
        with pytest.raises(NotFound):
            store.topic_config("nope")
        store.create_topic("t")
        with pytest.raises(NotFound):
            store.set_log_config("t", "nope", {"retention.ms": "1"})
