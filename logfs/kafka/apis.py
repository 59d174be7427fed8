"""The API keys logfs answers and the versions it advertises (ApiVersions).

Every API is advertised from version 0: librdkafka turns features on only when a
whole version range lies inside the advertised one (RecordBatch v2 needs Produce 3 and
Fetch 4, groups need OffsetCommit 1-2, LZ4 needs FindCoordinator 0...). Requests are
decoded with kio, which, like Kafka 4, has no schemas below ``KIO_MIN``; a request in
such a version (sent only by clients older than Kafka 0.11) is answered by closing the
connection, with one log line. The maxima stop before versions that need topic ids
(Fetch 13, Produce 13, DeleteTopics 6) or the KIP-848 consumer protocol.
"""

from __future__ import annotations

__all__ = ["ADVERTISED", "API_NAMES", "API_VERSIONS_KEY", "KIO_MIN"]

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS = 15, 16
API_VERSIONS_KEY = 18
CREATE_TOPICS, DELETE_TOPICS = 19, 20
INIT_PRODUCER_ID = 22
DESCRIBE_CONFIGS = 32
DELETE_GROUPS = 42

# api key -> (name, advertised max version)
ADVERTISED: dict[int, tuple[str, int]] = {
    PRODUCE: ("Produce", 9),
    FETCH: ("Fetch", 12),
    LIST_OFFSETS: ("ListOffsets", 7),
    METADATA: ("Metadata", 12),
    OFFSET_COMMIT: ("OffsetCommit", 8),
    OFFSET_FETCH: ("OffsetFetch", 7),
    FIND_COORDINATOR: ("FindCoordinator", 3),
    JOIN_GROUP: ("JoinGroup", 7),
    HEARTBEAT: ("Heartbeat", 4),
    LEAVE_GROUP: ("LeaveGroup", 4),
    SYNC_GROUP: ("SyncGroup", 5),
    DESCRIBE_GROUPS: ("DescribeGroups", 5),
    LIST_GROUPS: ("ListGroups", 4),
    API_VERSIONS_KEY: ("ApiVersions", 3),
    CREATE_TOPICS: ("CreateTopics", 7),
    DELETE_TOPICS: ("DeleteTopics", 5),
    INIT_PRODUCER_ID: ("InitProducerId", 4),
    DESCRIBE_CONFIGS: ("DescribeConfigs", 4),
    DELETE_GROUPS: ("DeleteGroups", 2),
}

API_NAMES = {key: name for key, (name, _max) in ADVERTISED.items()}

# the lowest version kio can decode, per key (below it: the connection is closed)
KIO_MIN: dict[int, int] = {
    PRODUCE: 3, FETCH: 4, LIST_OFFSETS: 1, OFFSET_COMMIT: 2, OFFSET_FETCH: 1,
    CREATE_TOPICS: 2, DELETE_TOPICS: 1, DESCRIBE_CONFIGS: 1,
}
