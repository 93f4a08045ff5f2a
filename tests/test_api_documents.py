"""The committed API documents (docs/openapi.json, docs/asyncapi.yaml) are what the code produces, and usable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from rf_contracts import ALL_TOPICS, EVENT_BY_TOPIC, deadletter, dlq, parse_event
from rf_contracts.asyncapi import DEAD_LETTER
from rf_contracts.events import EVENT_HEADERS
from rf_contracts.schemas_export import schema_path
from tools import api_docs

ROOT = Path(__file__).resolve().parents[1]
GENERATED = api_docs.documents()
OPENAPI: dict[str, Any] = json.loads(GENERATED["docs/openapi.json"])
ASYNCAPI: dict[str, Any] = yaml.safe_load(GENERATED["docs/asyncapi.yaml"])
OPERATIONS = [(path, method, op) for path, ops in OPENAPI["paths"].items() for method, op in ops.items()]


@pytest.mark.parametrize("relative", sorted(GENERATED))
def test_the_committed_document_is_what_the_code_produces(relative: str) -> None:
    committed = ROOT / relative
    assert committed.is_file(), f"{relative} is missing: run `{api_docs.COMMAND}` and commit it"
    assert committed.read_text() == GENERATED[relative], (
        f"{relative} differs from what the code produces: run `{api_docs.COMMAND}` and commit the result"
    )


# ---- OpenAPI ------------------------------------------------------------------------------------------------


def test_every_operation_id_is_tag_then_action_and_unique() -> None:
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for path, method, op in OPERATIONS:
        tag = op["tags"][0].replace("-", "_")
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", op["operationId"]), (method, path, op["operationId"])
        assert op["operationId"].startswith(f"{tag}_"), (method, path, op["operationId"])


def test_every_tag_in_use_is_described() -> None:
    described = {tag["name"]: tag.get("description") for tag in OPENAPI.get("tags", [])}
    used = {tag for _, _, op in OPERATIONS for tag in op.get("tags", [])}
    missing = sorted(tag for tag in used if not described.get(tag))
    assert not missing, f"describe these tags in rf_contracts/api/tags.py: {missing}"
    assert set(described) == used


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _has_example(media: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = media.get("schema", {})
    # A body that is a model, a list of a model, or an optional model carries the model's examples.
    candidates = [schema, schema.get("items", {}), *schema.get("anyOf", [])]
    return any(_resolve(c).get("examples") for c in candidates if c.get("type") != "null")


def _bodies() -> list[tuple[str, dict[str, Any]]]:
    bodies = []
    for path, method, op in OPERATIONS:
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            bodies.append((f"{method.upper()} {path} request {media_type}", media))
        for status, answer in op["responses"].items():
            for media_type, media in answer.get("content", {}).items():
                if media.get("schema"):  # text/markdown of the export has no schema to exemplify
                    bodies.append((f"{method.upper()} {path} {status} {media_type}", media))
    return bodies


def test_every_request_and_response_body_has_an_example() -> None:
    missing = [where for where, media in _bodies() if not _has_example(media)]
    assert not missing, "add `examples` to the model (rf_contracts.api.examples.example): " + "; ".join(missing)


def _component_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; their $refs point into the document's components.
    registry: Registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents({"components": OPENAPI["components"]}, default_specification=DRAFT202012)
    )
    rebased = json.loads(json.dumps(schema).replace('"#/components/', '"urn:openapi#/components/'))
    return jsonschema.Draft202012Validator(rebased, registry=registry, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("name", sorted(n for n, s in OPENAPI["components"]["schemas"].items() if "examples" in s))
def test_every_example_is_valid_against_its_schema(name: str) -> None:
    schema = OPENAPI["components"]["schemas"][name]
    validator = _component_validator({k: v for k, v in schema.items() if k != "examples"})
    for example in schema["examples"]:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(example)]
        assert not errors, f"{name} example {example}: {errors}"


def test_media_type_examples_are_valid_against_their_schema() -> None:
    checked = 0
    for where, media in _bodies():
        if "example" in media and "schema" in media:
            errors = [e.message for e in _component_validator(media["schema"]).iter_errors(media["example"])]
            assert not errors, f"{where}: {errors}"
            checked += 1
    assert checked  # the login form's and the coded errors' examples


# ---- AsyncAPI -----------------------------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")  # channel and operation ids (AsyncAPI 3.0)
_COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")


def _deref(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = ASYNCAPI
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _payload_schema(message: dict[str, Any]) -> dict[str, Any]:
    payload = message["payload"]
    return _deref(payload["$ref"]) if "$ref" in payload else payload


def test_asyncapi_has_the_required_fields_of_version_3() -> None:
    assert ASYNCAPI["asyncapi"] == "3.0.0"
    assert ASYNCAPI["info"]["title"] and isinstance(ASYNCAPI["info"]["version"], str)
    assert set(ASYNCAPI) <= {"asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations",
                             "components"}
    assert all(_KEY.match(key) for key in (*ASYNCAPI["channels"], *ASYNCAPI["operations"]))
    for section in ASYNCAPI["components"].values():
        assert all(_COMPONENT_KEY.match(key) for key in section)


def test_every_channel_message_has_a_payload_schema_that_is_valid_json_schema() -> None:
    for channel_id, channel in ASYNCAPI["channels"].items():
        assert channel["address"] and channel["messages"], channel_id
        for message_ref in channel["messages"].values():
            message = _deref(message_ref["$ref"])
            schema = _payload_schema(message)
            # The default schema format of AsyncAPI 3.0 is a superset of JSON Schema draft 07.
            jsonschema.Draft7Validator.check_schema(schema)
            jsonschema.Draft7Validator.check_schema(message["headers"])
            assert message["bindings"]["kafka"]["key"], channel_id


def test_every_operation_sends_a_message_of_its_own_channel() -> None:
    for operation_id, operation in ASYNCAPI["operations"].items():
        assert operation["action"] in ("send", "receive"), operation_id
        channel_ref = operation["channel"]["$ref"]
        _deref(channel_ref)
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), operation_id
            _deref(message["$ref"])


def test_every_topic_and_its_dead_letter_topic_is_documented_with_the_contract_schema() -> None:
    channels = {channel["address"]: channel for channel in ASYNCAPI["channels"].values()}
    assert set(channels) == {*ALL_TOPICS, *(dlq(topic) for topic in ALL_TOPICS)}
    for topic in ALL_TOPICS:
        (message_ref,) = channels[topic]["messages"].values()
        message = _deref(message_ref["$ref"])
        assert message["name"] == EVENT_BY_TOPIC[topic].EVENT_TYPE
        # The same schema as the committed one of rf_contracts/schemas.
        assert _payload_schema(message) == json.loads(schema_path(topic).read_text())
        assert set(message["headers"]["required"]) == set(EVENT_HEADERS) == set(message["headers"]["properties"])
        (dead_ref,) = channels[dlq(topic)]["messages"].values()
        assert dead_ref["$ref"] == f"#/components/messages/{DEAD_LETTER}"


def test_the_dead_letter_message_documents_every_header_the_consumer_writes() -> None:
    headers = _deref(f"#/components/messages/{DEAD_LETTER}")["headers"]
    assert set(headers["properties"]) == set(deadletter.HEADERS)
    assert set(headers["required"]) == {name for name, (_, always) in deadletter.HEADERS.items() if always}


def test_every_event_message_example_is_a_valid_message_of_its_topic() -> None:
    for channel in ASYNCAPI["channels"].values():
        if channel["address"] not in EVENT_BY_TOPIC:
            continue
        (message_ref,) = channel["messages"].values()
        message = _deref(message_ref["$ref"])
        assert message["examples"], channel["address"]
        for example in message["examples"]:
            jsonschema.Draft7Validator(_payload_schema(message)).validate(example["payload"])
            jsonschema.Draft7Validator(message["headers"]).validate(example["headers"])
            key = example["payload"]["session_id"].encode()
            event = parse_event(channel["address"], json.dumps(example["payload"]).encode(), key)
            assert event.headers() == example["headers"]
