"""Pydantic models of every event on Kafka (docs/contract.md#events-on-kafka): frozen, strict, one per event type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from rf_contracts import topics

# What storage can hold bounds what the contract accepts (a validation tightening, no field changes type):
# versions are PostgreSQL bigints, times are timestamptz read back as Python datetimes.
MAX_VERSION = 2**63 - 1


def _storable_time(value: datetime) -> datetime:
    """A time whose UTC instant lies in years 1..9999 (e.g. 9999-12-31T23:59:59-14:00 does not)."""
    if 1 < value.year < 9999:  # only the first and last year can leave the range once converted to UTC
        return value
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range: its UTC instant must lie in years 1 to 9999") from None
    return value


Timestamp: TypeAlias = Annotated[
    AwareDatetime,
    AfterValidator(_storable_time),
    Field(description="RFC 3339 with an offset; its UTC instant lies in years 1 to 9999 (what storage holds)."),
]
Version: TypeAlias = Annotated[
    int,
    Field(ge=1, le=MAX_VERSION, strict=True, description="1 to 2**63-1: a signed 64-bit integer (storage is bigint)."),
]


class Event(BaseModel):
    """Fields every event carries."""

    # Strict where it protects the contract (no coercion of numbers to strings), lenient where JSON
    # has no native type (UUIDs and timestamps arrive as strings).
    model_config = ConfigDict(
        frozen=True, extra="ignore", strict=False, json_schema_serialization_defaults_required=True
    )

    TOPIC: ClassVar[str]
    EVENT_TYPE: ClassVar[str]

    event_id: UUID
    event_type: str
    schema_version: Literal[1] = 1
    occurred_at: Timestamp
    account_id: UUID
    session_id: UUID

    def key(self) -> bytes:
        """The Kafka key: the session id as a canonical lowercase UUID string."""
        return str(self.session_id).encode()

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class SessionStarted(Event):
    TOPIC: ClassVar[str] = topics.SESSION_STARTED
    EVENT_TYPE: ClassVar[str] = "session.started"
    event_type: Literal["session.started"] = "session.started"
    tree_id: UUID
    tree_version: Version
    started_by: UUID
    started_at: Timestamp
    # Added in schema version 1 (contracts grow by optional fields): the tree's title and category when the
    # session started, for analytics' breakdown by tree and category (null from producers that predate them).
    tree_title: str | None = None
    tree_category: str | None = None


class StepCreated(Event):
    TOPIC: ClassVar[str] = topics.STEP_CREATED
    EVENT_TYPE: ClassVar[str] = "session.step_created"
    event_type: Literal["session.step_created"] = "session.step_created"
    step_id: UUID
    created_at: Timestamp
    kind: Literal["answer", "action", "note", "suggestion"]
    actor_type: Literal["human", "ai"]
    actor_id: UUID | None


class SessionCompleted(Event):
    TOPIC: ClassVar[str] = topics.SESSION_COMPLETED
    EVENT_TYPE: ClassVar[str] = "session.completed"
    event_type: Literal["session.completed"] = "session.completed"
    completed_at: Timestamp
    outcome: Literal["resolved", "unresolved"]


class HandoffEvent(Event):
    """A change of one handoff; `version` grows by one with every change of that handoff."""

    handoff_id: UUID
    version: Version


class HandoffRequested(HandoffEvent):
    TOPIC: ClassVar[str] = topics.HANDOFF_REQUESTED
    EVENT_TYPE: ClassVar[str] = "handoff.requested"
    event_type: Literal["handoff.requested"] = "handoff.requested"
    requested_by: UUID
    requested_at: Timestamp
    priority: Literal["low", "normal", "high", "urgent"]
    reason: str


class HandoffClaimed(HandoffEvent):
    TOPIC: ClassVar[str] = topics.HANDOFF_CLAIMED
    EVENT_TYPE: ClassVar[str] = "handoff.claimed"
    event_type: Literal["handoff.claimed"] = "handoff.claimed"
    claimed_by: UUID
    claimed_at: Timestamp


class HandoffReleased(HandoffEvent):
    TOPIC: ClassVar[str] = topics.HANDOFF_RELEASED
    EVENT_TYPE: ClassVar[str] = "handoff.released"
    event_type: Literal["handoff.released"] = "handoff.released"
    released_by: UUID
    released_at: Timestamp


class HandoffResolved(HandoffEvent):
    TOPIC: ClassVar[str] = topics.HANDOFF_RESOLVED
    EVENT_TYPE: ClassVar[str] = "handoff.resolved"
    event_type: Literal["handoff.resolved"] = "handoff.resolved"
    resolved_by: UUID
    resolved_at: Timestamp


ALL_EVENTS: tuple[type[Event], ...] = (
    SessionStarted,
    StepCreated,
    SessionCompleted,
    HandoffRequested,
    HandoffClaimed,
    HandoffReleased,
    HandoffResolved,
)
EVENT_BY_TOPIC: dict[str, type[Event]] = {e.TOPIC: e for e in ALL_EVENTS}
EVENT_BY_TYPE: dict[str, type[Event]] = {e.EVENT_TYPE: e for e in ALL_EVENTS}


class ContractViolation(ValueError):
    """A message that is not a valid event of its topic; the reason goes into the DLQ header."""


_UNCHECKED: Any = object()


def parse_event(topic: str, raw: bytes | None, key: bytes | None = _UNCHECKED) -> Event:
    """Parse and validate one message of a contract topic, or raise ContractViolation with the reason.

    `key` is the message's Kafka key: it must be the event's session_id as a canonical UUID string, so a
    null key is a violation too. Without the argument the key is not checked (a body checked on its own).
    """
    model = EVENT_BY_TOPIC.get(topic.rsplit("/", 1)[-1]) or _by_suffix(topic)
    if raw is None:
        raise ContractViolation("null value: an event is a JSON object")
    try:
        event = model.model_validate_json(raw)
    except ValueError as exc:
        raise ContractViolation(_short(str(exc))) from exc
    if key is _UNCHECKED:
        return event
    if key is None:
        raise ContractViolation(f"null key: the key is the event's session_id {str(event.session_id)!r}")
    if key != event.key():
        raise ContractViolation(f"key {key[:100]!r} is not the event's session_id {str(event.session_id)!r}")
    return event


def _by_suffix(topic: str) -> type[Event]:
    # Tests and parallel environments may prefix topic names (`<prefix>.<topic>`).
    for name, model in EVENT_BY_TOPIC.items():
        if topic.endswith(name):
            return model
    raise ContractViolation(f"no contract for topic {topic!r}")


def _short(text: str) -> str:
    return " ".join(text.split())[:500]


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event, by topic."""
    return {e.TOPIC: e.model_json_schema(mode="serialization") for e in ALL_EVENTS}



