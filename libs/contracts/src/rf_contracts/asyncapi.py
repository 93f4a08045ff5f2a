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
