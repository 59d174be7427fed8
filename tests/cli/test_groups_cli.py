"""`logfs groups`: list, describe (human and --json: committed and end records, lag
in records and bytes, last commit time), reset (each --to form, --dry-run, a subset
of logs) and delete, like kafka-consumer-groups (issue 12, part 1). The groups are
made by real `logfs consume --group` runs and read by real `logfs groups` runs."""

from __future__ import annotations

import json
import time

import pytest

from consume_kit import lines_of, logfs
from logfs.core import GroupStore, ManualClock, open_log_store

START_MS = int(time.time() * 1000) - 3_600_000


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    clock = ManualClock(START_MS)
    with open_log_store(str(d), defaults={"index.interval.bytes": "1"}, clock=clock) as store:
        store.create_topic("orders")
        for name, n in (("eu", 100), ("us", 60)):
            log = store.create_log("orders", name)
            for i in range(n):
                log.append(b"%s %03d\n" % (name.encode(), i))  # 7 bytes a record
                clock.advance(1000)
        store.create_topic("audit")
        store.create_log("audit", "all").append(b"a\n")
    return d


def describe(data, group: str) -> dict:
    return json.loads(logfs("groups", "describe", group, str(data), "--json").stdout)


def test_list_and_describe(data):
    assert logfs("groups", str(data)).stdout == b""
    before = int(time.time() * 1000)
    logfs("consume", "--group", "billing", "--max", "30", str(data / "orders" / "eu"))
    logfs("consume", "--group", "billing", "--max", "10", str(data / "orders" / "us"))
    logfs("consume", "--group", "audit", str(data / "audit"))
    after = int(time.time() * 1000)
    assert logfs("groups", str(data)).stdout == b"audit\nbilling\n"
    assert logfs("groups", "list", str(data / "orders")).stdout == b"audit\nbilling\n"
    listed = json.loads(logfs("groups", str(data), "--json").stdout)["groups"]
    assert [(g["group"], g["logs"], g["lag_records"], g["lag_bytes"]) for g in listed] == \
        [("audit", 1, 0, 0), ("billing", 2, 70 + 50, 7 * 120)]
    d = describe(data, "billing")
    assert d["consumer_pid"] is None and d["lag_records"] == 120
    eu, us = d["logs"]
    assert (eu["topic"], eu["log"], eu["committed_record"], eu["committed_offset"]) == ("orders", "eu", 30, 210)
    assert (eu["end_record"], eu["end_offset"], eu["lag_records"], eu["lag_bytes"]) == (100, 700, 70, 490)
    assert (us["committed_record"], us["lag_records"], us["lag_bytes"], us["state"]) == (10, 50, 350, "ok")
    assert before <= eu["last_commit_ms"] <= after and d["last_commit_ms"] == us["last_commit_ms"]
    human = logfs("groups", "describe", "billing", str(data)).stdout.decode().splitlines()
    assert human[0] == "group billing: no consumer running; lag 120 records, 840 bytes"
    assert human[1].split() == ["TOPIC", "LOG", "COMMITTED", "END", "LAG", "LAG-BYTES", "LAST-COMMIT", "STATE"]
    assert human[2].split()[:6] == ["orders", "eu", "30", "100", "70", "490"] and human[2].endswith("ok")
    assert time.strftime("%Y-%m-%d", time.localtime(eu["last_commit_ms"] / 1000)) in human[2]


def test_reset_each_form_and_dry_run(data):
    eu = str(data / "orders" / "eu")
    logfs("consume", "--group", "g", "--max", "50", eu)

    def committed() -> int:
        return describe(data, "g")["logs"][0]["committed_record"]

    out = logfs("groups", "reset", "g", "--to", "earliest", "--dry-run", eu).stdout.decode()
    assert "would reset to earliest (dry run: nothing committed)" in out and committed() == 50
    assert out.splitlines()[2].split() == ["orders", "eu", "50", "0", "0"]
    logfs("groups", "reset", "g", "--to", "earliest", eu)
    assert committed() == 0
    logfs("groups", "reset", "g", "--to", "latest", eu)
    assert committed() == 100
    logfs("groups", "reset", "g", "--to", "record=42", eu)
    assert committed() == 42
    assert lines_of(logfs("consume", "--group", "g", "--max", "1", eu).stdout) == [b"eu 042\n"]
    logfs("groups", "reset", "g", "--to", str(START_MS + 20_000), eu)  # epoch ms: record 20's time
    assert committed() == 20
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START_MS / 1000 + 70))
    logfs("groups", "reset", "g", eu, "--to", iso)  # LOG before the option works too
    assert committed() in (70, 71)  # ISO to the second: START_MS has milliseconds
    r = logfs("groups", "reset", "g", "--to", "record=5000", eu, "--json")
    row = json.loads(r.stdout)["logs"][0]
    assert row["new_record"] == 100 and "past the end" in row["note"]


