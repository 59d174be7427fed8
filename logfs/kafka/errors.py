"""Kafka's error codes that logfs answers, and the one place where the storage core's
exceptions become them (:func:`error_of`)."""

from __future__ import annotations

import errno
import logging

from logfs.core import (AlreadyExists, InvalidName, NotFound, OffsetOutOfRange,
                        StorageError, StorageIOError)

__all__ = ["Err", "KafkaError", "error_of"]

log = logging.getLogger(__name__)


class Err:
    """Error codes (Kafka's ``Errors.java``)."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    MESSAGE_TOO_LARGE = 10
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_COMMIT_OFFSET_SIZE = 28
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_SASL_MECHANISM = 33
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REQUEST = 42
    INVALID_CONFIG = 40
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    KAFKA_STORAGE_ERROR = 56
    UNKNOWN_PRODUCER_ID = 59
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    MEMBER_ID_REQUIRED = 79
    INVALID_RECORD = 87
    UNSTABLE_OFFSET_COMMIT = 88
    FENCED_INSTANCE_ID = 82


class KafkaError(Exception):
    """A handler's refusal: an error code and a message for error_message fields."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_of(exc: BaseException, what: str) -> tuple[int, str]:
    """The Kafka error code and message for an exception met while serving *what*;
    logs one line (an unexpected exception: with its traceback)."""
    if isinstance(exc, KafkaError):
        return exc.code, exc.message
    if isinstance(exc, NotFound):
        return Err.UNKNOWN_TOPIC_OR_PARTITION, str(exc)
    if isinstance(exc, OffsetOutOfRange):
        return Err.OFFSET_OUT_OF_RANGE, str(exc)
    if isinstance(exc, AlreadyExists):
        return Err.TOPIC_ALREADY_EXISTS, str(exc)
    if isinstance(exc, InvalidName):
        return Err.INVALID_TOPIC_EXCEPTION, str(exc)
    if isinstance(exc, StorageIOError):
        code = Err.KAFKA_STORAGE_ERROR
        if getattr(exc, "errno", None) == errno.ENOSPC:
            log.warning("kafka: %s: disk full: %s", what, exc)
        else:
            log.warning("kafka: %s: %s", what, exc)
        return code, str(exc)
    if isinstance(exc, StorageError):
        log.warning("kafka: %s: %s", what, exc)
        return Err.KAFKA_STORAGE_ERROR, str(exc)
    log.exception("kafka: %s failed", what)
    return Err.UNKNOWN_SERVER_ERROR, f"{type(exc).__name__}: {exc}"
