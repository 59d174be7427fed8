"""`logfs describe` and `logfs config` read a data directory that is not mounted,
as the exporter does (issue 11, item 6). The store is written with the core API in
this process; no FUSE is needed."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from fuse_helpers import LOGFS
from logfs.core import open_log_store


def logfs(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([LOGFS, *args], capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    with open_log_store(str(d)) as store:
        store.create_topic("orders")
        store.set_topic_config("orders", {"retention.ms": "604800000"})
        lg = store.create_log("orders", "eu")
        lg.append(b'{"id":1}\n{"id":2}\n')
        store.set_log_config("orders", "eu", {"segment.bytes": "1048576"})
    return d


def test_describe_a_log_without_a_mount(data):
    d = json.loads(logfs("describe", "--json", str(data / "orders" / "eu")).stdout)
    assert d["kind"] == "log" and d["mounted"] is False
    assert (d["topic"], d["log"], d["end_offset"], d["records"]) == ("orders", "eu", 18, 2)
    assert d["config"]["retention.ms"] == 604800000 and d["config"]["segment.bytes"] == 1048576
    assert d["config_overrides"] == {"segment.bytes": 1048576}
    human = logfs("describe", str(data / "orders" / "eu")).stdout
    assert "end_offset" in human and "no (read from DATA)" in human


def test_describe_the_data_directory_and_a_topic(data):
    root = json.loads(logfs("describe", "--json", str(data)).stdout)
    assert root == {"kind": "data", "data": str(data), "topics": ["orders"], "mounted": False}
    topic = json.loads(logfs("describe", "--json", str(data / "orders")).stdout)
    assert topic["logs"] == ["eu"] and topic["config_overrides"] == {"retention.ms": 604800000}


def test_config_without_a_mount(data):
    c = json.loads(logfs("config", "--json", str(data / "orders" / "eu")).stdout)
    assert c["overrides"] == {"segment.bytes": 1048576}
    assert c["effective"]["retention.ms"] == 604800000
    assert c["sources"]["retention.ms"] == "topic" and c["sources"]["segment.bytes"] == "log"
    assert c["sources"]["flush.ms"] == "default" and c["effective"]["flush.ms"] is None
    human = logfs("config", str(data / "orders" / "eu")).stdout
    assert "retention.ms" in human and "topic\n" in human and "not mounted" in human


def test_setting_config_without_a_mount_is_refused_clearly(data):
    r = logfs("config", str(data / "orders"), "retention.ms=1", check=False)
    assert r.returncode == 1 and "not mounted" in r.stderr and "needs the mount" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_restored_directory_that_was_never_mounted(data, tmp_path):
    """No .logfs/ at all (topics copied from a backup): recognised by its logs."""
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copytree(data / "orders", restored / "orders")
    d = json.loads(logfs("describe", "--json", str(restored / "orders" / "eu")).stdout)
    assert d["records"] == 2 and d["mounted"] is False
    assert json.loads(logfs("describe", "--json", str(restored)).stdout)["topics"] == ["orders"]


def test_works_while_a_writer_holds_the_store(data):
    """A writer without a control socket (here: this process): read like the exporter."""
    with open_log_store(str(data)) as store:
        store.log("orders", "eu").append(b'{"id":3}\n')
        d = json.loads(logfs("describe", "--json", str(data / "orders" / "eu")).stdout)
        assert d["records"] == 3


def test_refusals_are_one_line(data):
    for path in (data / "orders" / "nope", data / "orders" / "eu" / "00000000000000000000.log"):
        r = logfs("describe", str(path), check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
