"""Kafka topic names of every contract event, and how the topics are laid out."""

from typing import Final

SESSION_STARTED: Final = "sessions.session-started.v1"
STEP_CREATED: Final = "sessions.step-created.v1"
SESSION_COMPLETED: Final = "sessions.session-completed.v1"
HANDOFF_REQUESTED: Final = "handoffs.handoff-requested.v1"
HANDOFF_CLAIMED: Final = "handoffs.handoff-claimed.v1"
HANDOFF_RELEASED: Final = "handoffs.handoff-released.v1"
HANDOFF_RESOLVED: Final = "handoffs.handoff-resolved.v1"
HANDOFF_STALE: Final = "handoffs.handoff-stale.v1"

ALL_TOPICS: Final = (
    SESSION_STARTED,
    STEP_CREATED,
    SESSION_COMPLETED,
    HANDOFF_REQUESTED,
    HANDOFF_CLAIMED,
    HANDOFF_RELEASED,
    HANDOFF_RESOLVED,
    HANDOFF_STALE,
)

# Every topic has the same partition count so that one session_id lands on the same partition number
# everywhere (docs/contract.md#topics-and-keys). It also caps how many replicas of one consumer can share the work.
PARTITIONS: Final = 6

# Contract topics keep their events forever: the analytics read model is rebuilt from them.
RETENTION_MS: Final = -1
DLQ_SUFFIX: Final = ".dlq"
DLQ_RETENTION_MS: Final = 30 * 24 * 3600 * 1000


def dlq(topic: str) -> str:
    """The dead-letter topic of a topic."""
    return f"{topic}{DLQ_SUFFIX}"
