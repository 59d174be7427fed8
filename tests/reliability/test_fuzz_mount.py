"""Case 4 of issue 5: stateful fuzzing of a real mount against a model.

A hypothesis RuleBasedStateMachine applies random sequences of docs/spec.md sections 2-4
operations, valid and invalid, to a real mount (from this process: the daemon is
another one) and to a trivial model (topics -> logs -> bytes): mkdir in the root and
in a topic, files in the root, creates, appends, writes at, before and past the end,
empty writes, truncates, O_TRUNC opens, renames of logs and topics (onto existing
ones, across levels), unlink, rmdir, symlinks, hard links, fifos, reserved, long and
non-UTF-8 names. After every step the errno must be the model's, and the listings,
sizes and contents must agree; at the end the daemon is alive.

Failures hypothesis found are kept as explicit regression tests at the bottom.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, rule,
                                 run_state_machine_as_test)

from fuse_helpers import _alive

NAMES = ["a", "b", "log one", "é", ".logfs-x", "x" * 255, "y" * 256, b"\xff\xfe"]
DATA = st.one_of(st.just(b""), st.binary(min_size=1, max_size=40),
                 st.builds(lambda n, c: bytes([c]) * n + b"\n", st.integers(1, 9000), st.integers(97, 122)))
name_st = st.sampled_from(NAMES)
COUNT = {"steps": 0, "examples": 0}


def enc(name) -> bytes:
    return name if isinstance(name, bytes) else name.encode()


def bad_name(name) -> int | None:
    """The errno a new topic or log called *name* gets, or None if it is fine."""
    raw = enc(name)
    if len(raw) > 255:
        return errno.ENAMETOOLONG
    if raw.startswith(b".logfs"):
        return errno.EINVAL
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return errno.EINVAL
    return None


def outcome(fn) -> int:
    try:
        fn()
    except OSError as exc:
        return exc.errno
    return 0


class MountMachine(RuleBasedStateMachine):
    root: bytes = b""

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[bytes, dict[bytes, bytearray]] = {}
        COUNT["examples"] += 1

    def teardown(self) -> None:
        for t in os.listdir(self.root):
            shutil.rmtree(os.path.join(self.root, t))

    def p(self, *parts) -> bytes:
        return os.path.join(self.root, *[enc(x) for x in parts])

    def expect(self, what: str, fn, want: int) -> None:
        COUNT["steps"] += 1
        got = outcome(fn)
        assert got == want, (f"{what}: errno {errno.errorcode.get(got, got)}, the model says "
                             f"{errno.errorcode.get(want, want)}")

    # -- topics ------------------------------------------------------------------
    @rule(name=name_st)
    def mkdir_root(self, name):
        n = enc(name)
        want = errno.ENAMETOOLONG if len(n) > 255 else errno.EEXIST if n in self.model else bad_name(name) or 0
        self.expect(f"mkdir {name!r}", lambda: os.mkdir(self.p(name)), want)
        if want == 0:
            self.model[n] = {}

    @rule(topic=name_st, name=name_st)
    def mkdir_in_topic(self, topic, name):
        t, n = enc(topic), enc(name)
        want = self._path_errno(t, n)
        if want is None:
            want = errno.EEXIST if n in self.model[t] else errno.EPERM
        self.expect(f"mkdir {topic!r}/{name!r}", lambda: os.mkdir(self.p(topic, name)), want)

    @rule(name=name_st)
    def file_in_root(self, name):
        n = enc(name)
        want = errno.ENAMETOOLONG if len(n) > 255 else errno.EISDIR if n in self.model else errno.EPERM
        self.expect(f"create {name!r} in the root",
                    lambda: os.close(os.open(self.p(name), os.O_WRONLY | os.O_CREAT, 0o644)), want)

    @rule(old=name_st, new=name_st)
    def rename_topic(self, old, new):
        o, n = enc(old), enc(new)
        if len(o) > 255:
            want = errno.ENAMETOOLONG
        elif o not in self.model:
            want = errno.ENOENT
        elif len(n) > 255:
            want = errno.ENAMETOOLONG
        elif o == n:
            want = 0
        elif n in self.model:
            want = errno.EEXIST
        else:
            want = bad_name(new) or 0
        self.expect(f"rename topic {old!r} -> {new!r}", lambda: os.rename(self.p(old), self.p(new)), want)
        if want == 0 and o != n:
            self.model[n] = self.model.pop(o)

    @rule(name=name_st)
    def rmdir(self, name):
        n = enc(name)
        want = (errno.ENAMETOOLONG if len(n) > 255 else errno.ENOENT if n not in self.model
                else errno.ENOTEMPTY if self.model[n] else 0)
        self.expect(f"rmdir {name!r}", lambda: os.rmdir(self.p(name)), want)
        if want == 0:
            del self.model[n]

    # -- logs ---------------------------------------------------------------------
    def _path_errno(self, t: bytes, n: bytes) -> int | None:
        """The errno of resolving topic/name's parent and name (the kernel resolves the
        path one component at a time), or None."""
        if len(t) > 255:
            return errno.ENAMETOOLONG
        if t not in self.model:
            return errno.ENOENT
        if len(n) > 255:
            return errno.ENAMETOOLONG
        return None

    def _log_errno(self, topic, name) -> int | None:
        t, n = enc(topic), enc(name)
        want = self._path_errno(t, n)
        if want is None and n not in self.model[t]:
            return errno.ENOENT
        return want

    @rule(topic=name_st, name=name_st)
    def create(self, topic, name):
        t, n = enc(topic), enc(name)
        want = self._path_errno(t, n)
        if want is None:
            want = 0 if n in self.model[t] else bad_name(name) or 0
        self.expect(f"create {topic!r}/{name!r}",
                    lambda: os.close(os.open(self.p(topic, name), os.O_WRONLY | os.O_CREAT, 0o644)), want)
        if want == 0:
            self.model[t].setdefault(n, bytearray())

    @rule(topic=name_st, name=name_st, data=DATA)
    def append(self, topic, name, data):
        want = self._log_errno(topic, name) or 0

        def op():
            fd = os.open(self.p(topic, name), os.O_WRONLY | os.O_APPEND)
            try:
                assert os.write(fd, data) == len(data)
            finally:
                os.close(fd)
        self.expect(f"append {len(data)} bytes to {topic!r}/{name!r}", op, want)
        if want == 0:
            self.model[enc(topic)][enc(name)] += data

    @rule(topic=name_st, name=name_st, delta=st.sampled_from([0, 0, -1, 1, -5000, 4096, 10 ** 6]), data=DATA)
    def write_at(self, topic, name, delta, data):
        want = self._log_errno(topic, name)
        if want is None:
            end = len(self.model[enc(topic)][enc(name)])
            at = end + delta
            if at < 0:
                at, want = 0, (errno.EPERM if end and data else 0)
            else:
                want = 0 if (delta == 0 or not data) else errno.EPERM

        def op():
            fd = os.open(self.p(topic, name), os.O_WRONLY)
            try:
                assert os.pwrite(fd, data, at) == len(data)
            finally:
                os.close(fd)
        if want == errno.ENOENT or want == errno.ENAMETOOLONG:
            self.expect(f"open {topic!r}/{name!r}", op, want)
            return
        self.expect(f"pwrite {len(data)} bytes at {at} of {topic!r}/{name!r} (end {end})", op, want)
        if want == 0:
            self.model[enc(topic)][enc(name)] += data

    @rule(topic=name_st, name=name_st, delta=st.sampled_from([0, -1, 1, -100, 4096]))
    def truncate(self, topic, name, delta):
        want = self._log_errno(topic, name)
        size = 0
        if want is None:
            end = len(self.model[enc(topic)][enc(name)])
            size = max(0, end + delta)
            want = 0 if size == end else errno.EPERM
        self.expect(f"truncate {topic!r}/{name!r} to {size}", lambda: os.truncate(self.p(topic, name), size), want)

    @rule(topic=name_st, name=name_st)
    def open_trunc(self, topic, name):
        want = self._log_errno(topic, name)
        if want is None:
            want = errno.EPERM if self.model[enc(topic)][enc(name)] else 0
        self.expect(f"open O_TRUNC {topic!r}/{name!r}",
                    lambda: os.close(os.open(self.p(topic, name), os.O_WRONLY | os.O_TRUNC)), want)

    @rule(t1=name_st, n1=name_st, t2=name_st, n2=name_st)
    def rename_log(self, t1, n1, t2, n2):
        a, b, c, d = enc(t1), enc(n1), enc(t2), enc(n2)
        # rename(2) resolves both parents first, then the old name, then the new one
        want = self._path_errno(a, b"") or self._path_errno(c, b"") or self._log_errno(t1, n1) \
            or self._path_errno(c, d)
        if want is None:
            if (a, b) == (c, d):
                want = 0
            elif d in self.model[c]:
                want = errno.EEXIST
            else:
                want = bad_name(n2) or 0
        self.expect(f"rename {t1!r}/{n1!r} -> {t2!r}/{n2!r}",
                    lambda: os.rename(self.p(t1, n1), self.p(t2, n2)), want)
        if want == 0 and (a, b) != (c, d):
            self.model[c][d] = self.model[a].pop(b)

    @rule(topic=name_st, name=name_st, new=name_st)
    def rename_log_to_root(self, topic, name, new):
        want = self._log_errno(topic, name)
        if want is None:
            n = enc(new)
            want = errno.ENAMETOOLONG if len(n) > 255 else errno.EISDIR if n in self.model else errno.EPERM
        self.expect(f"rename {topic!r}/{name!r} -> root/{new!r}",
                    lambda: os.rename(self.p(topic, name), self.p(new)), want)

    @rule(topic=name_st, name=name_st)
    def unlink(self, topic, name):
        t = enc(topic)
        want = self._log_errno(topic, name)
        self.expect(f"unlink {topic!r}/{name!r}", lambda: os.unlink(self.p(topic, name)), want or 0)
        if want is None:
            del self.model[t][enc(name)]

    @rule(name=name_st)
    def unlink_topic(self, name):
        n = enc(name)
        want = errno.ENAMETOOLONG if len(n) > 255 else errno.ENOENT if n not in self.model else errno.EISDIR
        self.expect(f"unlink topic {name!r}", lambda: os.unlink(self.p(name)), want)

    @rule(topic=name_st, name=name_st, kind=st.sampled_from(["symlink", "link", "fifo"]))
    def other_files(self, topic, name, kind):
        t, n = enc(topic), enc(name)
        want = self._path_errno(t, n)
        if want is None:
            want = errno.EEXIST if n in self.model[t] else errno.EPERM
        src = next(((tt, nn) for tt, logs in self.model.items() for nn in logs), None)
        if kind == "link" and src is None:
            return
        ops = {"symlink": lambda: os.symlink(b"/etc/passwd", self.p(topic, name)),
               "link": lambda: os.link(self.p(*src), self.p(topic, name)),
               "fifo": lambda: os.mkfifo(self.p(topic, name))}
        self.expect(f"{kind} {topic!r}/{name!r}", ops[kind], want)

    # -- the model and the mount agree -----------------------------------------------
    @invariant()
    def agrees(self):
        assert sorted(os.listdir(self.root)) == sorted(self.model), "topic listing"
        for t, logs in self.model.items():
            assert sorted(os.listdir(self.p(t))) == sorted(logs), f"listing of {t!r}"
            assert stat.S_ISDIR(os.stat(self.p(t)).st_mode)
            for n, content in logs.items():
                st_ = os.stat(self.p(t, n))
                assert stat.S_ISREG(st_.st_mode) and st_.st_size == len(content), f"size of {t!r}/{n!r}"
                with open(self.p(t, n), "rb") as f:
                    assert f.read() == bytes(content), f"content of {t!r}/{n!r}"


EXAMPLES = int(os.environ.get("LOGFS_FUZZ_EXAMPLES", "150"))


@pytest.fixture
def fuzz_mount(mount_factory, tmp_path):
    return mount_factory(tmp_path / "data", tmp_path / "mnt", "mtime_granularity=60")


def test_mount_agrees_with_model(fuzz_mount, figures):
    MountMachine.root = os.fsencode(str(fuzz_mount.mnt))
    COUNT.update(steps=0, examples=0)
    run_state_machine_as_test(MountMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=30, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
    assert _alive(fuzz_mount.pid), "the daemon died during the fuzzing"
    daemon_log = fuzz_mount.daemon_log()
    figures.update(examples=COUNT["examples"], steps=COUNT["steps"],
                   refusals_logged=daemon_log.count(" refused "))


# -- regressions: what the fuzzing found ----------------------------------------------

def test_names_longer_than_255_bytes_are_enametoolong(fuzz_mount):
    """FUSE lets names of up to 1,024 bytes through to the daemon (statfs's 255 is not
    enforced by the kernel): a 256-byte name got EPERM (a file in the root), EINVAL
    (mkdir) or ENOENT instead of ENAMETOOLONG. The 255-byte limit itself works."""
    root = fuzz_mount.mnt
    long, ok = "y" * 256, "x" * 255
    os.mkdir(root / "t")
    os.mkdir(root / ok)
    open(root / "t" / ok, "wb").close()
    attempts = {
        "mkdir": lambda: os.mkdir(root / long),
        "file in the root": lambda: open(root / long, "wb").close(),
        "create in a topic": lambda: open(root / "t" / long, "wb").close(),
        "rename a topic": lambda: os.rename(root / "t", root / long),
        "rename a log": lambda: os.rename(root / "t" / ok, root / "t" / long),
        "stat": lambda: os.stat(root / "t" / long),
    }
    for what, fn in attempts.items():
        assert outcome(fn) == errno.ENAMETOOLONG, what
    assert sorted(os.listdir(root)) == sorted(["t", ok])
    assert os.listdir(root / "t") == [ok]


def test_refusal_order_follows_the_path(fuzz_mount):
    """The root refuses files before their names are looked at; a topic refuses a name
    that is not UTF-8 (EINVAL), and a reserved one (EINVAL)."""
    root = os.fsencode(str(fuzz_mount.mnt))
    os.mkdir(os.path.join(root, b"t"))
    assert outcome(lambda: open(os.path.join(root, b"\xff\xfe"), "wb").close()) == errno.EPERM
    assert outcome(lambda: open(os.path.join(root, b"t", b"\xff\xfe"), "wb").close()) == errno.EINVAL
    assert outcome(lambda: open(os.path.join(root, b"t", b".logfs-x"), "wb").close()) == errno.EINVAL
    assert outcome(lambda: os.mkdir(os.path.join(root, b".logfs-x"))) == errno.EINVAL
    assert os.listdir(os.path.join(root, b"t")) == []
