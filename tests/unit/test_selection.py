"""The selectors every consumer path shares (logfs/core/selection.py): parsing, view
names, and starts resolved against a real log (with retention and groups)."""

from __future__ import annotations

import pytest

from logfs.core import GroupStore, ManualClock, OffsetOutOfRange, open_log_store
from logfs.core.selection import (BadSelection, Selection, parse_selection, parse_time,
                                  parse_view_spec, resolve_end, resolve_start, split_view_name)

NOW = 1_764_576_000_000  # 2025-12-01T08:00:00Z


def test_times_durations_and_epoch_ms():
    assert parse_time("10m", NOW) == NOW - 600_000
    assert parse_time("1764576000000", NOW) == NOW
    assert parse_time("2025-12-01T08:00:00Z", NOW) == NOW
    assert parse_time("2025-12-01T09:00+01:00", NOW) == NOW
    assert parse_time("2025-12-01T08:00", NOW) == NOW  # no zone: UTC
    for bad in ("", "yesterday", "10 minutes", "-5m"):
        with pytest.raises(BadSelection):
            parse_time(bad, NOW)


@pytest.mark.parametrize("name, parts", [
    ("web@since=1h", ("web", "since=1h")),
    ("web@since=2026-12-01T09:00,until=2026-12-01T10:00", ("web", "since=2026-12-01T09:00,until=2026-12-01T10:00")),
    ("a@b@last=100", ("a@b", "last=100")),
    ("web@group=billing", ("web", "group=billing")),
    ("web@since=garbage", ("web", "since=garbage")),  # a view (known key); its value is wrong
    ("web@other=1", None), ("user@example.com", None), ("web@", None), ("@since=1h", None),
    ("web@since=1h,colour=red", None), ("plain", None),
])
def test_view_names(name, parts):
    assert split_view_name(name) == parts


def test_selections_refuse_two_starts_unknown_and_repeated_keys():
    assert parse_view_spec("since=1h,until=10m", NOW) == Selection(since_ms=NOW - 3_600_000,
                                                                   until_ms=NOW - 600_000)
    for bad in ("since=1h,record=5", "since=1h,since=2h", "record=-1", "last=x", "group=", "colour=red",
                "since"):
        with pytest.raises(BadSelection):
            parse_view_spec(bad, NOW)
    with pytest.raises(BadSelection):
        parse_selection([("offset", "1"), ("last", "2")], NOW)


@pytest.fixture
def store_and_log(tmp_path):
    clock = ManualClock(NOW)
    store = open_log_store(str(tmp_path), defaults={"segment.bytes": "1000", "index.interval.bytes": "64"},
                           clock=clock)
    store.create_topic("t")
    lg = store.create_log("t", "l")
    for i in range(300):
        lg.append(b"record %04d\n" % i)  # 12 bytes each
        clock.advance(10)
    lg.append(b"partial")
    yield store, lg
    store.close()


def test_starts_and_ends_resolve_through_the_indexes(store_and_log):
    _store, log = store_and_log
    assert resolve_start(log, Selection()).offset == 0
    assert resolve_start(log, Selection(record=7)).offset == 84
    assert resolve_start(log, Selection(offset=120)).offset == 120
    assert resolve_start(log, Selection(last=2)).offset == 299 * 12  # record 299 and the partial line
    # the time index is sparse (64 bytes here): less than one interval early, or late
    assert 100 * 12 - 64 < resolve_start(log, Selection(since_ms=NOW + 1000)).offset <= 100 * 12
    assert 100 * 12 <= resolve_end(log, Selection(until_ms=NOW + 995)) < 100 * 12 + 64 + 12
    assert resolve_end(log, Selection(record=3)) is None
    with pytest.raises(OffsetOutOfRange):
        resolve_start(log, Selection(offset=log.end_offset + 1))


def test_a_group_start_resolves_retention_and_missing_positions_by_the_reset_policy(store_and_log, tmp_path):
    store, log = store_and_log
    groups = GroupStore(str(tmp_path), ManualClock(NOW))
    g = groups.group("billing")
    s = resolve_start(log, Selection(group="billing"), groups)
    assert s.offset == 0 and "no committed position" in s.note
    assert resolve_start(log, Selection(group="billing"), groups, reset="latest").offset == 300 * 12
    g.commit({("t", "l"): (50, 600)})
    assert resolve_start(log, Selection(group="billing"), groups) == resolve_start(log, Selection(offset=600))
    store.set_log_config("t", "l", {"retention.bytes": "1500"})
    log.apply_retention()
    assert log.start_offset > 600
    s = resolve_start(log, Selection(group="billing"), groups)
    assert s.offset == log.record_position(log.start_record) and "removed by retention" in s.note
    g.commit({("t", "l"): (10_000, 10 ** 9)})
    assert "past the end" in resolve_start(log, Selection(group="billing"), groups).note
    with pytest.raises(BadSelection):
        resolve_start(log, Selection(group="billing"))


def test_a_log_cannot_be_named_like_a_view_but_any_other_at_sign_is_fine(tmp_path):
    from logfs.core import InvalidName
    with open_log_store(str(tmp_path)) as store:
        store.create_topic("t")
        store.create_topic("topic@since=1h")  # topics have no views
        for name in ("web@since=1h", "web@record=5", "a@b@last=3"):
            with pytest.raises(InvalidName):
                store.create_log("t", name)
        store.create_log("t", "user@example.com")
        store.create_log("t", "web@colour=red")
        with pytest.raises(InvalidName):
            store.rename_log("t", "user@example.com", "t", "user@group=g")