def test_reset_a_subset_a_topic_or_every_log_of_the_group(data):
    for log in ("eu", "us"):
        logfs("consume", "--group", "g", "--max", "5", str(data / "orders" / log))
    logfs("consume", "--group", "g", str(data / "audit"))

    def records() -> dict:
        return {(r["topic"], r["log"]): r["committed_record"] for r in describe(data, "g")["logs"]}

    logfs("groups", "reset", "g", "--to", "latest", str(data / "orders" / "us"))
    assert records() == {("audit", "all"): 1, ("orders", "eu"): 5, ("orders", "us"): 60}
    logfs("groups", "reset", "g", "--to", "record=2", str(data / "orders"))  # both logs of the topic
    assert records() == {("audit", "all"): 1, ("orders", "eu"): 2, ("orders", "us"): 2}
    logfs("groups", "reset", "g", "--to", "earliest", str(data))  # every log the group has
    assert records() == {("audit", "all"): 0, ("orders", "eu"): 0, ("orders", "us"): 0}
    # a reset names logs of one DATA, and the logs must exist
    r = logfs("groups", "reset", "g", "--to", "earliest", str(data / "orders" / "nope"), check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = logfs("groups", "reset", "new", "--to", "earliest", str(data), check=False)
    assert r.returncode == 1 and "has no positions" in r.stderr
    # a group can be made by a reset (Kafka allows it for a group that never ran)
    logfs("groups", "reset", "new", "--to", "record=7", str(data / "orders" / "eu"))
    assert lines_of(logfs("consume", "--group", "new", "--max", "1", str(data / "orders" / "eu")).stdout) \
        == [b"eu 007\n"]


def test_delete(data):
    logfs("consume", "--group", "gone", str(data / "audit"))
    groups = GroupStore(str(data))
    assert groups.names() == ["gone"]
    logfs("groups", "delete", "gone", str(data))
    assert groups.names() == [] and list((data / ".logfs" / "groups").iterdir()) == []
    r = logfs("groups", "delete", "gone", str(data), check=False)
    assert r.returncode == 1 and "no consumer group 'gone'" in r.stderr
    # deleted means gone: the next consumer of that name starts by --from
    assert logfs("consume", "--group", "gone", str(data / "audit")).stdout == b"a\n"


def test_a_deleted_log_is_reported(data, tmp_path):
    logfs("consume", "--group", "g", str(data / "audit"))
    with open_log_store(str(data)) as store:
        store.delete_log("audit", "all")
    d = describe(data, "g")
    assert d["logs"][0]["state"] == "log missing" and d["logs"][0]["end_record"] is None
    assert "log missing" in logfs("groups", "describe", "g", str(data)).stdout.decode()


def test_refusals_are_one_line(data):
    for argv, code, words in [
        (["groups", "describe", "nope", str(data)], 1, "no consumer group 'nope'"),
        (["groups", "describe", "", str(data)], 2, "non-empty"),
        (["groups", "reset", "g", "--to", "never", str(data)], 2, "--to"),
        (["groups", "reset", "g", str(data)], 2, "--to"),
        (["groups", "/"], 1, "not inside a logfs mount"),
        (["groups", "frobnicate", str(data)], 2, "unrecognized arguments"),
    ]:
        r = logfs(*argv, check=False)
        assert r.returncode == code, (argv, r.returncode, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (argv, r.stderr)
        assert "Traceback" not in r.stderr
