"""Metadata, CreateTopics, DeleteTopics and DescribeConfigs over the topic map."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from logfs.core import CONFIG_KEYS, ConfigError, StorageError

from .errors import Err, KafkaError, error_of
from .mapping import KafkaTopic, legal_topic_name

if TYPE_CHECKING:
    from .context import BrokerContext

__all__ = ["TopicHandlers"]

log = logging.getLogger(__name__)

NO_OPERATIONS = -(1 << 31)  # "authorized operations not asked for"
RESOURCE_TOPIC, RESOURCE_BROKER = 2, 4
SOURCE_TOPIC, SOURCE_DEFAULT, SOURCE_STATIC_BROKER = 1, 5, 4


class TopicHandlers:
    def __init__(self, broker: "BrokerContext") -> None:
        self.broker = broker

    # -- Metadata ------------------------------------------------------------------
    def topic_entry(self, kt: KafkaTopic) -> dict:
        node = self.broker.options.node_id
        parts = [{"error_code": Err.NONE, "partition_index": i, "leader_id": node,
                  "leader_epoch": 0, "replica_nodes": [node], "isr_nodes": [node],
                  "offline_replicas": []} for i in range(kt.partitions)]
        return {"error_code": Err.NONE, "name": kt.name, "topic_id": self.broker.topic_id(kt.name),
                "is_internal": False, "partitions": parts,
                "topic_authorized_operations": NO_OPERATIONS}

    def find_or_create(self, name: str, allow_create: bool) -> KafkaTopic:
        """The Kafka topic *name*; auto-created (one partition by default) if allowed.
        Raises KafkaError."""
        kt = self.broker.topics.find(name)
        if kt is not None:
            return kt
        if not legal_topic_name(name):
            raise KafkaError(Err.INVALID_TOPIC_EXCEPTION, f"{name!r} is not a legal topic name")
        if not (allow_create and self.broker.options.auto_create):
            raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        self.create(name, self.broker.options.default_partitions, {})
        log.info("kafka: created topic %s (%d partition(s)) on first use", name,
                 self.broker.options.default_partitions)
        kt = self.broker.topics.find(name)
        if kt is None:  # pragma: no cover - created just above
            raise KafkaError(Err.UNKNOWN_SERVER_ERROR, f"topic {name!r} vanished")
        return kt

    async def metadata(self, req: Any, version: int) -> dict:
        asked = req.topics
        allow = bool(getattr(req, "allow_auto_topic_creation", True))
        if asked is None or (version == 0 and not asked):
            entries = [self.topic_entry(kt) for kt in self.broker.topics.all()]
        else:
            entries = []
            for t in asked:
                name = t.name or ""
                try:
                    entries.append(self.topic_entry(self.find_or_create(name, allow)))
                except (KafkaError, StorageError) as exc:
                    code, _msg = error_of(exc, f"metadata of {name!r}")
                    entries.append({"error_code": code, "name": name, "partitions": [],
                                    "topic_id": self.broker.topic_id(name),
                                    "topic_authorized_operations": NO_OPERATIONS})
        node = self.broker.options.node_id
        return {"throttle_time": 0, "brokers": [self.broker.broker_entry()],
                "cluster_id": self.broker.options.cluster_id, "controller_id": node,
                "topics": entries, "cluster_authorized_operations": NO_OPERATIONS}

    # -- CreateTopics ----------------------------------------------------------------
    def create(self, name: str, partitions: int, configs: dict[str, str]) -> None:
        """Make the logfs topic and its numbered logs. Raises KafkaError, StorageError."""
        if self.broker.topics.collides(name):
            raise KafkaError(Err.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        store = self.broker.store
        store.create_topic(name)
        if configs:
            store.set_topic_config(name, configs)
        for i in range(partitions):
            store.create_log(name, str(i))

    def _check_create(self, t: Any) -> tuple[int, dict[str, str]]:
        if not legal_topic_name(t.name):
            raise KafkaError(Err.INVALID_TOPIC_EXCEPTION, f"{t.name!r} is not a legal topic name")
        n = t.num_partitions if t.num_partitions != -1 else self.broker.options.default_partitions
        if n < 1 or n > 10000:
            raise KafkaError(Err.INVALID_PARTITIONS, f"{n} partitions: use 1 to 10000")
        if t.replication_factor not in (-1, 1):
            raise KafkaError(Err.INVALID_REPLICATION_FACTOR,
                             f"replication factor {t.replication_factor}: logfs is one broker "
                             "(use 1 or -1)")
        configs = {c.name: c.value for c in t.configs}
        unknown = [k for k in configs if k not in CONFIG_KEYS]
        if unknown:
            raise KafkaError(Err.INVALID_CONFIG, f"unknown config {unknown[0]!r} (logfs knows "
                             f"{', '.join(CONFIG_KEYS)})")
        return n, {k: v for k, v in configs.items() if v is not None}

    async def create_topics(self, req: Any, version: int) -> dict:
        results = []
        for t in req.topics:
            try:
                n, configs = self._check_create(t)
                if self.broker.topics.collides(t.name):
                    raise KafkaError(Err.TOPIC_ALREADY_EXISTS, f"topic {t.name!r} already exists")
                if not req.validate_only:
                    self.create(t.name, n, configs)
                    log.info("kafka: created topic %s (%d partition(s))", t.name, n)
                results.append({"name": t.name, "topic_id": self.broker.topic_id(t.name),
                                "error_code": Err.NONE, "num_partitions": n,
                                "replication_factor": 1, "configs": None})
            except ConfigError as exc:
                results.append({"name": t.name, "error_code": Err.INVALID_CONFIG,
                                "error_message": str(exc)})
            except (KafkaError, StorageError) as exc:
                code, msg = error_of(exc, f"create topic {t.name!r}")
                results.append({"name": t.name, "error_code": code, "error_message": msg})
        return {"throttle_time": 0, "topics": results}

    # -- DeleteTopics ----------------------------------------------------------------
    def delete(self, name: str) -> None:
        kt = self.broker.topics.find(name)
        if kt is None:
            raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        store = self.broker.store
        for lg in kt.logs:
            store.delete_log(kt.topic, lg)
        if kt.name == kt.topic and not store.logs(kt.topic):
            store.delete_topic(kt.topic)
        log.info("kafka: deleted topic %s", name)

    async def delete_topics(self, req: Any, version: int) -> dict:
        names = list(getattr(req, "topic_names", ()) or ())
        names += [t.name for t in getattr(req, "topics", ()) or () if t.name]
        out = []
        for name in names:
            try:
                self.delete(name)
                out.append({"name": name, "error_code": Err.NONE})
            except (KafkaError, StorageError) as exc:
                code, msg = error_of(exc, f"delete topic {name!r}")
                out.append({"name": name, "error_code": code, "error_message": msg})
        return {"throttle_time": 0, "responses": out}

    # -- DescribeConfigs -------------------------------------------------------------
    def _topic_configs(self, name: str, keys: Any) -> list[dict]:
        kt = self.broker.topics.find(name)
        if kt is None:
            raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        lg = self.broker.store.log(kt.topic, kt.logs[0])
        effective = lg.config.as_kafka_dict()
        overridden = set(lg.config_overrides) | set(self.broker.store.topic_overrides(kt.topic))
        out = []
        for key, value in effective.items():
            if keys and key not in keys:
                continue
            out.append({"name": key, "value": None if value is None else str(value),
                        "read_only": False, "is_default": key not in overridden,
                        "config_source": SOURCE_TOPIC if key in overridden else SOURCE_DEFAULT,
                        "is_sensitive": False, "synonyms": [], "config_type": 0})
        return out

    async def describe_configs(self, req: Any, version: int) -> dict:
        results = []
        for r in req.resources:
            try:
                if r.resource_type == RESOURCE_TOPIC:
                    configs = self._topic_configs(r.resource_name, r.configuration_keys)
                elif r.resource_type == RESOURCE_BROKER:
                    configs = [{"name": "message.max.bytes", "read_only": True,
                                "value": str(self.broker.options.message_max_bytes),
                                "config_source": SOURCE_STATIC_BROKER, "synonyms": []}]
                else:
                    raise KafkaError(Err.INVALID_REQUEST,
                                     f"resource type {r.resource_type} is not described by logfs")
                results.append({"error_code": Err.NONE, "resource_type": r.resource_type,
                                "resource_name": r.resource_name, "configs": configs})
            except (KafkaError, StorageError) as exc:
                code, msg = error_of(exc, f"describe configs of {r.resource_name!r}")
                results.append({"error_code": code, "error_message": msg,
                                "resource_type": r.resource_type,
                                "resource_name": r.resource_name, "configs": []})
        return {"throttle_time": 0, "results": results}
