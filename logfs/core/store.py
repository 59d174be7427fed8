"""The store: every topic and log under one data directory (Kafka's LogManager).

The writer takes an exclusive ``flock`` on ``DATA/.logfs/lock``. On open it removes
the clean-shutdown marker; ``close()`` flushes every log and writes it back. Opening
after a clean shutdown loads logs lazily, when first used; after an unclean one,
every log is recovered first (recovery.py). A log whose index files are missing,
torn or corrupt is recovered when the writer opens it, after a clean shutdown too.
Readers (``readonly=True``) take no lock and never write.

This is the core's edge for the namespace: every ``OSError`` of a call here comes out
as a StorageIOError (errors.py: translate_os_errors).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
from typing import Mapping

from .cache import ResourceCache
from .checkpoint import RECOVERY_SLOT
from .clock import Clock, SystemClock
from .config import ConfigError, merge_overrides, parse_config, to_strings
from .errors import (AlreadyExists, NotEmpty, NotFound, ReadOnlyStore, StorageIOError,
                     StoreLocked, translate_os_errors)
from .fileio import fsync_path, read_json, write_json_atomic
from .log import Log
from .naming import (CLEAN_MARKER, LOCK_FILE, REMOTE_CACHE_DIR, STORE_META_DIR,
                     TOPIC_CONFIG_FILE, check_log_name, check_name, is_user_name)
from .objectstore import ObjectStore
from .remote import DEFAULT_CACHE_BYTES, ChunkCache, RemoteSource
from .recovery import LogFiles, RecoveryAction, recover_log
from .segments import index_files_look_whole

logger = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 10.0


class LogStore:
    def __init__(self, data_dir: str, defaults: Mapping[str, object] | None, clock: Clock | None,
                 readonly: bool, cache_capacity: int) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.readonly = readonly
        self.clock = clock or SystemClock()
        self.cache = ResourceCache(cache_capacity)
        parsed = parse_config(dict(defaults or {}))
        self.defaults: dict[str, object] = {k: v for k, v in parsed.items()}
        self._logs: dict[tuple[str, str], Log] = {}
        self._topic_overrides: dict[str, dict] = {}
        self._lock_fd = -1
        self.was_clean = True
        self.first_open = False  # no writer had opened DATA before (no .logfs/lock yet)
        self.recovery_report: list[RecoveryAction] = []
        self.retention_interval_s = MAINTENANCE_INTERVAL_S
        # tiered storage (tiering.py, remote.py): where remote segments are read from
        self.remote: RemoteSource | None = None
        self.remote_cache_root = os.path.join(self.data_dir, STORE_META_DIR, REMOTE_CACHE_DIR)
        self.tiering = None  # the writer's Tiering, when the store has a remote
        self.replica = None  # a replica mount's (object store, ReplicaState)

    # -- lifecycle -----------------------------------------------------------------
    def _open(self) -> None:
        if not os.path.isdir(self.data_dir):
            raise NotFound(f"data directory {self.data_dir} does not exist")
        if self.readonly:
            return
        meta = os.path.join(self.data_dir, STORE_META_DIR)
        with translate_os_errors("open %s for writing", self.data_dir):
            os.makedirs(meta, exist_ok=True)
            self.first_open = not os.path.exists(os.path.join(meta, LOCK_FILE))
            self._lock_fd = _take_lock(os.path.join(meta, LOCK_FILE), self.data_dir)
            marker = os.path.join(meta, CLEAN_MARKER)
            self.was_clean = os.path.exists(marker)
            if self.was_clean:
                os.unlink(marker)
                fsync_path(meta)
                return
            now = self.clock.now_ms()
            for topic in self.topics():
                for name in self.logs(topic):
                    log = self._load_log(topic, name, now, verify=True)
                    self._logs[(topic, name)] = log

    def _load_log(self, topic: str, name: str, now_ms: int, verify: bool) -> Log:
        """A loaded Log. The writer first recovers it: always when *verify* (after an
        unclean shutdown), else if an index file is missing, torn or corrupt; then
        its repairs are reported (store.recovery_report, one log line each), and
        after a *verify* one a new recovery point is written. Raises NotFound,
        OSError."""
        log = Log(self, topic, name, self._log_dir(topic, name))
        actions: list[RecoveryAction] = []
        if not self.readonly and (verify or not index_files_look_whole(log.directory)):
            files = LogFiles(topic, name, log.directory, log.config.index_interval_bytes, log.meta.start)
            actions = recover_log(files, self.cache, log.checkpoint.read(RECOVERY_SLOT),
                                  log.checkpoint.read_lives(), now_ms)
            self.recovery_report.extend(actions)
        log.load()
        if verify and actions:  # a new recovery point for the repaired log
            log.fsync()
        return log

    def close(self) -> None:
        """Flush every log, write the clean-shutdown marker, release the lock.
        Raises StorageIOError if a log cannot be flushed (the lock is released and
        no marker written then: the next open verifies every log)."""
        if self.readonly:
            self._close_logs()
            return
        if self._lock_fd < 0:
            return
        try:
            self.flush_all()
        finally:
            self._close_logs()
        meta = os.path.join(self.data_dir, STORE_META_DIR)
        marker = os.path.join(meta, CLEAN_MARKER)
        try:
            with open(marker, "w") as f:
                f.write("clean\n")
                f.flush()
                os.fsync(f.fileno())
            fsync_path(meta)
        except OSError as exc:  # a full disk: every log is flushed, but say so no more
            logger.warning("could not write the clean-shutdown marker (%s); the next open "
                           "will verify every log", exc.strerror or exc)
            try:
                os.unlink(marker)
            except OSError:
                pass
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _close_logs(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self.cache.release_all()
        if self.remote is not None:
            self.remote.chunks.close()

    def abandon(self) -> None:
        """Drop everything without flushing or marking clean, as a crash would
        (tests). Releases the lock."""
        self._close_logs()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "LogStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths -------------------------------------------------------------------
    def _topic_dir(self, topic: str) -> str:
        return os.path.join(self.data_dir, topic)

    def _log_dir(self, topic: str, name: str) -> str:
        return os.path.join(self.data_dir, topic, name)

    def _check_writer(self) -> None:
        if self.readonly:
            raise ReadOnlyStore("this store is opened read-only")

    check_name = staticmethod(check_name)

    # -- topics --------------------------------------------------------------------
    def topics(self) -> list[str]:
        """The topics, sorted. Raises StorageIOError."""
        with translate_os_errors("list %s", self.data_dir):
            names = os.listdir(self.data_dir)
        return sorted(n for n in names if is_user_name(n) and os.path.isdir(self._topic_dir(n)))

    def has_topic(self, topic: str) -> bool:
        return is_user_name(topic) and "/" not in topic and topic not in (".", "..") \
            and os.path.isdir(self._topic_dir(topic))

    def create_topic(self, topic: str) -> None:
        """Raises AlreadyExists, InvalidName, StorageIOError."""
        self._check_writer()
        check_name(topic)
        with translate_os_errors("create topic %r", topic):
            try:
                os.mkdir(self._topic_dir(topic))
            except FileExistsError:
                raise AlreadyExists(f"topic {topic!r} already exists") from None
            try:
                fsync_path(self.data_dir)
            except OSError:  # leave no half-made topic behind (rmdir needs no descriptor)
                try:
                    os.rmdir(self._topic_dir(topic))
                except OSError:
                    pass
                raise

    def delete_topic(self, topic: str) -> None:
        """Raises NotFound, NotEmpty (it has logs), StorageIOError."""
        self._check_writer()
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        if self.logs(topic):
            raise NotEmpty(f"topic {topic!r} still has logs")
        with translate_os_errors("delete topic %r", topic):
            shutil.rmtree(self._topic_dir(topic))
            self._topic_overrides.pop(topic, None)
            fsync_path(self.data_dir)

    def rename_topic(self, old: str, new: str) -> None:
        """Raises NotFound, AlreadyExists, InvalidName, StorageIOError."""
        self._check_writer()
        check_name(new)
        if not self.has_topic(old):
            raise NotFound(f"topic {old!r} does not exist")
        if old == new:
            return
        if os.path.lexists(self._topic_dir(new)):
            raise AlreadyExists(f"topic {new!r} already exists")
        for (topic, name) in [k for k in self._logs if k[0] == old]:
            log = self._logs.pop((topic, name))
            log.mark_gone()
        with translate_os_errors("rename topic %r to %r", old, new):
            os.rename(self._topic_dir(old), self._topic_dir(new))
            self._topic_overrides.pop(old, None)
            fsync_path(self.data_dir)

    def topic_overrides(self, topic: str) -> dict:
        """The topic's configuration overrides (parsed values; read once). Raises
        StorageIOError."""
        if topic not in self._topic_overrides:
            with translate_os_errors("read the configuration of topic %r", topic):
                self._topic_overrides[topic] = read_json(os.path.join(self._topic_dir(topic), TOPIC_CONFIG_FILE))
        return self._topic_overrides[topic]

    def topic_config(self, topic: str) -> dict[str, str]:
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        return to_strings(self.topic_overrides(topic))

    def set_topic_config(self, topic: str, updates: Mapping[str, object]) -> None:
        """Raises NotFound, ConfigError (naming the key), StorageIOError."""
        self._check_writer()
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        parsed = parse_config(updates)
        merged = merge_overrides(self.topic_overrides(topic), parsed)
        with translate_os_errors("set the configuration of topic %r", topic):
            write_json_atomic(os.path.join(self._topic_dir(topic), TOPIC_CONFIG_FILE), merged)
        self._topic_overrides[topic] = merged
        for (t, _n), log in self._logs.items():
            if t == topic:
                log.invalidate_config()

    # -- logs ------------------------------------------------------------------------
    def logs(self, topic: str) -> list[str]:
        """The logs of *topic*, sorted. Raises NotFound, StorageIOError."""
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        tdir = self._topic_dir(topic)
        with translate_os_errors("list topic %r", topic):
            names = os.listdir(tdir)
        return sorted(n for n in names if is_user_name(n) and os.path.isdir(os.path.join(tdir, n)))

    def has_log(self, topic: str, name: str) -> bool:
        if not self.readonly and (topic, name) in self._logs:
            return True
        return self.has_topic(topic) and is_user_name(name) and "/" not in name \
            and name not in (".", "..") and os.path.isdir(self._log_dir(topic, name))

    def log(self, topic: str, name: str, dir_ino: int | None = None) -> Log:
        """The log (the same object each time), loaded (and, by the writer, repaired)
        when first used. *dir_ino*: the inode of the log's directory, if the caller has
        just stat-ed it (a reader then need not stat it again to see whether the log
        was deleted and created anew). Raises NotFound, CorruptIndex (a reader),
        StorageIOError."""
        key = (topic, name)
        log = self._logs.get(key)
        if log is not None:
            if not self.readonly or log.same_directory(dir_ino):
                return log
            log.mark_gone()  # deleted, or deleted and created anew, by the writer
            del self._logs[key]
        if not self.has_log(topic, name):
            raise NotFound(f"log {topic}/{name} does not exist")
        with translate_os_errors("open log %s/%s", topic, name):
            log = self._load_log(topic, name, self.clock.now_ms(), verify=False)
        self._logs[key] = log
        return log

    def open_logs(self) -> list[Log]:
        return list(self._logs.values())

    def create_log(self, topic: str, name: str) -> Log:
        """Raises NotFound (topic), AlreadyExists, InvalidName, StorageIOError (then
        no half-made log is left)."""
        self._check_writer()
        check_log_name(name)
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        path = self._log_dir(topic, name)
        with translate_os_errors("create log %s/%s", topic, name):
            try:
                os.mkdir(path)
            except FileExistsError:
                raise AlreadyExists(f"log {topic}/{name} already exists") from None
            try:
                fsync_path(self._topic_dir(topic))
                return self.log(topic, name)
            except (OSError, StorageIOError):  # a full disk: leave no half-made log behind
                self._logs.pop((topic, name), None)
                shutil.rmtree(path, ignore_errors=True)
                raise

    def delete_log(self, topic: str, name: str) -> None:
        """Remove the log and all its segments. Raises NotFound, StorageIOError."""
        self._check_writer()
        if not self.has_log(topic, name):
            raise NotFound(f"log {topic}/{name} does not exist")
        log = self._logs.pop((topic, name), None)
        if log is not None:
            log.mark_gone()
        with translate_os_errors("delete log %s/%s", topic, name):
            shutil.rmtree(self._log_dir(topic, name))
            fsync_path(self._topic_dir(topic))

    def rename_log(self, topic: str, name: str, new_topic: str, new_name: str) -> None:
        """Raises NotFound, AlreadyExists, InvalidName, StorageIOError."""
        self._check_writer()
        check_log_name(new_name)
        if not self.has_log(topic, name):
            raise NotFound(f"log {topic}/{name} does not exist")
        if not self.has_topic(new_topic):
            raise NotFound(f"topic {new_topic!r} does not exist")
        if (topic, name) == (new_topic, new_name):
            return
        if os.path.lexists(self._log_dir(new_topic, new_name)):
            raise AlreadyExists(f"log {new_topic}/{new_name} already exists")
        log = self._logs.pop((topic, name), None)
        if log is not None:
            if log.unflushed:
                log.fsync()
            log.mark_gone()
        with translate_os_errors("rename log %s/%s to %s/%s", topic, name, new_topic, new_name):
            os.rename(self._log_dir(topic, name), self._log_dir(new_topic, new_name))
            fsync_path(self._topic_dir(new_topic))

    def set_log_config(self, topic: str, name: str, updates: Mapping[str, object]) -> None:
        """Raises NotFound, ConfigError (naming the key), StorageIOError."""
        self._check_writer()
        log = self.log(topic, name)
        parsed = parse_config(updates)
        log.set_config_overrides(merge_overrides(log.meta.config, parsed))

    # -- maintenance -----------------------------------------------------------------
    def run_maintenance(self) -> list[str]:
        """Apply retention and segment.ms to every open log, fsync logs whose
        flush.ms has passed. Returns one line per action. Blocks on the disk."""
        self._check_writer()
        lines: list[str] = []
        now = self.clock.now_ms()
        for log in list(self._logs.values()):
            try:
                log.apply_retention(now)
                flush_ms = log.config.flush_ms
                if flush_ms is not None and log.unflushed and now - log.last_flush_ms >= flush_ms:
                    log.fsync()
            except Exception as exc:  # one bad log must not stop the others
                lines.append(f"maintenance of {log.topic}/{log.name} failed: {exc}")
                logger.error("maintenance of %s/%s failed: %s", log.topic, log.name, exc)
            lines.extend(log.pop_events())
        return lines

    def flush_all(self) -> None:
        """fsync every log with unsynced data. Raises StorageIOError."""
        for log in self._logs.values():
            if log.needs_fsync:
                log.fsync()


def _take_lock(path: str, data_dir: str) -> int:
    """Open and flock the store's lock file, write our pid into it; the descriptor.
    Raises StoreLocked if another writer holds it, OSError."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            holder = ""
            try:
                with open(path) as f:
                    holder = f.read().strip()
            except OSError:
                pass
            raise StoreLocked(f"{data_dir} is already opened for writing by another process"
                              + (f" ({holder})" if holder else "")) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
    except OSError:
        os.close(fd)
        raise
    return fd


