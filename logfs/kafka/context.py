"""What the API handlers see of the broker (:class:`BrokerContext`), and the small
pieces of shared state: the options, the writer, the append wake-ups. The handler
modules import this, never broker.py, which imports them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from logfs.core import GroupStore, Log, LogStore

from .mapping import TopicMap

__all__ = ["BrokerContext", "BrokerOptions", "LogWriter", "PlainWriter", "Wakeups"]


class LogWriter(Protocol):
    """How the broker appends: the owner of the logs' writer (a mount, which must also
    make the kernel see the new end, or the store itself). ``append`` appends before
    its first await, so the record count read just before it is the batch's base
    offset; it returns once readers of every path can see the records."""

    async def append(self, lg: Log, data: bytes) -> None: ...


class PlainWriter:
    """Appends straight to the store (``logfs kafka DATA``: no mount)."""

    async def append(self, lg: Log, data: bytes) -> None:
        lg.append(data)


@dataclass
class BrokerOptions:
    host: str = "127.0.0.1"
    port: int = 9092
    advertise_host: str | None = None
    advertise_port: int | None = None
    node_id: int = 0
    auto_create: bool = True
    default_partitions: int = 1
    message_max_bytes: int = 1 << 20
    max_connections: int = 1000
    idle_timeout_s: float = 600.0
    send_timeout_s: float = 30.0
    cluster_id: str = "logfs"
    group_min_session_timeout_ms: int = 6_000      # Kafka's group.min.session.timeout.ms
    group_max_session_timeout_ms: int = 1_800_000  # and group.max.session.timeout.ms


class Wakeups:
    """Tasks waiting for appends to some logs; an append wakes all of that log's.
    Without waiters a notify is one dict lookup (it runs on every write)."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[str, str], set[trio.Event]] = {}

    def notify(self, key: tuple[str, str]) -> None:
        events = self.waiting.pop(key, None)
        if events:
            for ev in events:
                ev.set()

    async def wait(self, keys: list[tuple[str, str]]) -> None:
        """Until an append to any of *keys* (callers bound it with a deadline)."""
        ev = trio.Event()
        for k in keys:
            self.waiting.setdefault(k, set()).add(ev)
        try:
            await ev.wait()
        finally:
            for k in keys:
                waiters = self.waiting.get(k)
                if waiters is not None:
                    waiters.discard(ev)
                    if not waiters:
                        del self.waiting[k]


class BrokerContext(Protocol):
    store: LogStore
    writer: LogWriter
    options: BrokerOptions
    topics: TopicMap
    wakeups: Wakeups
    groups: GroupStore
    topic_handlers: Any  # topics.TopicHandlers (find_or_create, for Produce)

    @property
    def advertised(self) -> tuple[str, int]: ...

    def broker_entry(self) -> dict: ...

    def topic_id(self, name: str) -> uuid.UUID: ...

    def notify(self, topic: str, name: str) -> None: ...
