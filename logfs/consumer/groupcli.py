"""``logfs groups``: list, describe, reset and delete consumer groups, like
``kafka-consumer-groups --list / --describe / --reset-offsets / --delete``.

The groups are those of one data directory (logfs/core/groups.py), found from a
PATH in a mount or in DATA (paths.py; the current directory when none is given).
Each command is a plain function from the store and the groups to a JSON-ready
value (:func:`list_groups`, :func:`describe_group`, :func:`plan_reset`), which the
``show_*`` functions print for people; ``--json`` prints the value itself.

Figures per log: the committed record (the next one the group reads) and its byte
offset; the end record (complete records in the log) and the end of the last of
them; the lag in records and in bytes between the two; the time of the commit; and a
state: ``ok``, ``removed by retention`` (the committed record is gone: the next
consumer starts by its ``--reset``), ``past the end`` (the log was recreated) or
``log missing``.

Reset and delete take the group's membership for their own short while
(member.py): they refuse while a consumer runs, as Kafka refuses to reset an active
group, and no consumer starts in the middle of them. Every call blocks briefly on the disk.
"""

from __future__ import annotations

import json
import time
from typing import Any

from logfs.core import GroupStore, Log, LogStore, NotFound
from logfs.paths import Located

from . import starts
from .member import GroupBusy, GroupMember, holder_pid

__all__ = ["GroupsError", "delete_group", "describe_group", "list_groups", "plan_reset",
           "reset_group", "show_describe", "show_list", "show_reset"]


class GroupsError(Exception):
    """A refusal of ``logfs groups``, one line for the person."""


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def _log_end(log: Log) -> tuple[int, int]:
    """(end record, end of the last complete record) of *log*, in one view."""
    with log.pinned():
        point = starts.latest(log)
        return point.record, point.offset if point.offset is not None else log.start_offset


def _existing(groups: GroupStore, name: str):
    group = groups.group(name)
    if not group.exists:
        raise GroupsError(f"no consumer group {name!r} in {groups.data_dir}")
    return group


# -------------------------------------------------------------------- list

def list_groups(store: LogStore, groups: GroupStore) -> list[dict[str, Any]]:
    """Every group with its number of logs, total lag, last commit and consumer."""
    out = []
    for name in groups.names():
        described = describe_group(store, groups, name)
        out.append({"group": name, "logs": len(described["logs"]),
                    "lag_records": described["lag_records"], "lag_bytes": described["lag_bytes"],
                    "last_commit_ms": described["last_commit_ms"],
                    "consumer_pid": described["consumer_pid"]})
    return out


def show_list(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"groups": rows}, indent=2, sort_keys=True))
        return
    for row in rows:  # one name a line, like kafka-consumer-groups --list
        print(row["group"])


# ---------------------------------------------------------------- describe

def describe_group(store: LogStore, groups: GroupStore, name: str) -> dict[str, Any]:
    """The group's committed position in each log against the log's end. Raises
    GroupsError (no such group), InvalidName, StorageError."""
    group = _existing(groups, name)
    rows = []
    for (topic, log_name), pos in sorted(group.positions().items()):
        row: dict[str, Any] = {"topic": topic, "log": log_name, "committed_record": pos.record,
                               "committed_offset": pos.offset, "end_record": None,
                               "end_offset": None, "lag_records": None, "lag_bytes": None,
                               "last_commit_ms": pos.commit_ms}
        try:
            log = store.log(topic, log_name)
            end_record, end_offset = _log_end(log)
            start = log.start_offset
        except NotFound:
            row["state"] = "log missing"
            rows.append(row)
            continue
        row.update(end_record=end_record, end_offset=end_offset,
                   lag_records=max(0, end_record - pos.record), lag_bytes=max(0, end_offset - pos.offset))
        if pos.offset < start:
            row["state"] = "removed by retention"
        elif pos.offset > log.end_offset:
            row["state"] = "past the end"
        else:
            row["state"] = "ok"
        rows.append(row)
    return {"group": name, "consumer_pid": holder_pid(groups, name), "logs": rows,
            "lag_records": sum(r["lag_records"] or 0 for r in rows),
            "lag_bytes": sum(r["lag_bytes"] or 0 for r in rows),
            "last_commit_ms": max((r["last_commit_ms"] for r in rows), default=None)}


def _table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    for line in [head] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def _num(v: Any) -> str:
    return "-" if v is None else str(v)


