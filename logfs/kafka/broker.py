"""The broker: one object holding what every Kafka connection shares (the store, the
topic map, the producer state, the group coordinator, the append wake-ups), and the
table from API key to handler.

A handler takes the decoded request (a kio entity) and its version and returns the
response as plain values (wire.build makes the version's entity of them), or None for
a request that gets no response (Produce with acks=0). Handlers never raise for a
client's mistake: they answer Kafka's error codes. The storage core's exceptions are
turned into error codes in one place (errors.py).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Awaitable, Callable

from logfs.core import GroupStore, LogStore

from . import apis
from .context import BrokerOptions, LogWriter, PlainWriter, Wakeups
from .coordinator import GroupCoordinator
from .errors import Err
from .fetch import FetchHandlers
from .mapping import TopicMap
from .produce import ProduceHandlers
from .topics import TopicHandlers

__all__ = ["Broker", "BrokerOptions", "LogWriter", "PlainWriter", "api_version_list"]

log = logging.getLogger(__name__)

Handler = Callable[[Any, int], Awaitable[dict | None]]


class Broker:
    """The shared state (the handlers see it as context.BrokerContext) and the table
    from API key to handler."""

    def __init__(self, store: LogStore, writer: LogWriter, options: BrokerOptions) -> None:
        self.store = store
        self.writer = writer
        self.options = options
        self.topics = TopicMap(store)
        self.wakeups = Wakeups()
        self.groups = GroupStore(store.data_dir)
        self.topic_handlers = TopicHandlers(self)
        self.produce = ProduceHandlers(self)
        self.fetch = FetchHandlers(self)
        self.coordinator = GroupCoordinator(self)
        self.handlers: dict[int, Handler] = {
            apis.API_VERSIONS_KEY: self.api_versions,
            apis.METADATA: self.topic_handlers.metadata,
            apis.CREATE_TOPICS: self.topic_handlers.create_topics,
            apis.DELETE_TOPICS: self.topic_handlers.delete_topics,
            apis.DESCRIBE_CONFIGS: self.topic_handlers.describe_configs,
            apis.PRODUCE: self.produce.produce,
            apis.INIT_PRODUCER_ID: self.produce.init_producer_id,
            apis.FETCH: self.fetch.fetch,
            apis.LIST_OFFSETS: self.fetch.list_offsets,
            apis.FIND_COORDINATOR: self.coordinator.find_coordinator,
            apis.JOIN_GROUP: self.coordinator.join_group,
            apis.SYNC_GROUP: self.coordinator.sync_group,
            apis.HEARTBEAT: self.coordinator.heartbeat,
            apis.LEAVE_GROUP: self.coordinator.leave_group,
            apis.OFFSET_COMMIT: self.coordinator.offset_commit,
            apis.OFFSET_FETCH: self.coordinator.offset_fetch,
            apis.LIST_GROUPS: self.coordinator.list_groups,
            apis.DESCRIBE_GROUPS: self.coordinator.describe_groups,
            apis.DELETE_GROUPS: self.coordinator.delete_groups,
        }

    # -- shared facts ------------------------------------------------------------
    @property
    def advertised(self) -> tuple[str, int]:
        o = self.options
        return (o.advertise_host or o.host, o.advertise_port or o.port)

    def broker_entry(self) -> dict:
        host, port = self.advertised
        return {"node_id": self.options.node_id, "host": host, "port": port, "rack": None}

    @staticmethod
    def topic_id(name: str) -> uuid.UUID:
        """A stable id for a Kafka topic name (logfs keeps no ids of its own)."""
        return uuid.uuid5(uuid.NAMESPACE_URL, "logfs-topic:" + name)

    def notify(self, topic: str, name: str) -> None:
        """An append landed in topic/name (called by the log's writer, any path)."""
        self.wakeups.notify((topic, name))

    async def run(self) -> None:
        """Background duties (group session expiry) until cancelled."""
        await self.coordinator.run()

    # -- ApiVersions -------------------------------------------------------------
    async def api_versions(self, req: Any, version: int) -> dict:
        return {"error_code": Err.NONE, "api_keys": api_version_list(), "throttle_time": 0}


def api_version_list() -> list[dict]:
    return [{"api_key": key, "min_version": 0, "max_version": mx}
            for key, (_name, mx) in sorted(apis.ADVERTISED.items())]
