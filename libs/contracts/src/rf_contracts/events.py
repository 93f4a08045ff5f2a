"""Pydantic models of every event on Kafka (docs/contract.md#events-on-kafka): frozen, strict, one per event type."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from rf_contracts import topics
from rf_contracts.api.text import storable

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

    # A concrete event names its topic in its class line (`class X(Event, topic=topics.X)`) and its type once,
    # as the default of its `event_type` Literal; EVENT_TYPE is read from there.
    def __init_subclass__(cls, *, topic: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if topic is not None:
            cls.TOPIC = topic

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "TOPIC" in cls.__dict__:
            cls.EVENT_TYPE = cls.model_fields["event_type"].default

    def key(self) -> bytes:
        """The Kafka key: the session id as a canonical lowercase UUID string."""
        return str(self.session_id).encode()

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    def headers(self) -> dict[str, str]:
        """The Kafka headers published with the event (EVENT_HEADERS), so a consumer can route before parsing."""
        return {"event_type": self.EVENT_TYPE, "event_id": str(self.event_id)}


def _may_be_absent(*names: str) -> Callable[[dict[str, Any]], None]:
    """Fields added to a version that producers of the version before them do not send: not `required` in the
    published schema (defaults are otherwise listed as required: every producer of today sends them)."""

    def drop(schema: dict[str, Any]) -> None:
        schema["required"] = [name for name in schema.get("required", []) if name not in names]

    return drop


# The tree's title and category as the trees API bounds them (1-200 and 1-100 characters, text PostgreSQL holds).
TreeTitleText: TypeAlias = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(storable)]
TreeCategoryText: TypeAlias = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(storable)]


class SessionStarted(Event, topic=topics.SESSION_STARTED):
    model_config = ConfigDict(json_schema_extra=_may_be_absent("tree_title", "tree_category"))

    event_type: Literal["session.started"] = "session.started"
    tree_id: UUID
    tree_version: Version
    started_by: UUID
    started_at: Timestamp
    # Added within version 1 (contracts only grow): the title and category of the tree version the session
    # started on, so consumers can group by tree without asking the sessions service. Null or absent in events
    # published before they existed.
    tree_title: TreeTitleText | None = Field(
        default=None, description="title of the tree version the session started on"
    )
    tree_category: TreeCategoryText | None = Field(
        default=None, description="category of the tree version the session started on"
    )


class StepCreated(Event, topic=topics.STEP_CREATED):
    event_type: Literal["session.step_created"] = "session.step_created"
    step_id: UUID
    created_at: Timestamp
    kind: Literal["answer", "action", "note", "suggestion"]
    actor_type: Literal["human", "ai"]
    actor_id: UUID | None


class SessionCompleted(Event, topic=topics.SESSION_COMPLETED):
    event_type: Literal["session.completed"] = "session.completed"
    completed_at: Timestamp
    outcome: Literal["resolved", "unresolved"]


class HandoffEvent(Event):
    """A change of one handoff; `version` grows by one with every change of that handoff."""

    handoff_id: UUID
    version: Version


class HandoffRequested(HandoffEvent, topic=topics.HANDOFF_REQUESTED):
    event_type: Literal["handoff.requested"] = "handoff.requested"
    requested_by: UUID
    requested_at: Timestamp
    priority: Literal["low", "normal", "high", "urgent"]
    reason: str


class HandoffClaimed(HandoffEvent, topic=topics.HANDOFF_CLAIMED):
    event_type: Literal["handoff.claimed"] = "handoff.claimed"
    claimed_by: UUID
    claimed_at: Timestamp


class HandoffReleased(HandoffEvent, topic=topics.HANDOFF_RELEASED):
    event_type: Literal["handoff.released"] = "handoff.released"
    # null: released by the system (a stale claim with auto-release), not by a user.
    released_by: UUID | None
    released_at: Timestamp


class HandoffResolved(HandoffEvent, topic=topics.HANDOFF_RESOLVED):
    event_type: Literal["handoff.resolved"] = "handoff.resolved"
    resolved_by: UUID
    resolved_at: Timestamp


# What each header of a contract event holds (Event.headers); docs/asyncapi.yaml documents them from here.
EVENT_HEADERS: dict[str, str] = {
    "event_type": "the event's event_type, the same as in the value",
    "event_id": "the event's event_id, the same as in the value",
}


class HandoffStale(HandoffEvent, topic=topics.HANDOFF_STALE):
    """A claim saw no step on its session for the account's `stale_after_seconds`: once per claim."""

    event_type: Literal["handoff.stale"] = "handoff.stale"
    claimed_by: UUID
    claimed_at: Timestamp
    stale_at: Timestamp


ALL_EVENTS: tuple[type[Event], ...] = (
    SessionStarted,
    StepCreated,
    SessionCompleted,
    HandoffRequested,
    HandoffClaimed,
    HandoffReleased,
    HandoffResolved,
    HandoffStale,
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



