"""Per-log configuration with Kafka's key names (docs/spec.md §6, docs/config.md).

Effective configuration = log overrides -> topic overrides -> store defaults -> builtin.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

from .errors import ConfigError

GiB = 1 << 30
DAY_MS = 24 * 3600 * 1000

# key -> (attribute, builtin default, minimum, allow -1 meaning "unlimited", maximum)
# (local.retention.*: -2 means "the same as retention.*", Kafka's default; the
# boolean remote.storage.enable is stored as 0 or 1 and parsed from true/false too)
_KEYS: dict[str, tuple[str, int | None, int, bool, int]] = {
    "segment.bytes": ("segment_bytes", GiB, 14, False, (1 << 31) - 1),
    "segment.ms": ("segment_ms", 7 * DAY_MS, 1, False, 1 << 62),
    "retention.bytes": ("retention_bytes", -1, 0, True, 1 << 62),
    "retention.ms": ("retention_ms", -1, 0, True, 1 << 62),
    "index.interval.bytes": ("index_interval_bytes", 4096, 1, False, 1 << 30),
    "flush.ms": ("flush_ms", None, 1, False, 1 << 62),
    "remote.storage.enable": ("remote_storage_enable", 0, 0, False, 1),
    "local.retention.bytes": ("local_retention_bytes", -2, 0, True, 1 << 62),
    "local.retention.ms": ("local_retention_ms", -2, 0, True, 1 << 62),
}
_BOOL_KEYS = {"remote.storage.enable"}
_SAME_AS_RETENTION = {"local.retention.bytes", "local.retention.ms"}
CONFIG_KEYS = tuple(_KEYS)


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = GiB
    segment_ms: int = 7 * DAY_MS
    retention_bytes: int = -1
    retention_ms: int = -1
    index_interval_bytes: int = 4096
    flush_ms: int | None = None
    remote_storage_enable: int = 0
    local_retention_bytes: int = -2
    local_retention_ms: int = -2

    def as_kafka_dict(self) -> dict[str, int | bool | None]:
        by_attr = {attr: key for key, (attr, *_rest) in _KEYS.items()}
        # remote.storage.enable is 0 or 1 here, as every value is an integer (docs/config.md)
        return {by_attr[f.name]: getattr(self, f.name) for f in fields(self)}

    @property
    def tiered(self) -> bool:
        return bool(self.remote_storage_enable)

    @property
    def local_bytes_limit(self) -> int:
        """local.retention.bytes, with -2 resolved (the same as retention.bytes)."""
        return self.retention_bytes if self.local_retention_bytes == -2 else self.local_retention_bytes

    @property
    def local_ms_limit(self) -> int:
        """local.retention.ms, with -2 resolved (the same as retention.ms)."""
        return self.retention_ms if self.local_retention_ms == -2 else self.local_retention_ms


def _parse_value(key: str, value: object) -> int | None:
    _attr, _default, minimum, allow_unlimited, maximum = _KEYS[key]
    if key in _BOOL_KEYS:
        text = str(value).strip().lower()
        if value is True or text in ("true", "1", "yes", "on"):
            return 1
        if value is False or text in ("false", "0", "no", "off"):
            return 0
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if key == "flush.ms" and text.lower() in ("none", "off"):
            return None
        try:
            number = int(text, 10)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if allow_unlimited and number == -1:
        return -1
    if key in _SAME_AS_RETENTION and number == -2:
        return -2
    if number < minimum or number > maximum:
        lo = ("-2, " if key in _SAME_AS_RETENTION else "") + ("-1 or " if allow_unlimited else "")
        raise ConfigError(f"{key}: {number} is out of range ({lo}{minimum}..{maximum})")
    return number


def parse_config(values: Mapping[str, object]) -> dict[str, int | None]:
    """Validate Kafka-named settings; raise ConfigError naming the bad key or value.

    A value of None or "" means "remove this override" and is returned as the
    special marker :data:`UNSET`.
    """
    parsed: dict[str, int | None] = {}
    for key, value in values.items():
        if key not in _KEYS:
            known = ", ".join(CONFIG_KEYS)
            raise ConfigError(f"unknown configuration key {key!r} (known: {known})")
        if value is None or (isinstance(value, str) and value.strip() == ""):
            parsed[key] = UNSET  # type: ignore[assignment]
        else:
            parsed[key] = _parse_value(key, value)
    return parsed


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: object = _Unset()


def merge_overrides(current: Mapping[str, object], updates: Mapping[str, object]) -> dict[str, object]:
    """Apply parsed *updates* (UNSET removes a key) to *current* overrides."""
    merged = dict(current)
    for key, value in updates.items():
        if value is UNSET:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def effective_config(*layers: Mapping[str, object]) -> LogConfig:
    """Combine override layers, most specific first, over the builtin defaults."""
    kwargs: dict[str, int | None] = {}
    for key, (attr, *_rest) in _KEYS.items():
        for layer in layers:
            if key in layer and layer[key] is not UNSET:
                kwargs[attr] = layer[key]  # type: ignore[assignment]
                break
    return LogConfig(**kwargs)  # type: ignore[arg-type]


def to_strings(overrides: Mapping[str, object]) -> dict[str, str]:
    return {k: ("none" if v is None else ("true" if v else "false") if k in _BOOL_KEYS else str(v))
            for k, v in sorted(overrides.items())}
