"""The store: every topic and log under one data directory (Kafka's LogManager).

The writer takes an exclusive ``flock`` on ``DATA/.logfs/lock``. On open it removes
the clean-shutdown marker; ``close()`` flushes every log and writes it back. Opening
after a clean shutdown loads logs lazily, when first used; after an unclean one,
every log is recovered first (see recovery.py). Readers (``readonly=True``) take no
lock and never write.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
from typing import Mapping

from .cache import ResourceCache
from .clock import Clock, SystemClock
from .config import (ConfigError, effective_config, merge_overrides, parse_config,
                     to_strings)
from .errors import (AlreadyExists, NotEmpty, NotFound, ReadOnlyStore, StorageIOError,
                     StoreLocked)
from .log import Log, read_json, write_json_atomic
from .naming import (CLEAN_MARKER, LOCK_FILE, STORE_META_DIR, TOPIC_CONFIG_FILE,
                     check_name, is_user_name)
from .recovery import RecoveryAction, recover_log

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

    # -- lifecycle -----------------------------------------------------------------
    def _open(self) -> None:
        if not os.path.isdir(self.data_dir):
            raise NotFound(f"data directory {self.data_dir} does not exist")
        if self.readonly:
            return
        meta = os.path.join(self.data_dir, STORE_META_DIR)
        os.makedirs(meta, exist_ok=True)
        self.first_open = not os.path.exists(os.path.join(meta, LOCK_FILE))
        fd = os.open(os.path.join(meta, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                holder = ""
                try:
                    with open(os.path.join(meta, LOCK_FILE)) as f:
                        holder = f.read().strip()
                except OSError:
                    pass
                raise StoreLocked(f"{self.data_dir} is already opened for writing by another process"
                                  + (f" ({holder})" if holder else "")) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._lock_fd = fd
        marker = os.path.join(meta, CLEAN_MARKER)
        self.was_clean = os.path.exists(marker)
        if self.was_clean:
            os.unlink(marker)
            _fsync_dir(meta)
        else:
            now = self.clock.now_ms()
            for topic in self.topics():
                for name in self.logs(topic):
                    log = Log(self, topic, name, self._log_dir(topic, name))
                    actions = recover_log(log, now)
                    self.recovery_report.extend(actions)
                    log.load()
                    if actions:  # a new recovery point for the repaired log
                        log.fsync()
                    self._logs[(topic, name)] = log

    def close(self) -> None:
        """Flush every log, write the clean-shutdown marker, release the lock."""
        if self.readonly:
            for log in self._logs.values():
                log.close()
            self._logs.clear()
            self.cache.release_all()
            return
        if self._lock_fd < 0:
            return
        try:
            self.flush_all()
        finally:
            for log in self._logs.values():
                log.close()
            self._logs.clear()
            self.cache.release_all()
        meta = os.path.join(self.data_dir, STORE_META_DIR)
        marker = os.path.join(meta, CLEAN_MARKER)
        try:
            with open(marker, "w") as f:
                f.write("clean\n")
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(meta)
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

    def abandon(self) -> None:
        """Drop everything without flushing or marking clean, as a crash would
        (tests). Releases the lock."""
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self.cache.release_all()
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
        try:
            names = os.listdir(self.data_dir)
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"list {self.data_dir}") from None
        return sorted(n for n in names if is_user_name(n) and os.path.isdir(self._topic_dir(n)))

    def has_topic(self, topic: str) -> bool:
        return is_user_name(topic) and "/" not in topic and topic not in (".", "..") \
            and os.path.isdir(self._topic_dir(topic))

    def create_topic(self, topic: str) -> None:
        self._check_writer()
        check_name(topic)
        try:
            os.mkdir(self._topic_dir(topic))
        except FileExistsError:
            raise AlreadyExists(f"topic {topic!r} already exists") from None
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"create topic {topic!r}") from None
        _fsync_dir(self.data_dir)

    def delete_topic(self, topic: str) -> None:
        self._check_writer()
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        if self.logs(topic):
            raise NotEmpty(f"topic {topic!r} still has logs")
        shutil.rmtree(self._topic_dir(topic))
        self._topic_overrides.pop(topic, None)
        _fsync_dir(self.data_dir)

    def rename_topic(self, old: str, new: str) -> None:
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
        os.rename(self._topic_dir(old), self._topic_dir(new))
        self._topic_overrides.pop(old, None)
        _fsync_dir(self.data_dir)

    def topic_overrides(self, topic: str) -> dict:
        if topic not in self._topic_overrides:
            self._topic_overrides[topic] = read_json(os.path.join(self._topic_dir(topic), TOPIC_CONFIG_FILE))
        return self._topic_overrides[topic]

    def topic_config(self, topic: str) -> dict[str, str]:
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        return to_strings(self.topic_overrides(topic))

    def set_topic_config(self, topic: str, updates: Mapping[str, object]) -> None:
        self._check_writer()
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        parsed = parse_config(updates)
        merged = merge_overrides(self.topic_overrides(topic), parsed)
        write_json_atomic(os.path.join(self._topic_dir(topic), TOPIC_CONFIG_FILE), merged)
        self._topic_overrides[topic] = merged
        for (t, _n), log in self._logs.items():
            if t == topic:
                log.invalidate_config()

    def topic_effective_config(self, topic: str):
        return effective_config(self.topic_overrides(topic), self.defaults)

    # -- logs ------------------------------------------------------------------------
    def logs(self, topic: str) -> list[str]:
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        tdir = self._topic_dir(topic)
        return sorted(n for n in os.listdir(tdir) if is_user_name(n) and os.path.isdir(os.path.join(tdir, n)))

    def has_log(self, topic: str, name: str) -> bool:
        if not self.readonly and (topic, name) in self._logs:
            return True
        return self.has_topic(topic) and is_user_name(name) and "/" not in name \
            and name not in (".", "..") and os.path.isdir(self._log_dir(topic, name))

    def log(self, topic: str, name: str) -> Log:
        key = (topic, name)
        log = self._logs.get(key)
        if log is not None:
            if not self.readonly or log.same_directory():
                return log
            log.mark_gone()  # deleted, or deleted and created anew, by the writer
            del self._logs[key]
        if not self.has_log(topic, name):
            raise NotFound(f"log {topic}/{name} does not exist")
        log = Log(self, topic, name, self._log_dir(topic, name))
        log.load()
        self._logs[key] = log
        return log

    def open_logs(self) -> list[Log]:
        return list(self._logs.values())

    def create_log(self, topic: str, name: str) -> Log:
        self._check_writer()
        check_name(name)
        if not self.has_topic(topic):
            raise NotFound(f"topic {topic!r} does not exist")
        path = self._log_dir(topic, name)
        try:
            os.mkdir(path)
        except FileExistsError:
            raise AlreadyExists(f"log {topic}/{name} already exists") from None
        except OSError as exc:
            raise StorageIOError.wrap(exc, f"create log {topic}/{name}") from None
        try:
            _fsync_dir(self._topic_dir(topic))
            return self.log(topic, name)
        except OSError as exc:  # a full disk: leave no half-made log behind
            self._logs.pop((topic, name), None)
            shutil.rmtree(path, ignore_errors=True)
            raise StorageIOError.wrap(exc, f"create log {topic}/{name}") from None

    def delete_log(self, topic: str, name: str) -> None:
        self._check_writer()
        if not self.has_log(topic, name):
            raise NotFound(f"log {topic}/{name} does not exist")
        log = self._logs.pop((topic, name), None)
        if log is not None:
            log.mark_gone()
        shutil.rmtree(self._log_dir(topic, name))
        _fsync_dir(self._topic_dir(topic))

    def rename_log(self, topic: str, name: str, new_topic: str, new_name: str) -> None:
        self._check_writer()
        check_name(new_name)
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
        os.rename(self._log_dir(topic, name), self._log_dir(new_topic, new_name))
        _fsync_dir(self._topic_dir(new_topic))

    def set_log_config(self, topic: str, name: str, updates: Mapping[str, object]) -> None:
        self._check_writer()
        log = self.log(topic, name)
        parsed = parse_config(updates)
        merged = merge_overrides(log.meta.get("config", {}), parsed)
        log.meta["config"] = merged
        log.save_meta()
        log.invalidate_config()

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
        for log in self._logs.values():
            if log.unflushed or log._unflushed_sealed:
                log.fsync()


def open_log_store(data_dir: str, *, defaults: Mapping[str, object] | None = None,
                   clock: Clock | None = None, readonly: bool = False,
                   cache_capacity: int = 256) -> LogStore:
    """Open the store in *data_dir*. Writer: exclusive lock (StoreLocked), recovery
    after an unclean shutdown. Reader (readonly=True): no lock, no writes.
    Raises ConfigError for bad *defaults*, NotFound if *data_dir* is missing."""
    store = LogStore(data_dir, defaults, clock, readonly, cache_capacity)
    store._open()
    return store


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["LogStore", "open_log_store", "ConfigError"]
