"""The AsyncAPI 3.0 document of the events (docs/asyncapi.yaml), built from the contract models and topics."""

from __future__ import annotations

from typing import Any

from rf_contracts import deadletter, topics
from rf_contracts.events import ALL_EVENTS, EVENT_HEADERS, Event

VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
_PRODUCER = {"sessions": "the sessions service", "handoffs": "the handoffs service"}
# Key of the dead-letter message in components.messages, and of its payload's stub in components.schemas.
DEAD_LETTER = "DeadLetter"

_DESCRIPTION = """\
The events ResolutionFlow publishes on Kafka (docs/contract.md, "Events on Kafka").

Values are UTF-8 JSON objects; the key is the event's `session_id` as a canonical lowercase UUID string, so
everything about one session lands on one partition of every topic (all topics have the same partition count).
Delivery is at least once through a transactional outbox: consumers must be idempotent (`event_id`) and
order-tolerant (handoff events carry a `version` that grows with every change of that handoff). A deployment may
prefix every topic name (RF_TOPIC_PREFIX). A message a consumer cannot parse, or that breaks the contract, goes
to `<topic>.dlq` with the reason in a header, and consumption goes on. Contracts only grow: a field may be
added, never removed, renamed or retyped within a version.

Generated from the rf_contracts package: do not edit by hand (see docs/api.md)."""


def _paragraphs(text: str) -> str:
    """Hard-wrapped source text as one line per paragraph (renderers wrap on their own)."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _kafka_topic(name: str, retention_ms: int) -> dict[str, Any]:
    return {"kafka": {"topic": name, "partitions": topics.PARTITIONS,
                      "topicConfiguration": {"retention.ms": retention_ms}, "bindingVersion": KAFKA_BINDING}}


# Sample values of the messages' examples, by field name (every other field: its type's sample below).
_SAMPLES: dict[str, Any] = {
    "event_id": "9b2f6a3e-1c4d-4e5f-8a7b-6c5d4e3f2a1b", "account_id": "5f0c6a52-3b1e-4d8e-9c39-1a2b3c4d5e6f",
    "session_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "reason": "The light pattern is not in the tree",
}
_SAMPLE_UUID = "8d7e6f5a-4b3c-4d2e-8f1a-0b9c8d7e6f5a"
_SAMPLE_TIME = "2026-11-29T09:30:00Z"


def _sample(name: str, schema: dict[str, Any]) -> Any:
    if name in _SAMPLES:
        return _SAMPLES[name]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:  # nullable: the non-null choice
        return _sample(name, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    if schema.get("format") == "uuid":
        return _SAMPLE_UUID
    if schema.get("format") == "date-time":
        return _SAMPLE_TIME
    return {"integer": 1, "string": "text"}[schema["type"]]


def example(event: type[Event]) -> dict[str, Any]:
    """A valid message of the event: headers and payload, the key in the summary (AsyncAPI has no place for it)."""
    schema = event.model_json_schema(mode="serialization")
    payload = event.model_validate({name: _sample(name, prop) for name, prop in schema["properties"].items()})
    return {"name": event.__name__, "summary": f"with the key {payload.key().decode()} (its session_id)",
            "headers": payload.headers(), "payload": payload.model_dump(mode="json")}


def _event_message(event: type[Event]) -> dict[str, Any]:
    return {
        "name": event.EVENT_TYPE,
        "title": event.__name__,
        "summary": f"`{event.EVENT_TYPE}`, schema_version 1",
        "contentType": "application/json",
        "headers": {"type": "object", "required": list(EVENT_HEADERS), "properties": {
            name: {"type": "string", "description": text} for name, text in EVENT_HEADERS.items()}},
        "payload": _ref("components", "schemas", event.__name__),
        "correlationId": {"description": "the event's id: a consumer applies each event_id once",
                          "location": "$message.payload#/event_id"},
        "bindings": {"kafka": {
            "key": {"type": "string", "format": "uuid",
                    "description": "the event's session_id as a canonical lowercase UUID string"},
            "bindingVersion": KAFKA_BINDING,
        }},
        "examples": [example(event)],
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "A message of the topic that a consumer refused, with why and where it came from",
        "description": (
            "The value is the refused message's value byte for byte (whatever it was: it may not be JSON, or "
            "be JSON that breaks the contract), and the key its key. When that copy with the headers would be "
            "too large for the broker, the value is a DeadLetterStub instead (header x-dlq-stub: \"true\") and "
            "a key over 1024 bytes is dropped."
        ),
        "headers": {
            "type": "object",
            "required": [name for name, (_, always) in deadletter.HEADERS.items() if always],
            "properties": {name: {"type": "string", "description": text}
                           for name, (text, _) in deadletter.HEADERS.items()},
        },
        "payload": {"anyOf": [
            {"description": "the refused message's value, unchanged (any bytes)"},
            _ref("components", "schemas", "DeadLetterStub"),
        ]},
        "bindings": {"kafka": {
            "key": {"type": ["string", "null"], "description": "the refused message's key, unchanged"},
            "bindingVersion": KAFKA_BINDING,
        }},
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every contract topic and its dead-letter topic."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {DEAD_LETTER: _dead_letter_message()}
    schemas: dict[str, Any] = {
        "DeadLetterStub": deadletter.DeadLetterStub.model_json_schema(mode="serialization"),
    }
    for event in ALL_EVENTS:
        name = event.__name__
        producer = _PRODUCER[event.TOPIC.split(".", 1)[0]]
        schemas[name] = event.model_json_schema(mode="serialization")
        messages[name] = _event_message(event)
        channels[name] = {
            "address": event.TOPIC,
            "title": f"{event.EVENT_TYPE} events",
            "description": f"Published by {producer}; kept forever (the analytics read model is rebuilt from them).",
            "messages": {name: _ref("components", "messages", name)},
            "bindings": _kafka_topic(event.TOPIC, topics.RETENTION_MS),
        }
        dead = f"{name}DeadLetters"
        channels[dead] = {
            "address": topics.dlq(event.TOPIC),
            "title": f"Dead letters of {event.TOPIC}",
            "description": "Written by any consumer of the topic for a message it refuses; kept 30 days.",
            "messages": {DEAD_LETTER: _ref("components", "messages", DEAD_LETTER)},
            "bindings": _kafka_topic(topics.dlq(event.TOPIC), topics.DLQ_RETENTION_MS),
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "title": f"{producer} publishes {event.EVENT_TYPE}",
            "channel": _ref("channels", name),
            "messages": [_ref("channels", name, "messages", name)],
        }
        operations[f"deadLetter{name}"] = {
            "action": "send",
            "title": f"a consumer of {event.TOPIC} dead-letters a message it refuses",
            "channel": _ref("channels", dead),
            "messages": [_ref("channels", dead, "messages", DEAD_LETTER)],
        }
    return {
        "asyncapi": VERSION,
        "info": {"title": "ResolutionFlow events", "version": "1", "description": _paragraphs(_DESCRIPTION)},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