def show_describe(d: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(d, indent=2, sort_keys=True))
        return
    pid = d["consumer_pid"]
    who = "no consumer running" if pid is None else f"a consumer is running (pid {pid})" if pid \
        else "a consumer is running"
    print(f"group {d['group']}: {who}; lag {d['lag_records']} records, {d['lag_bytes']} bytes")
    _table(["TOPIC", "LOG", "COMMITTED", "END", "LAG", "LAG-BYTES", "LAST-COMMIT", "STATE"],
           [[r["topic"], r["log"], _num(r["committed_record"]), _num(r["end_record"]),
             _num(r["lag_records"]), _num(r["lag_bytes"]), _when(r["last_commit_ms"]), r["state"]]
            for r in d["logs"]])


# ------------------------------------------------------------------- reset

def _targets(store: LogStore, groups: GroupStore, name: str, located: list[Located]) -> list[tuple[str, str]]:
    """The logs a reset names: a log, every log of a topic, or (DATA/MOUNT) every log
    the group has a position for."""
    out: list[tuple[str, str]] = []
    for loc in located:
        if loc.topic is None:
            keys = sorted(groups.group(name).positions())
            if not keys:
                raise GroupsError(f"consumer group {name!r} has no positions in {loc.data}: name the "
                                  "topics or logs to reset")
            out += keys
        elif loc.log is None:
            out += [(loc.topic, lg) for lg in store.logs(loc.topic)]
        else:
            store.log(loc.topic, loc.log)  # NotFound for a missing log
            out.append((loc.topic, loc.log))
    seen: set[tuple[str, str]] = set()
    return [k for k in out if not (k in seen or seen.add(k))]


def plan_reset(store: LogStore, groups: GroupStore, name: str, to: starts.FromSpec,
               located: list[Located]) -> list[dict[str, Any]]:
    """Where ``reset --to`` would put the group in each log it names: a record
    retention removed goes to the first retained one, a record past the end to the
    end, each with a note. Raises GroupsError, NotFound, StorageError."""
    current = groups.group(name).positions()
    rows = []
    for key in _targets(store, groups, name, located):
        log = store.log(*key)
        with log.pinned():
            point = starts.at(log, to, "earliest")
            note = point.note
            if point.offset is None:  # not complete yet: a reset cannot wait for it
                end = starts.latest(log)
                note = f"{key[0]}/{key[1]}: record {point.record} is past the end; to latest (record {end.record})"
                point = end
        if point.offset is None:
            raise GroupsError(f"{key[0]}/{key[1]} holds no complete record yet: nothing to reset to")
        old = current.get(key)
        rows.append({"topic": key[0], "log": key[1],
                     "old_record": old.record if old else None, "old_offset": old.offset if old else None,
                     "new_record": point.record, "new_offset": point.offset, "note": note})
    return rows


def _member(groups: GroupStore, name: str, what: str) -> GroupMember:
    member = GroupMember(groups, name)
    try:
        member.acquire()
    except GroupBusy as exc:
        who = f" (pid {exc.pid})" if exc.pid else ""
        raise GroupsError(f"consumer group {name!r} has a running consumer{who}: stop it before "
                          f"the {what} (a group has one consumer at a time)") from None
    except OSError as exc:
        raise GroupsError(f"consumer group {name!r}: cannot take it in {groups.directory}: "
                          f"{exc.strerror or exc}") from None
    return member


def reset_group(groups: GroupStore, name: str, rows: list[dict[str, Any]]) -> None:
    """Commit the planned positions in one commit. Raises GroupsError while a
    consumer holds the group, StorageError."""
    with _member(groups, name, "reset"):
        groups.group(name).commit({(r["topic"], r["log"]): (r["new_record"], r["new_offset"])
                                   for r in rows})


def show_reset(name: str, to: starts.FromSpec, rows: list[dict[str, Any]], dry_run: bool,
               as_json: bool) -> None:
    if as_json:
        print(json.dumps({"group": name, "to": str(to), "dry_run": dry_run, "logs": rows},
                         indent=2, sort_keys=True))
        return
    print(f"group {name}: {'would reset' if dry_run else 'reset'} to {to}"
          + (" (dry run: nothing committed)" if dry_run else ""))
    _table(["TOPIC", "LOG", "FROM", "TO", "OFFSET"],
           [[r["topic"], r["log"], _num(r["old_record"]), str(r["new_record"]), str(r["new_offset"])]
            for r in rows])
    for r in rows:
        if r["note"]:
            print(f"note: {r['note']}")


# ------------------------------------------------------------------ delete

def delete_group(groups: GroupStore, name: str) -> None:
    """Remove the group (and its member file). Raises GroupsError (no such group, a
    consumer holds it), StorageError."""
    group = _existing(groups, name)
    with _member(groups, name, "delete") as member:
        try:
            group.delete()
        except NotFound:
            raise GroupsError(f"no consumer group {name!r} in {groups.data_dir}") from None
        member.remove()
