"""Kafka topics and partitions over logfs topics and logs (docs/kafka.md, "Mapping").

A logfs topic T whose logs include ``0``..``N-1`` (the longest such run) is the Kafka
topic T with N partitions. Every other log L of T is the one-partition Kafka topic
``T.L`` when that is a legal Kafka topic name; logs and topics that cannot be named in
Kafka are skipped, with one log line the first time they are met.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from logfs.core import LogStore

__all__ = ["KafkaTopic", "TopicMap", "legal_topic_name"]

log = logging.getLogger(__name__)

_LEGAL = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def legal_topic_name(name: str) -> bool:
    """Kafka's rule for topic names (Topic.validate): 1-249 of [a-zA-Z0-9._-], not . or .."""
    return bool(_LEGAL.fullmatch(name)) and name not in (".", "..")


@dataclass(frozen=True)
class KafkaTopic:
    name: str           # the Kafka topic name
    topic: str          # the logfs topic (directory)
    logs: tuple[str, ...]  # partition i is log logs[i]

    @property
    def partitions(self) -> int:
        return len(self.logs)


def _partition_run(logs: list[str]) -> int:
    present = set(logs)
    n = 0
    while str(n) in present:
        n += 1
    return n


class TopicMap:
    """Reads the mapping off the store each time it is asked (directories are the
    truth; a listing is cheap), remembering which names it has already warned about."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self._warned: set[str] = set()

    def _warn(self, what: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("kafka: %s", what)

    def topics_of(self, topic: str) -> list[KafkaTopic]:
        """The Kafka topics one logfs topic holds."""
        logs = self.store.logs(topic)
        n = _partition_run(logs)
        out = []
        if n:
            if legal_topic_name(topic):
                out.append(KafkaTopic(topic, topic, tuple(str(i) for i in range(n))))
            else:
                self._warn(f"topic {topic!r} is not a legal Kafka topic name: not served")
        numbered = {str(i) for i in range(n)}
        for name in logs:
            if name in numbered:
                continue
            kname = f"{topic}.{name}"
            if legal_topic_name(kname):
                out.append(KafkaTopic(kname, topic, (name,)))
            else:
                self._warn(f"log {topic}/{name} has no legal Kafka topic name ({kname!r}): "
                           "not served")
        return out

    def all(self) -> list[KafkaTopic]:
        out = []
        for topic in self.store.topics():
            out.extend(self.topics_of(topic))
        return out

    def find(self, name: str) -> KafkaTopic | None:
        """The Kafka topic *name*, or None. ``T`` is tried as a logfs topic with
        numbered logs first, then every split ``T.L`` of the name at a dot."""
        if not legal_topic_name(name):
            return None
        store = self.store
        if store.has_topic(name):
            logs = store.logs(name)
            n = _partition_run(logs)
            if n:
                return KafkaTopic(name, name, tuple(str(i) for i in range(n)))
        i = name.find(".")
        while i > 0:
            topic, log_name = name[:i], name[i + 1:]
            if log_name and store.has_topic(topic) and store.has_log(topic, log_name):
                n = _partition_run(store.logs(topic))
                if not (log_name.isdigit() and int(log_name) < n and str(int(log_name)) == log_name):
                    return KafkaTopic(name, topic, (log_name,))
            i = name.find(".", i + 1)
        return None

    def collides(self, name: str) -> bool:
        """Whether creating the Kafka topic *name* as a logfs topic would clash with
        an existing topic or with a ``T.L`` name already served."""
        return self.store.has_topic(name) or self.find(name) is not None
