"""docs/spec.md §10, views: ``LOG@since=...`` and the like through a real mount, read by
real tools in other processes (cat, grep, tail), checked against the window the core
computes for the same selection."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time
from datetime import datetime, timezone

import pytest

from fuse_helpers import run, wait_for
from logfs.core import GroupStore, ManualClock, open_log_store
from logfs.core.selection import parse_view_spec, resolve_end, resolve_start
from test_fuse_read import Follower

pytestmark = pytest.mark.fuse

MIN = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def line(i: int, tag: str = "INFO") -> bytes:
    return f"{i:06d} {tag} ".encode() + b"x" * 80 + b"\n"


def build(data, records: list[tuple[int, bytes]], *, topic: str = "t", name: str = "web",
          defaults: dict | None = None) -> None:
    """A log written with the core before the mount: each record one append at its
    own time (ms)."""
    clock = ManualClock(records[0][0])
    with open_log_store(str(data), clock=clock, defaults=defaults) as store:
        if topic not in store.topics():
            store.create_topic(topic)
        lg = store.create_log(topic, name)
        for t, rec in records:
            clock.set(t)
            lg.append(rec)


def core_window(m, spec: str, topic: str = "t", name: str = "web") -> bytes:
    """What the core says the view ``name@spec`` holds now (a reader of DATA)."""
    with open_log_store(str(m.data), readonly=True) as store:
        lg = store.log(topic, name)
        sel = parse_view_spec(spec, now_ms())
        start = resolve_start(lg, sel, GroupStore(str(m.data))).offset
        end = resolve_end(lg, sel)
        end = lg.end_offset if end is None else max(start, end)
        return lg.read(start, end - start)


def cat(path: str) -> bytes:
    return subprocess.run(["cat", path], capture_output=True, check=True, timeout=30).stdout


def refused(cmd, what: str) -> str:
    """Run a command that must fail; its stderr."""
    r = run(cmd, check=False)
    assert r.returncode != 0, f"{cmd!r} succeeded: {r.stdout!r}"
    assert what in r.stderr, f"{cmd!r}: expected {what!r}, got {r.stderr!r}"
    return r.stderr


def refusal_lines(m, needle: str) -> list[str]:
    return [ln for ln in m.daemon_log().splitlines() if "refused" in ln and needle in ln]


# ------------------------------------------------------------------- windows

def test_cat_and_grep_of_a_time_window(mount_factory):
    """since/until with ISO times: exactly the records of the window when every append
    begins an index interval (index.interval.bytes=1), and always what the core says
    the window is (a sparse index may start it less than one interval early)."""
    m = mount_factory(do_mount=False)
    t0 = iso_ms("2026-12-01T08:00")
    recs = [(t0 + i * MIN, line(i, "ERROR" if i % 7 == 0 else "INFO")) for i in range(181)]
    build(m.data, recs, name="exact", defaults={"index.interval.bytes": "1"})
    build(m.data, recs, name="sparse")
    m.mount()
    spec = "since=2026-12-01T09:00,until=2026-12-01T10:00"
    window = b"".join(r for t, r in recs if t0 + 60 * MIN <= t <= t0 + 120 * MIN)
    assert cat(m.p("t", f"exact@{spec}")) == window == core_window(m, spec, name="exact")
    sparse = cat(m.p("t", f"sparse@{spec}"))
    assert sparse == core_window(m, spec, name="sparse") and window in sparse
    got = run(["grep", "ERROR", m.p("t", f"exact@{spec}")]).stdout.encode()
    assert got == b"".join(ln for ln in window.splitlines(keepends=True) if b"ERROR" in ln)
    assert got.count(b"\n") == 9  # records 63, 70, ..., 119
    # ISO with a zone, epoch milliseconds, until alone
    assert cat(m.p("t", "exact@since=2026-12-01T10:00+01:00,until=2026-12-01T10:00Z")) == window
    assert cat(m.p("t", f"exact@since={t0 + 60 * MIN},until={t0 + 120 * MIN}")) == window
    assert cat(m.p("t", "exact@until=2026-12-01T08:02")) == b"".join(r for _, r in recs[:3])


def test_since_a_duration_counts_back_from_now(mount_factory):
    m = mount_factory(do_mount=False)
    now = now_ms()
    old = [(now - 3 * 3600_000 + i, line(i)) for i in range(50)]
    new = [(now - 30 * MIN + i, line(100 + i)) for i in range(50)]
    build(m.data, old + new, defaults={"index.interval.bytes": "1"})
    m.mount()
    view = m.p("t", "web@since=1h")
    assert cat(view) == b"".join(r for _, r in new) == core_window(m, "since=1h")
    assert cat(m.p("t", "web@since=4h")) == b"".join(r for _, r in old + new)
    assert cat(m.p("t", "web@since=10m")) == b""


def test_record_and_offset_views(mnt):
    log = mnt.p("t", "web")
    data = b"".join(line(i) for i in range(1000))
    with open(log, "ab") as f:
        f.write(data)
    lines = data.splitlines(keepends=True)
    assert cat(mnt.p("t", "web@record=0")) == data
    assert cat(mnt.p("t", "web@record=990")) == b"".join(lines[990:])
    assert cat(mnt.p("t", "web@record=5000")) == b""  # past the end: an empty view
    assert cat(mnt.p("t", "web@offset=4500")) == data[4500:]
    assert cat(mnt.p("t", "web@record=10,until=9999999999999")) == b"".join(lines[10:])
    assert os.stat(mnt.p("t", "web@record=990")).st_size == 10 * len(lines[0])
    # a view reads like a file of its own: seeks, head, tail, dd
    v = mnt.p("t", "web@record=500")
    assert run(["head", "-n", "1", v]).stdout.encode() == lines[500]
    assert run(["tail", "-n", "1", v]).stdout.encode() == lines[-1]
    assert run(f"dd if='{v}' bs={len(lines[0])} skip=2 count=1 status=none").stdout.encode() == lines[502]
    with open(v, "rb") as f:
        assert os.pread(f.fileno(), 10, 3 * len(lines[0])) == lines[503][:10]
    refused(["cat", mnt.p("t", "web@offset=999999999")], "No data available")  # past the end


@pytest.mark.parametrize("n", [1, 10, 100, 999, 5000])
def test_last_n_is_tail_n(mnt, n):
    log = mnt.p("t", "web")
    with open(log, "ab") as f:
        f.write(b"".join(line(i) for i in range(999)) + b"an incomplete last line")
    assert cat(mnt.p("t", f"web@last={n}")) == run(["tail", "-n", str(n), log]).stdout.encode()


def test_tail_follows_a_view_like_tail_n_f(mnt):
    """`tail -n +1 -f LOG@last=100` prints what `tail -n 100` prints, then follows."""
    log = mnt.p("t", "web")
    with open(log, "ab") as f:
        f.write(b"".join(line(i) for i in range(500)))
    expected = run(["tail", "-n", "100", log]).stdout.encode()
    f = Follower(["tail", "-n", "+1", "-f", mnt.p("t", "web@last=100")])
    try:
        f.wait_for(expected[-100:], 5)
        assert f.buf == expected
        time.sleep(0.3)
        for k in range(3):  # appends from other processes, each seen within a poll or two
            run(f"echo appended-{k} >> {log}")
            took = f.wait_for(f"appended-{k}\n".encode(), 2.5)
            assert took < 2.5
        assert f.buf == expected + b"".join(f"appended-{k}\n".encode() for k in range(3))
    finally:
        f.close()


def test_group_view_starts_at_the_committed_position(mnt):
    log = mnt.p("t", "web")
    data = b"".join(line(i) for i in range(100))
    with open(log, "ab") as f:
        f.write(data)
    lines = data.splitlines(keepends=True)
    groups = GroupStore(str(mnt.data))
    groups.group("billing").commit({("t", "web"): (40, 40 * len(lines[0]))})
    assert cat(mnt.p("t", "web@group=billing")) == b"".join(lines[40:])
    groups.group("billing").commit({("t", "web"): (90, 90 * len(lines[0]))})
    assert cat(mnt.p("t", "web@group=billing")) == b"".join(lines[90:])
    assert cat(mnt.p("t", "web@group=billing,until=1")) == b""  # a start and an end
    # reading a view commits nothing
    assert groups.group("billing").position("t", "web").record == 90
    # a group without a position starts at the first record, and says so once
    for _ in range(3):
        assert cat(mnt.p("t", "web@group=newcomer")) == data
    notes = [ln for ln in mnt.daemon_log().splitlines() if "newcomer" in ln]
    assert len(notes) == 1 and "no committed position" in notes[0], notes
    assert not groups.group("newcomer").exists


# ----------------------------------------------------------------- following

def test_tail_f_on_a_view_sees_appends(mnt):
    log = mnt.p("t", "web")
    run(f"echo before >> {log}")
    time.sleep(0.01)
    t = now_ms()
    f = Follower(["tail", "-f", "-n", "+1", mnt.p("t", f"web@since={t}")])
    try:
        time.sleep(0.5)
        assert f.buf == b""  # the line before `since` is not in the view
        for k in range(3):
            run(f"echo after-{k} >> {log}")
            took = f.wait_for(f"after-{k}\n".encode(), 2.5)
            assert took < 2.5
    finally:
        f.close()
    assert b"before" not in f.buf


def test_a_view_with_until_ahead_follows_until_then_stops(mount_factory):
    m = mount_factory("index.interval.bytes=1")
    os.mkdir(m.p("t"))
    log = m.p("t", "web")
    run(f"echo one >> {log}")
    until = now_ms() + 1500
    view = m.p("t", f"web@until={until}")
    with open(view, "rb") as held:
        run(f"echo two >> {log}")
        assert cat(view) == b"one\ntwo\n"
        wait_for(lambda: now_ms() > until + 100, 5, "the clock to pass until")
        run(f"echo three >> {log}")
        assert cat(view) == b"one\ntwo\n"
        time.sleep(0.3)  # past the view's attribute timeout
        assert os.fstat(held.fileno()).st_size == 8 and held.read() == b"one\ntwo\n"


# -------------------------------------------------------------- the namespace

def test_views_are_looked_up_but_never_listed(mnt):
    run(f"echo x >> {mnt.p('t', 'web')}")
    for v in ("web@since=1h", "web@last=1", "web@record=0"):
        assert os.path.isfile(mnt.p("t", v))
        assert cat(mnt.p("t", v)) == b"x\n"
    assert os.listdir(mnt.p("t")) == ["web"]
    assert run(["ls", "-a", mnt.p("t")]).stdout.split() == [".", "..", "web"]
    assert run(f"ls {mnt.p('t')}/*@*", check=False).returncode != 0  # globs list: no views
    st = os.stat(mnt.p("t", "web@record=0"))
    assert stat.S_IMODE(st.st_mode) & 0o222 == 0 and st.st_size == 2


def test_a_relative_view_re_resolves_on_a_later_lookup(mnt):
    log = mnt.p("t", "web")
    with open(log, "ab") as f:
        f.write(b"a\nb\nc\n")
    view = mnt.p("t", "web@last=2")
    ino = os.stat(view).st_ino
    assert os.stat(view).st_ino == ino  # the same window: the same file
    held = open(view, "rb")
    try:
        assert cat(view) == b"b\nc\n"
        run(f"echo d >> {log}")
        assert cat(view) == b"c\nd\n"       # a new cat: the new last two
        assert os.stat(view).st_ino != ino  # a new window is a new file
        assert held.read() == b"b\nc\nd\n"  # the open one keeps its start, and grows
    finally:
        held.close()


def test_since_a_duration_re_resolves_as_time_passes(mount_factory):
    m = mount_factory("index.interval.bytes=1")
    os.mkdir(m.p("t"))
    log = m.p("t", "web")
    run(f"echo old >> {log}")
    time.sleep(2.5)
    run(f"echo new >> {log}")
    view = m.p("t", "web@since=2s")
    assert cat(view) == b"new\n"
    time.sleep(2.5)
    assert cat(view) == b""


# ---------------------------------------------------------------- refusals

def test_bad_view_is_einval_with_one_daemon_line(mnt):
    run(f"echo x >> {mnt.p('t', 'web')}")
    for spec, why in (("since=banana", "bad time"), ("since=1h,last=3", "choose one of"),
                      ("last=-1", "non-negative"), ("record=1,record=2", "twice")):
        refused(["cat", mnt.p("t", f"web@{spec}")], "Invalid argument")
        lines = wait_for(lambda: refusal_lines(mnt, spec), 5, f"the refusal of {spec}")
        assert len(lines) == 1 and "EINVAL" in lines[0] and why in lines[0], lines
        assert "Traceback" not in mnt.daemon_log()


def test_view_of_a_missing_log_is_enoent_with_one_daemon_line(mnt):
    refused(["cat", mnt.p("t", "nolog@since=1h")], "No such file or directory")
    lines = wait_for(lambda: refusal_lines(mnt, "nolog@since=1h"), 5, "the refusal")
    assert len(lines) == 1 and "ENOENT" in lines[0] and "'nolog'" in lines[0], lines


def test_a_view_is_read_only(mnt):
    log = mnt.p("t", "web")
    run(f"echo x >> {log}")
    view = mnt.p("t", "web@record=0")
    for cmd in ([f"echo y >> '{view}'"], [f"echo y > '{view}'"], ["truncate", "-s", "0", view],
                ["chmod", "600", view], ["touch", view], ["rm", "-f", view],
                ["mv", view, mnt.p("t", "moved")]):
        refused(cmd[0] if len(cmd) == 1 else cmd, "Permission denied")
    for flags in (os.O_WRONLY | os.O_APPEND, os.O_RDWR, os.O_RDONLY | os.O_TRUNC):
        with pytest.raises(OSError) as e:
            os.open(view, flags)
        assert e.value.errno == errno.EACCES
    assert open(log, "rb").read() == b"x\n" and os.listdir(mnt.p("t")) == ["web"]
    assert len(refusal_lines(mnt, "is a view: read-only")) >= 7


def test_a_log_named_like_a_view_is_refused_and_other_names_with_at_work(mnt):
    refused(["touch", mnt.p("t", "web@since=1h")], "Invalid argument")
    with pytest.raises(OSError) as e:
        os.mknod(mnt.p("t", "web@last=3"), 0o644 | stat.S_IFREG)
    assert e.value.errno == errno.EINVAL
    lines = wait_for(lambda: [ln for ln in refusal_lines(mnt, "web@since=1h") if "EINVAL" in ln],
                     5, "the refusal")
    assert len(lines) == 1 and "reads as a view" in lines[0], lines
    for name in ("user@example.com", "a@b=1", "x@"):
        run(["touch", mnt.p("t", name)])
        run(f"echo hi >> '{mnt.p('t', name)}'")
        assert cat(mnt.p("t", name)) == b"hi\n"
    run(f"echo z >> {mnt.p('t', 'web')}")
    with pytest.raises(OSError) as e:  # (mv reports EINVAL as "a subdirectory of itself")
        os.rename(mnt.p("t", "user@example.com"), mnt.p("t", "web@record=0"))
    assert e.value.errno == errno.EINVAL
    assert sorted(os.listdir(mnt.p("t"))) == ["a@b=1", "user@example.com", "web", "x@"]


def test_retention_under_a_view_start_is_enodata(mount_factory):
    m = mount_factory("segment.bytes=1000,retention.bytes=3000")
    os.mkdir(m.p("t"))
    log = m.p("t", "web")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"".join(line(i) for i in range(5)))
        view = m.p("t", "web@record=0")
        with open(view, "rb") as held:
            assert held.read(len(line(0))) == line(0)
            for i in range(5, 200):  # retention moves the start past the view's start
                os.write(fd, line(i))
            assert m.describe("t", "web")["start_offset"] > 4096
            wait_for(lambda: m.describe()["fuse"]["cache_invalidations"] >= 2, 5,
                     "the daemon to drop the cached pages of the log and of the view")
            with pytest.raises(OSError) as e:
                os.pread(held.fileno(), 100, 0)
            assert e.value.errno == errno.ENODATA
        refused(["cat", view], "No data available")  # record 0 is gone: a new lookup says so
        start = m.describe("t", "web")["start_offset"]
        retained = run(["tail", "-c", f"+{start + 1}", log]).stdout.encode()
        assert cat(m.p("t", f"web@offset={start}")) == retained and len(retained) > 3000
    finally:
        os.close(fd)


# -------------------------------------------------------------- page cache

def test_a_settled_view_is_served_from_the_page_cache(mnt):
    log = mnt.p("t", "web")
    with open(log, "ab") as f:
        f.write(b"".join(line(i) for i in range(20000)))
    time.sleep(0.01)
    view = mnt.p("t", f"web@record=100,until={now_ms()}")  # an end in the past: fixed
    time.sleep(0.01)
    served = lambda: mnt.describe("t", "web")["fuse"]["read_bytes"]  # noqa: E731
    r0 = served()
    size = len(cat(view))
    first = served() - r0
    assert size > 0 and first >= size, (size, first)  # the daemon served the view's bytes
    deltas = []
    for _ in range(3):  # see test_second_cat_is_served_by_the_page_cache on evictions
        before = served()
        cat(view)
        deltas.append(served() - before)
        if deltas[-1] == 0:
            break
    assert deltas[-1] == 0, f"every repeated cat of the view reached the daemon: {deltas}"