def open_log_store(data_dir: str, *, defaults: Mapping[str, object] | None = None,
                   clock: Clock | None = None, readonly: bool = False,
                   cache_capacity: int = 256, remote: ObjectStore | None = None,
                   remote_cache_bytes: int = DEFAULT_CACHE_BYTES) -> LogStore:
    """Open the store in *data_dir*. Writer: exclusive lock (StoreLocked), recovery
    after an unclean shutdown. Reader (readonly=True): no lock, no writes.
    *remote*: the object store tiered segments go to and are read from (the writer
    tiers logs with remote.storage.enable; tiering.py), its chunks cached locally up
    to *remote_cache_bytes*. Raises ConfigError for bad *defaults*, NotFound if
    *data_dir* is missing, StorageIOError. Blocks on the disk (recovery reads every
    log after a crash)."""
    store = LogStore(data_dir, defaults, clock, readonly, cache_capacity)
    if remote is not None:
        from .tiering import Tiering, remote_store_id
        store.remote = RemoteSource(remote, ChunkCache(store.remote_cache_root, remote_cache_bytes))
        if not readonly:
            store.tiering = Tiering(remote, remote_store_id(store.data_dir), store.clock)
    store._open()
    return store


__all__ = ["LogStore", "open_log_store", "ConfigError"]
