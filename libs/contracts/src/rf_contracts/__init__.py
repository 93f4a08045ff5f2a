"""ResolutionFlow event contracts: the models, topic names and JSON Schemas that services share."""

from rf_contracts.events import (
    ALL_EVENTS,
    EVENT_BY_TOPIC,
    EVENT_BY_TYPE,
    Event,
    HandoffClaimed,
    HandoffEvent,
    HandoffReleased,
    HandoffRequested,
    HandoffResolved,
    HandoffStale,
    SessionCompleted,
    SessionStarted,
    StepCreated,
    parse_event,
)
from rf_contracts.topics import ALL_TOPICS, DLQ_SUFFIX, PARTITIONS, dlq

__all__ = [
    "ALL_EVENTS",
    "ALL_TOPICS",
    "DLQ_SUFFIX",
    "EVENT_BY_TOPIC",
    "EVENT_BY_TYPE",
    "PARTITIONS",
    "Event",
    "HandoffClaimed",
    "HandoffEvent",
    "HandoffReleased",
    "HandoffRequested",
    "HandoffResolved",
    "HandoffStale",
    "SessionCompleted",
    "SessionStarted",
    "StepCreated",
    "dlq",
    "parse_event",
]
