"""The storage core: Kafka-style segmented logs on disk. See docs/core-api.md.

Synchronous file I/O only; imports nothing of FUSE, trio, h11 or sockets.
"""

from .cache import ResourceCache
from .clock import Clock, ManualClock, SystemClock
from .config import CONFIG_KEYS, LogConfig, parse_config
from .errors import (AlreadyExists, ConfigError, CorruptIndex, DataGap, InvalidName,
                     NotAppendable, NotEmpty, NotFound, OffsetOutOfRange, ReadOnlyStore,
                     StorageError, StorageIOError, StoreLocked)
from .fileio import fsync_path, pread_all
from .groups import ConsumerGroup, GroupStore, Position
from .log import FileAttrs, Log
from .naming import check_name
from .reads import FileRange
from .recovery import RecoveryAction
from .store import LogStore, open_log_store

__all__ = [
    "AlreadyExists", "CONFIG_KEYS", "Clock", "ConfigError", "ConsumerGroup", "CorruptIndex", "DataGap",
    "FileAttrs", "GroupStore", "Position",
    "FileRange", "InvalidName", "Log", "LogConfig", "LogStore", "ManualClock",
    "NotAppendable", "NotEmpty", "NotFound", "OffsetOutOfRange", "ReadOnlyStore",
    "RecoveryAction", "ResourceCache", "StorageError", "StorageIOError", "StoreLocked",
    "SystemClock", "check_name", "fsync_path", "open_log_store", "parse_config", "pread_all",
]
