"""The one place that knows logfs's file-name rules on disk.

    DATA/
      .logfs/                      store metadata (reserved name)
        lock                       flock'ed by the one writer
        clean-shutdown             present only after a clean close
        daemon.log                 the daemon's log (written by the CLI, not the core)
        groups/<group>.offsets     a consumer group's committed positions (groups.py)
        groups/<group>.member      flock'ed by the group's one running `logfs consume`
        remote.json                where tiered segments go (url, endpoint; tiering.py)
        remote-cache/<topic>/<log>/<base>-<id>/   a remote segment's indexes and cached
                                   chunks c<index:06d> (remote.py)
      <topic>/                     a topic: a directory
        .logfs-topic.json          the topic's configuration overrides
        <log>/                     a log: a directory of segments
          log.json                 the log's metadata, attributes and config overrides
          checkpoint               recovery point and live tail (docs/format.md)
          remote.json              the last committed manifest of the log's tiered segments
          <base:020d>.log          segment data: the raw bytes appended
          <base:020d>.index        sparse offset index of that segment
          <base:020d>.timeindex    sparse time index of that segment
          quarantine-<ms>-<offset:020d>.bin       bytes cut by recovery, kept for inspection
          quarantine-<ms>-<base:020d>.index       a corrupt index file recovery replaced
          quarantine-<ms>-<base:020d>.timeindex   (likewise), kept for inspection
          *.tmp                    a file being replaced (written, then renamed over it)

User-visible names (topics and logs) are any Linux file name except those starting
with ``.logfs`` and those that read as a view of a log (``LOG@since=1h``: selection.py).
"""

from __future__ import annotations

import re

from .errors import InvalidName

STORE_META_DIR = ".logfs"
LOCK_FILE = "lock"
GROUPS_DIR = "groups"
GROUP_SUFFIX = ".offsets"
MEMBER_SUFFIX = ".member"  # the lock the one consumer of a group holds (logfs/consumer)
CLEAN_MARKER = "clean-shutdown"
STORE_CONFIG_FILE = "config.json"
TOPIC_CONFIG_FILE = ".logfs-topic.json"
LOG_META_FILE = "log.json"
CHECKPOINT_FILE = "checkpoint"
REMOTE_CONFIG_FILE = "remote.json"  # in .logfs/: where the store tiers to
REMOTE_CACHE_DIR = "remote-cache"  # in .logfs/
MANIFEST_COPY_FILE = "remote.json"  # in a log directory: its manifest, as last committed
RESERVED_PREFIX = ".logfs"

SEGMENT_SUFFIX = ".log"
OFFSET_INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
QUARANTINE_PREFIX = "quarantine-"
QUARANTINE_SUFFIX = ".bin"
TMP_SUFFIX = ".tmp"
_BASE_DIGITS = 20

# views of a log (LOG@since=1h,until=...; selection.py parses the values)
START_KEYS = ("offset", "record", "since", "last", "group")
SELECTOR_KEYS = START_KEYS + ("until",)
_VIEW_SPEC = re.compile(r"^(?:%s)=" % "|".join(SELECTOR_KEYS))


def check_name(name: str) -> None:
    """Raise InvalidName unless *name* may be a topic or log name."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        raise InvalidName(f"invalid name {name!r}")
    if "/" in name or "\0" in name:
        raise InvalidName(f"invalid name {name!r}: contains '/' or NUL")
    try:
        encoded = name.encode("utf-8", "surrogateescape")
    except UnicodeError as exc:  # pragma: no cover - surrogateescape accepts all
        raise InvalidName(f"invalid name {name!r}: {exc}") from None
    if len(encoded) > 255:
        raise InvalidName(f"invalid name: {len(encoded)} bytes, the limit is 255")
    if name.startswith(RESERVED_PREFIX):
        raise InvalidName(f"invalid name {name!r}: names starting with {RESERVED_PREFIX!r} are reserved for logfs")


def check_log_name(name: str) -> None:
    """Raise InvalidName unless *name* may be a log name: a topic's rules, and it must
    not read as a view of another log (``web@since=1h``)."""
    check_name(name)
    view = split_view_name(name)
    if view is not None:
        raise InvalidName(f"invalid log name {name!r}: it reads as a view of the log {view[0]!r} "
                          f"(LOG@{view[1]}: docs/spec.md, section 10); choose a name without "
                          "'@since=', '@record=' and the like")


def is_user_name(name: str) -> bool:
    """True for directory entries that are topics or logs (not logfs's own files)."""
    return not name.startswith(RESERVED_PREFIX)


def segment_name(base: int) -> str:
    return f"{base:0{_BASE_DIGITS}d}{SEGMENT_SUFFIX}"


def offset_index_name(base: int) -> str:
    return f"{base:0{_BASE_DIGITS}d}{OFFSET_INDEX_SUFFIX}"


def time_index_name(base: int) -> str:
    return f"{base:0{_BASE_DIGITS}d}{TIME_INDEX_SUFFIX}"


def segment_file_names(base: int) -> tuple[str, str, str]:
    """The files of segment *base*: its data, offset index and time index."""
    return segment_name(base), offset_index_name(base), time_index_name(base)


def segment_leftover_names(base: int) -> tuple[str, ...]:
    """Every file a half-made segment *base* may have left: its files and the
    temporary files its indexes are written through."""
    return segment_file_names(base) + (offset_index_name(base) + TMP_SUFFIX,
                                       time_index_name(base) + TMP_SUFFIX)


def quarantine_name(now_ms: int, offset: int) -> str:
    """The quarantine file of the log bytes recovery cut from log offset *offset*."""
    return f"{QUARANTINE_PREFIX}{now_ms}-{offset:0{_BASE_DIGITS}d}{QUARANTINE_SUFFIX}"


def index_quarantine_name(now_ms: int, index_file: str) -> str:
    """Where recovery keeps the corrupt index file named *index_file* (a segment's
    ``<base>.index`` or ``<base>.timeindex``) when it rebuilds it."""
    return f"{QUARANTINE_PREFIX}{now_ms}-{index_file}"


def parse_segment_name(filename: str) -> int | None:
    """Base offset of a segment file name, or None if it is not one."""
    if not filename.endswith(SEGMENT_SUFFIX):
        return None
    stem = filename[: -len(SEGMENT_SUFFIX)]
    if len(stem) != _BASE_DIGITS or not stem.isdigit():
        return None
    return int(stem)


def list_segment_bases(names: list[str]) -> list[int]:
    """Sorted base offsets of the segment files among directory entries *names*."""
    bases = [b for b in map(parse_segment_name, names) if b is not None]
    bases.sort()
    return bases


def split_view_name(name: str) -> tuple[str, str] | None:
    """(log name, view spec) if *name* is a view name (``LOG@key=value,...`` with
    known keys), else None. Pure syntax: selection.parse_view_spec checks the values.
    The first ``@`` after which the grammar holds ends the log's name, so
    ``a@b@since=1h`` is a view of the log ``a@b`` and ``x@y=1`` is a plain name."""
    at = name.find("@")
    while at > 0:
        spec = name[at + 1:]
        if spec and all(_VIEW_SPEC.match(part) for part in spec.split(",")):
            return name[:at], spec
        at = name.find("@", at + 1)
    return None
