"""The pyfuse3 ``Operations`` class: FUSE requests -> storage-core calls.

Theory of operation
-------------------
The mount root holds topics (directories), each topic holds logs (regular files).
Every handler decodes its arguments, resolves inodes through the
:class:`~logfs.fusefs.inodes.InodeTable`, and calls the core. Every handler is
wrapped by :func:`~logfs.fusefs.errors.fuse_handler`: whatever goes wrong becomes
an errno and a log line, never a dead mount.

Writes are write-through (no writeback cache): each FUSE ``write`` is one
``Log.append`` at the log's end. The kernel serialises writes to one inode and
sends O_APPEND writes at its cached size, which equals the core's end offset
because every byte reaches the log through this mount. A write anywhere else is
refused with EPERM, as is O_TRUNC / truncate of a non-empty log.

Reads use the page cache: ``open`` replies with ``keep_cache``, so pages survive
open/close, and the INIT handshake turns off libfuse's auto_inval_data
(``enable_auto_inval_data = False``, honoured by logfs's build of pyfuse3,
pyfuse3_features.py), so the exact mtime getattr reports after an append does not make
the kernel drop the file's cached pages (with a stock pyfuse3, mtimes are rounded down
to 60 s instead; see docs/fuse.md). Cached pages are dropped on purpose only when
retention moves a log's start.

A descriptor opened read-write (``O_RDWR``: ``<>``, ``open(..., "a+")``) is served
with direct I/O, the one way a FUSE daemon has to refuse a shared mapping: the
kernel answers ``mmap(MAP_SHARED)`` of it with ENODEV. Without that, a writable
shared mapping lets a process store into the log's cached pages; the write-back is
refused (EPERM), but the kernel keeps the modified pages, and every reader of the
mount would see bytes that were never written (docs/fuse.md, "Shared mappings").
Descriptors opened read-only or write-only (``cat``, ``>>``, ``cp``) keep the page
cache.

Views (``web@since=1h``, views.py) are looked up by name, never listed, and read
through the same path as logs (fileread.py); every request that would change one
(open for writing, truncate, chmod/chown/touch, rm, mv) fails with EACCES: its mode
has no write bits, so that is also what the kernel answers every user but root.

All handlers run in the single trio thread, and only that thread calls the core
(which is not thread-safe). Appends and reads are page-cache operations and run
inline. ``fsync`` first writes the active segment's dirty pages from a worker thread
through its own descriptor, then runs the core's fsync inline (now short).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
from typing import Any, Callable

import pyfuse3
import trio

from logfs.core import GroupStore, Log, LogStore
from logfs.core.naming import is_user_name
from logfs.core.selection import split_view_name
from logfs.fusefs.attrs import DirAttrs, log_attributes, view_attributes
from logfs.fusefs import pyfuse3_features
from logfs.fusefs.diskio import write_out_pages
from logfs.fusefs.errors import Refused, fuse_handler
from logfs.fusefs.fileread import PAGE_SIZE, gather, read_slow_parts
from logfs.fusefs.inodes import ROOT_INODE, InodeTable, Kind, Node
from logfs.fusefs.views import NoteOnce, ViewWindow, resolve_view
from logfs.tier.task import fetch_remote

log = logging.getLogger(__name__)

# log mtimes are rounded down to this when auto_inval_data stays on (attrs.py)
FALLBACK_MTIME_GRANULARITY_S = 60.0

SPLIT_WRITE_RESERVE = (1 << 20) + (64 << 10)  # the largest FUSE write, plus index room


def segment_paths(lg: Log, a: int, b: int) -> list[str]:
    """The segment files that hold the log's bytes [max(a, start), b), in order. Calls
    the store (the trio thread only); raises what ``Log.read_range`` raises."""
    paths: list[str] = []
    a = max(a, lg.start_offset)
    while a < b:
        ranges = lg.read_range(a, b)  # a bounded number of ranges per call
        if not ranges:
            break
        for r in ranges:
            if not paths or paths[-1] != r.path:
                paths.append(r.path)
            a = r.log_offset + r.length
    return paths


NAME_MAX = 255  # what statfs reports; FUSE itself lets names of up to 1024 bytes through


def _decode(name: bytes) -> str:
    if len(name) > NAME_MAX:
        raise Refused(errno.ENAMETOOLONG, f"a name of {len(name)} bytes: the limit is {NAME_MAX}")
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(errno.EINVAL, f"name {name!r} is not UTF-8") from None


class LogfsOperations(pyfuse3.Operations):
    """FUSE request handlers over a writable :class:`LogStore`.

    ``spawn`` is the composition root's ``nursery.start_soon``: used to run
    cache invalidations outside of the handler that triggers them (an
    invalidation from inside a handler can deadlock against the kernel).
    """

    enable_writeback_cache = False
    enable_acl = False
    # libfuse's auto_inval_data off in the INIT handshake (docs/fuse.md): read by a pyfuse3
    # with patches/0001 (pyfuse3_features.py), ignored by a stock one. None: libfuse's default.
    enable_auto_inval_data: bool | None = False
    # pyfuse3 with patches/0003 answers every write by calling this, a plain function,
    # instead of awaiting ``write``: set to ``_write`` by __init__ where it is detected
    # (pyfuse3_features.py). None: pyfuse3 awaits ``write``, as a stock one always does.
    write_sync: Callable[[int, int, bytes], int] | None = None

    def __init__(
        self,
        store: LogStore,
        data_dir: str,
        *,
        mtime_granularity_s: float | None = None,
        keep_auto_inval_data: bool = False,
        spawn: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.data_dir = data_dir
        # auto_inval_data stays on with -o auto_inval_data, or where pyfuse3 has no switch
        switch = pyfuse3_features.has_auto_inval_data_switch()
        if keep_auto_inval_data or not switch:
            self.enable_auto_inval_data = None  # libfuse's default: what a stock pyfuse3 does
        self.auto_inval_data = self.enable_auto_inval_data is not False
        if pyfuse3_features.has_write_sync():
            self.write_sync = self._write
        self._no_switch = not switch and not keep_auto_inval_data  # on only for want of one
        # None: exact mtimes when auto_inval_data is off, else coarse (attrs.py)
        if mtime_granularity_s is None:
            mtime_granularity_s = FALLBACK_MTIME_GRANULARITY_S if self.auto_inval_data else 0
        self.mtime_granularity_ns = int(mtime_granularity_s * 1e9)
        self.spawn = spawn
        # called with (topic, log) after every append (the Kafka listener's Fetch wake-up)
        self.on_append: Callable[[str, str], None] | None = None
        self.kafka_address: str | None = None  # HOST:PORT while the listener runs
        self.inodes = InodeTable()
        self.groups = GroupStore(data_dir)  # read only: `@group=G` views
        self._note_view = NoteOnce()
        self.totals: dict[str, int] = {
            "read_calls": 0, "read_bytes": 0, "write_calls": 0, "write_bytes": 0,
            "cache_invalidations": 0,
        }
        self._dir_handles: dict[int, list[str] | None] = {}
        self._rdwr_noted: set[int] = set()  # logs whose read-write open was logged
        self._dir_inode: dict[int, int] = {}
        self._next_dir_fh = itertools.count(1 << 40)
        self.dir_attrs = DirAttrs(self._dir_path)

    def init(self) -> None:
        """Runs inside the FUSE INIT handshake (pyfuse3's fuse_init), after pyfuse3 has
        applied ``enable_auto_inval_data`` to the connection: says in the log what the
        kernel's page cache will do. Does not block, never raises."""
        if self._no_switch:
            log.warning("cannot turn off libfuse's auto_inval_data (%s): appends will drop a "
                        "log's cached pages whenever its reported mtime changes",
                        pyfuse3_features.why_missing())
        log.info("kernel page cache: auto_inval_data %s, log mtimes %s",
                 "on" if self.auto_inval_data else "off",
                 f"rounded down to {self.mtime_granularity_ns / 1e9:g} s" if self.mtime_granularity_ns
                 else "exact")
        if self.write_sync is not None:
            log.info("write requests: answered through pyfuse3's write_sync, without a coroutine")
        else:
            log.info("write requests: the async write handler (%s)", pyfuse3_features.why_missing())

    # ----------------------------------------------------------------- helpers

    def _node(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None:
            raise Refused(errno.ENOENT, f"inode {ino} is unknown")
        if not node.linked and node.kind is not Kind.ROOT and node.kind is not Kind.VIEW:
            raise Refused(errno.ENOENT, f"{'/'.join(self.inodes.path(node))} was removed")
        return node

    def _dir_path(self, ino: int) -> str:
        """The backing directory of the root or a topic."""
        node = self.inodes[ino]
        if node.kind is Kind.ROOT:
            return self.store.data_dir
        return os.path.join(self.store.data_dir, node.name)

    def _log_of(self, node: Node) -> Log:
        if node.kind is not Kind.LOG:
            if node.kind is Kind.VIEW:
                raise self._read_only(node)
            raise Refused(errno.EISDIR, "a topic is a directory")
        topic, name = self.inodes.path(node)
        return self.store.log(topic, name)

    def _view_of(self, node: Node) -> tuple[Node, Log, ViewWindow]:
        """A view's log node, log and window (its end fixed once its ``until`` has
        passed). Refused(ENOENT) when the log was removed (or removed and created
        again: the view belongs to the old one)."""
        window = node.view
        assert window is not None
        log_node = self.inodes.get(window.log_ino)
        if log_node is None or not log_node.linked:
            raise Refused(errno.ENOENT, f"the log of the view {'/'.join(self.inodes.path(node))} "
                          "was removed")
        lg = self._log_of(log_node)
        if window.until_ms is not None:
            settled = window.settle(lg, self.store.clock.now_ms())
            if settled is not window:
                node.view = window = settled
        return log_node, lg, window

    def _read_only(self, node: Node) -> Refused:
        return Refused(errno.EACCES, f"{'/'.join(self.inodes.path(node))} is a view: read-only "
                       "(docs/spec.md, section 10)")

    def _lookup_view(self, topic: Node, name: str) -> Node:
        """The node of the view ``name`` in ``topic``, resolved now (views.py).
        Refused(ENOENT, logged) if it does not read as a view of an existing log;
        what ``resolve_view`` raises for a bad view."""
        view = split_view_name(name)
        if view is None:
            raise Refused(errno.ENOENT, "no such log")
        log_name, spec = view
        if not is_user_name(log_name) or not self.store.has_log(topic.name, log_name):
            self.inodes.drop_view(topic.ino, name)
            raise Refused(errno.ENOENT, f"{name!r} reads as a view of the log {log_name!r}, "
                          f"which topic {topic.name!r} does not have", loud=True)
        log_node = self.inodes.ensure(topic.ino, log_name, Kind.LOG)
        lg = self.store.log(topic.name, log_name)
        window, note = resolve_view(lg, log_node.ino, spec, self.store.clock.now_ms(), self.groups)
        if note is not None:
            self._note_view(f"{topic.name}/{name}", note)
        return self.inodes.view(topic.ino, name, window)

    def _topic_of(self, ino: int) -> str:
        node = self._node(ino)
        if node.kind is not Kind.TOPIC:
            raise Refused(errno.EPERM, "only topics (directories) may be created in the mount "
                          "root" if node.kind is Kind.ROOT else "not a topic")
        return node.name

    def attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        """The stat figures of ``node`` as the kernel will see them (attrs.py)."""
        if node.kind is Kind.LOG:
            lg = self._log_of(node)
            node.stats["start_offset"] = lg.start_offset
            return log_attributes(node.ino, lg, self.mtime_granularity_ns)
        if node.kind is Kind.VIEW:
            _log_node, lg, window = self._view_of(node)
            return view_attributes(node.ino, lg, window, self.mtime_granularity_ns)
        nlink = 2 + (len(self.store.topics()) if node.kind is Kind.ROOT else 0)
        return self.dir_attrs.attributes(node.ino, nlink)

    def _entry(self, node: Node) -> pyfuse3.EntryAttributes:
        a = self.attributes(node)
        self.inodes.remember(node)
        return a

    def invalidate_data(self, node: Node) -> None:
        """Drop the kernel's cached pages of a log, from a background task."""
        if self.spawn is None:
            return
        ino = node.ino

        async def run() -> None:
            try:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, False)
                self.totals["cache_invalidations"] += 1
            except OSError as exc:  # the kernel may have forgotten the inode already
                log.debug("invalidate_inode(%d): %s", ino, exc)
            except Exception:  # noqa: BLE001 - never let a helper task kill the mount
                log.exception("invalidate_inode(%d) failed", ino)

        self.spawn(run)

    def invalidate_moved_starts(self) -> None:
        """After maintenance: drop cached pages of every log whose start moved, and
        of its views that held bytes below the new start."""
        moved: dict[int, int] = {}
        for node in self.inodes.logs():
            try:
                lg = self._log_of(node)
            except Exception:  # noqa: BLE001 - a log removed meanwhile
                continue
            if lg.start_offset != node.stats.get("start_offset", lg.start_offset):
                self.invalidate_data(node)
                moved[node.ino] = lg.start_offset
            node.stats["start_offset"] = lg.start_offset
        if moved:
            self._invalidate_views(moved)

    def _invalidate_views(self, moved: dict[int, int]) -> None:
        """Drop the cached pages of views whose window begins below their log's new
        start (``moved``: log inode -> new start offset)."""
        for view in self.inodes.views():
            w = view.view
            if w is not None and w.log_ino in moved and w.start < moved[w.log_ino]:
                self.invalidate_data(view)

    def _count(self, node: Node, what: str, nbytes: int) -> None:
        self.totals[f"{what}_calls"] += 1
        self.totals[f"{what}_bytes"] += nbytes
        s = node.stats
        s[f"{what}_calls"] = s.get(f"{what}_calls", 0) + 1
        s[f"{what}_bytes"] = s.get(f"{what}_bytes", 0) + nbytes

    def _create_log(self, parent: int, name: bytes, mode: int, ctx) -> Node:
        topic = self._topic_of(parent)
        lname = _decode(name)
        lg = self.store.create_log(topic, lname)
        umask = getattr(ctx, "umask", 0)
        try:
            lg.set_attrs(mode=stat.S_IMODE(mode) & ~umask, uid=ctx.uid, gid=ctx.gid)
        except Exception:  # a full disk: the create fails, so no log may be left
            self.store.delete_log(topic, lname)
            raise
        return self.inodes.ensure(parent, lname, Kind.LOG)

    # ---------------------------------------------------------------- namespace

    @fuse_handler
    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._node(parent_inode)
        if len(name) > NAME_MAX:
            raise Refused(errno.ENAMETOOLONG, f"a name of {len(name)} bytes: the limit is {NAME_MAX}")
        try:
            sname = name.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(errno.ENOENT, "not UTF-8") from None
        if sname == ".":
            return self._entry(parent)
        if sname == "..":
            return self._entry(self.inodes[parent.parent])
        if parent.kind is Kind.ROOT:
            if not is_user_name(sname) or not self.store.has_topic(sname):
                raise Refused(errno.ENOENT, "no such topic")
            return self._entry(self.inodes.ensure(ROOT_INODE, sname, Kind.TOPIC))
        if parent.kind is Kind.TOPIC:
            if not is_user_name(sname) or not self.store.has_log(parent.name, sname):
                return self._entry(self._lookup_view(parent, sname))
            return self._entry(self.inodes.ensure(parent.ino, sname, Kind.LOG))
        raise Refused(errno.ENOTDIR, "a log is not a directory")

    @fuse_handler
    async def forget(self, inode_list):
        for ino, count in inode_list:
            self.inodes.forget(ino, count)

    @fuse_handler
    async def getattr(self, inode, ctx=None):
        return self.attributes(self._node(inode))

    @fuse_handler
    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self._node(inode)
        if node.kind is Kind.VIEW:
            raise self._read_only(node)
        if fields.update_size:
            if node.kind is not Kind.LOG:
                raise Refused(errno.EISDIR, "cannot truncate a topic")
            self._log_of(node).truncate_check(attr.st_size)
        if fields.update_mode or fields.update_uid or fields.update_gid:
            mode = stat.S_IMODE(attr.st_mode) if fields.update_mode else None
            uid = attr.st_uid if fields.update_uid else None
            gid = attr.st_gid if fields.update_gid else None
            if node.kind is Kind.LOG:
                self._log_of(node).set_attrs(mode=mode, uid=uid, gid=gid)
            else:
                try:
                    self.dir_attrs.update(node.ino, mode, uid, gid)
                except OSError as exc:
                    raise Refused(exc.errno or errno.EIO, f"chmod/chown of a directory: {exc.strerror}") from None
        # atime/mtime updates (touch, utimensat) are accepted and ignored: a log's
        # mtime is its last append, at the mount's mtime granularity.
        return self.attributes(node)

    @fuse_handler
    async def mkdir(self, parent_inode, name, mode, ctx):
        parent = self._node(parent_inode)
        if parent.kind is not Kind.ROOT:
            raise Refused(errno.EPERM, "a topic holds logs only: no directories inside a topic")
        topic = _decode(name)
        self.store.create_topic(topic)
        umask = getattr(ctx, "umask", 0)
        node = self.inodes.ensure(ROOT_INODE, topic, Kind.TOPIC)
        try:
            self.dir_attrs.created(node.ino, mode & ~umask, ctx.uid, ctx.gid)
        except OSError as exc:  # not root: keep the daemon's ownership
            log.info("mkdir %s: keeping the daemon's ownership: %s", topic, exc.strerror)
        return self._entry(node)

    @fuse_handler
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        if not stat.S_ISREG(mode):
            raise Refused(errno.EPERM, "only topics and logs: no device nodes, fifos or sockets")
        return self._entry(self._create_log(parent_inode, name, mode, ctx))

    @fuse_handler
    async def create(self, parent_inode, name, mode, flags, ctx):
        node = self._create_log(parent_inode, name, mode, ctx)
        return self._file_info(node, flags, ctx), self._entry(node)

    @fuse_handler
    async def symlink(self, parent_inode, name, target, ctx):
        raise Refused(errno.EPERM, "symlinks are not supported: topics and logs only")

    @fuse_handler
    async def link(self, inode, new_parent_inode, new_name, ctx):
        raise Refused(errno.EPERM, "hard links are not supported: topics and logs only")

    @fuse_handler
    async def readlink(self, inode, ctx):
        raise Refused(errno.EINVAL, "not a symlink")

    @fuse_handler
    async def unlink(self, parent_inode, name, ctx):
        parent = self._node(parent_inode)
        sname = _decode(name)
        if parent.kind is Kind.ROOT:
            raise Refused(errno.EISDIR, "a topic is a directory: use rmdir or rm -r")
        self._refuse_view_name(parent, sname)
        self.store.delete_log(parent.name, sname)
        self.inodes.unlink(parent.ino, sname)

    @fuse_handler
    async def rmdir(self, parent_inode, name, ctx):
        parent = self._node(parent_inode)
        sname = _decode(name)
        if parent.kind is not Kind.ROOT:
            raise Refused(errno.ENOTDIR, "a log is not a directory")
        self.store.delete_topic(sname)
        self.inodes.unlink(ROOT_INODE, sname)

    @fuse_handler
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise Refused(errno.EINVAL, "RENAME_EXCHANGE is not supported")
        old_parent = self._node(parent_inode_old)
        new_parent = self._node(parent_inode_new)
        old, new = _decode(name_old), _decode(name_new)
        if old_parent.kind is Kind.ROOT:
            if new_parent.kind is not Kind.ROOT:
                raise Refused(errno.EPERM, "a topic cannot move inside another topic")
            if old != new:
                self.store.rename_topic(old, new)
        else:
            if new_parent.kind is not Kind.TOPIC:
                raise Refused(errno.EPERM, "a log must stay inside a topic")
            self._refuse_view_name(old_parent, old)
            if (old_parent.ino, old) != (new_parent.ino, new):
                self.store.rename_log(old_parent.name, old, new_parent.name, new)
        self.inodes.move(old_parent.ino, old, new_parent.ino, new)

    def _refuse_view_name(self, topic: Node, name: str) -> None:
        """Refused(EACCES) if ``name`` in ``topic`` is a view rather than a log (rm or
        mv of a view: it is read-only)."""
        if split_view_name(name) is not None and not self.store.has_log(topic.name, name):
            raise Refused(errno.EACCES, f"{topic.name}/{name} is a view: read-only; rm or mv "
                          "the log itself (docs/spec.md, section 10)")

    # -------------------------------------------------------------- directories

    @fuse_handler
    async def opendir(self, inode, ctx):
        node = self._node(inode)
        if node.kind is Kind.LOG or node.kind is Kind.VIEW:
            raise Refused(errno.ENOTDIR, "a log is not a directory")
        fh = next(self._next_dir_fh)
        self._dir_handles[fh] = None
        self._dir_inode[fh] = inode
        return fh

    @fuse_handler
    async def readdir(self, fh, start_id, token):
        ino = self._dir_inode[fh]
        node = self._node(ino)
        names = self._dir_handles.get(fh)
        if names is None or start_id == 0:
            if node.kind is Kind.ROOT:
                names = [t for t in self.store.topics() if is_user_name(t)]
            else:
                names = list(self.store.logs(node.name))
            self._dir_handles[fh] = names
        # ids: 1 ".", 2 "..", 3.. the names (their lookup counts are not raised for . and ..)
        if start_id < 1 and not pyfuse3.readdir_reply(token, b".", self.attributes(node), 1):
            return
        if start_id < 2:
            parent = self.inodes[node.parent]
            if not pyfuse3.readdir_reply(token, b"..", self.attributes(parent), 2):
                return
        kind = Kind.TOPIC if node.kind is Kind.ROOT else Kind.LOG
        for i in range(max(0, start_id - 2), len(names)):
            child = self.inodes.ensure(ino, names[i], kind)
            try:
                attrs = self.attributes(child)
            except Exception:  # noqa: BLE001 - removed since the listing: skip it
                continue
            if not pyfuse3.readdir_reply(token, names[i].encode("utf-8"), attrs, i + 3):
                break
            self.inodes.remember(child)

    @fuse_handler
    async def releasedir(self, fh):
        self._dir_handles.pop(fh, None)
        self._dir_inode.pop(fh, None)

    @fuse_handler
    async def fsyncdir(self, fh, datasync):
        return None

    @fuse_handler
    async def statfs(self, ctx):
        sv = os.statvfs(self.data_dir)
        s = pyfuse3.StatvfsData()
        s.f_bsize = sv.f_bsize
        s.f_frsize = sv.f_frsize
        s.f_blocks = sv.f_blocks
        s.f_bfree = sv.f_bfree
        s.f_bavail = sv.f_bavail
        s.f_files = sv.f_files
        s.f_ffree = sv.f_ffree
        s.f_favail = sv.f_favail
        s.f_namemax = 255
        return s

    # -------------------------------------------------------------------- files

    def _file_info(self, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        """The open reply: keep the page cache, except for a read-write descriptor,
        which gets direct I/O so that it cannot be mapped shared (module docstring)."""
        if flags & os.O_ACCMODE != os.O_RDWR:
            return pyfuse3.FileInfo(fh=node.ino, keep_cache=True)
        if node.ino not in self._rdwr_noted:  # one line per log and mount, not per open
            self._rdwr_noted.add(node.ino)
            log.info("%s opened read-write (pid %s): direct I/O for such descriptors, so "
                     "mmap(MAP_SHARED) of them fails with ENODEV: a shared mapping could "
                     "change what readers see of bytes already written",
                     "/".join(self.inodes.path(node)), getattr(ctx, "pid", "?"))
        return pyfuse3.FileInfo(fh=node.ino, keep_cache=True, direct_io=True)

    @fuse_handler
    async def open(self, inode, flags, ctx):
        node = self._node(inode)
        if node.kind is Kind.VIEW:
            self._view_of(node)  # ENOENT if its log is gone
            if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
                raise self._read_only(node)
            # the pages of one view inode never change (views.py): keep them
            return pyfuse3.FileInfo(fh=node.ino, keep_cache=True)
        lg = self._log_of(node)
        if flags & os.O_TRUNC:
            # `>` on a log: allowed only when it would change nothing (empty log).
            lg.truncate_check(0)
        return self._file_info(node, flags, ctx)

    @fuse_handler
    async def read(self, fh, off, size):
        # what the page cache holds now, then what must come from the disk, from a
        # worker thread (fileread.py); NULs below the start in the start's page
        node = self._node(fh)
        if node.view is not None:  # a view: the log's bytes from the view's start
            log_node, lg, window = self._view_of(node)
            if lg.remote_missing(window.start + off, window.start + off + size):
                await fetch_remote(lg, window.start + off, window.start + off + size, self.spawn)
            parts, slow = gather(lg, window.start, window.end_offset(lg), off, size)
            node = log_node  # counted as bytes served of the log (`logfs describe`)
        else:
            lg = self._log_of(node)
            if lg.remote_missing(off, off + size):  # a tiered segment's chunks (tier/task.py)
                await fetch_remote(lg, off, off + size, self.spawn)
            parts, slow = gather(lg, 0, lg.end_offset, off, size)
        if slow:
            await read_slow_parts(parts, slow)
        data = b"".join(parts)
        self._count(node, "read", len(data))
        return data

    @fuse_handler
    async def write(self, fh, off, buf):
        return self._write(fh, off, buf)

    @fuse_handler(op="write")
    def _write(self, fh: int, off: int, buf: bytes) -> int:
        """The write request, whole: never awaits, raises only FUSEError. The async
        ``write`` returns what it returns; where pyfuse3 has ``Operations.write_sync``
        (patches/0003) it is that too (``__init__``), and pyfuse3 then calls it for
        every write without a coroutine or a trip through its request loop's await."""
        # the hot path of small appends: one FUSE request per write(), so it does
        # only what it must (docs/performance.md, W2)
        node = self._node(fh)
        lg = self._log_of(node)
        end = lg.end_offset
        if off != end:
            raise Refused(errno.EPERM, f"write at offset {off} but the log ends at {end}: "
                          "logs are append-only")
        # The kernel sends a write that starts mid-page as two requests: up to the page
        # boundary, then the rest. If the daemon dies between them, recovery must not
        # keep half a line: a request that is exactly such a first part is tentative.
        n = len(buf)
        tentative = 0 < n < PAGE_SIZE and off % PAGE_SIZE + n == PAGE_SIZE and buf[-1] != 10
        if tentative:
            # and on a nearly full disk the rest would fail, leaving the write() short
            # with half a line in the log: refuse the whole write while it can
            sv = os.statvfs(self.data_dir)
            if sv.f_bavail * sv.f_frsize < SPLIT_WRITE_RESERVE:
                raise Refused(errno.ENOSPC, f"less than {SPLIT_WRITE_RESERVE >> 20} MiB free in "
                              f"{self.data_dir}: refusing a write that may not fit whole")
        start = lg.start_offset
        lg.append(buf, tentative=tentative)  # rolls, and then applies retention, itself
        if lg.start_offset != start:
            self._start_moved(node, lg)
        if self.on_append is not None:
            self.on_append(lg.topic, lg.name)
        self.totals["write_calls"] += 1
        self.totals["write_bytes"] += n
        stats = node.stats
        stats["write_calls"] = stats.get("write_calls", 0) + 1
        stats["write_bytes"] = stats.get("write_bytes", 0) + n
        return n

    @fuse_handler
    async def flush(self, fh):
        return None

    @fuse_handler
    async def release(self, fh):
        return None

    @fuse_handler
    async def fsync(self, fh, datasync):
        node = self._node(fh)
        if node.kind is Kind.VIEW:
            return None  # a read-only descriptor: nothing of its own to write
        lg = self._log_of(node)
        # The slow part of an fsync is writing the dirty pages of the active segment.
        # Do that from a worker thread through a descriptor of our own (fsync works per
        # inode, not per descriptor), so other requests are served meanwhile; then let
        # the core run its full fsync protocol inline, which finds the data clean.
        # The thread never touches the store, which is not thread-safe.
        end = lg.end_offset
        if end > lg.start_offset:
            paths = segment_paths(lg, end - 1, end)
            await trio.to_thread.run_sync(write_out_pages, paths)
        self._log_of(node).fsync()

    def append_from_daemon(self, lg: Log, data: bytes) -> int | None:
        """Append *data* to *lg* on the daemon's own behalf (a Kafka Produce), as a
        write through the mount would: retention's moved start drops cached pages.
        Returns the log's inode if the kernel may cache it (the caller must then give
        the kernel the new bytes: kafka_writer.py), else None."""
        start = lg.start_offset
        lg.append(data)
        t = self.inodes.child(ROOT_INODE, lg.topic)
        node = self.inodes.child(t.ino, lg.name) if t is not None else None
        if node is not None and lg.start_offset != start:
            self._start_moved(node, lg)
        return node.ino if node is not None else None

    def _start_moved(self, node: Node, lg: Log) -> None:
        """After an append whose retention deleted segments: drop their cached pages,
        the log's and its views'."""
        node.stats["start_offset"] = lg.start_offset
        self.invalidate_data(node)
        self._invalidate_views({node.ino: lg.start_offset})

    # ------------------------------------------------------------------ figures

    def log_counters(self, topic: str, name: str) -> dict[str, int]:
        """Bytes and calls this mount's read/write handlers served for one log."""
        t = self.inodes.child(ROOT_INODE, topic)
        node = self.inodes.child(t.ino, name) if t is not None else None
        stats = {k: v for k, v in (node.stats if node else {}).items() if k != "start_offset"}
        for k in ("read_calls", "read_bytes", "write_calls", "write_bytes"):
            stats.setdefault(k, 0)
        return stats
