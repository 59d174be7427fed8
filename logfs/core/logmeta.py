"""A log's metadata file, ``log.json`` (docs/format.md): when the log was created,
its chmod/chown attributes, its configuration overrides, and where retention left
its start (so that record numbers survive the loss of that segment's indexes).

The file is small and replaced atomically and durably on every change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import translate_os_errors
from .fileio import read_json, write_json_atomic
from .naming import LOG_META_FILE


@dataclass(frozen=True)
class FileAttrs:
    mode: int
    uid: int
    gid: int


class LogMeta:
    """The content of one ``log.json``, read when the log is opened."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOG_META_FILE)
        self._data: dict = read_json(self.path)

    def save(self) -> None:
        """Write the file (durably). Raises StorageIOError."""
        with translate_os_errors("write %s", self.path):
            write_json_atomic(self.path, self._data)

    @property
    def created_ms(self) -> int | None:
        value = self._data.get("created_ms")
        return None if value is None else int(value)

    def set_created(self, now_ms: int) -> None:
        """Record the creation time. Raises StorageIOError."""
        self._data["created_ms"] = now_ms
        self.save()

    @property
    def attrs(self) -> FileAttrs:
        """The persisted mode and owner (0644 and this process's user if never set)."""
        d = self._data
        return FileAttrs(int(d.get("mode", 0o644)), int(d.get("uid", os.getuid())), int(d.get("gid", os.getgid())))

    def set_attrs(self, mode: int | None, uid: int | None, gid: int | None) -> None:
        """Change the given attributes. Raises StorageIOError."""
        if mode is not None:
            self._data["mode"] = mode & 0o7777
        if uid is not None:
            self._data["uid"] = uid
        if gid is not None:
            self._data["gid"] = gid
        self.save()

    @property
    def config(self) -> dict:
        """The log's own configuration overrides (Kafka key names, parsed values)."""
        value = self._data.get("config", {})
        return value if isinstance(value, dict) else {}

    def set_config(self, overrides: dict) -> None:
        """Replace the overrides. Raises StorageIOError."""
        self._data["config"] = overrides
        self.save()

    @property
    def start(self) -> dict:
        """Where retention left the log's start: ``{"offset", "record", "boundary"}``
        of the first retained segment ({} before any deletion)."""
        value = self._data.get("start", {})
        return value if isinstance(value, dict) else {}

    def set_start(self, offset: int, record: int, boundary: bool) -> None:
        """Record a new start after retention. Raises StorageIOError."""
        self._data["start"] = {"offset": offset, "record": record, "boundary": boundary}
        self.save()
