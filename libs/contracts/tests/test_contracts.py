"""The event contracts: committed schemas match the models, and a breaking change is caught."""

import copy
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from rf_contracts import HandoffClaimed, SessionStarted, StepCreated, parse_event, topics
from rf_contracts.compat import breaking_changes
from rf_contracts.events import ContractViolation, json_schemas
from rf_contracts.schemas_export import SCHEMA_DIR, render, schema_path


@pytest.mark.parametrize("topic", topics.ALL_TOPICS)
def test_current_model_keeps_every_committed_field(topic: str) -> None:
    committed = json.loads(schema_path(topic).read_text())
    assert breaking_changes(committed, json_schemas()[topic]) == []


@pytest.mark.parametrize("topic", topics.ALL_TOPICS)
def test_committed_schema_is_up_to_date(topic: str) -> None:
    # A field was added without re-exporting: run `python -m rf_contracts.schemas_export`.
    assert schema_path(topic).read_text() == render(json_schemas()[topic])


def test_every_schema_file_belongs_to_a_topic() -> None:
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} == set(topics.ALL_TOPICS)


def _committed_claimed() -> dict:
    return json.loads(schema_path(topics.HANDOFF_CLAIMED).read_text())


def test_removing_a_field_is_a_breaking_change() -> None:
    new = copy.deepcopy(_committed_claimed())
    del new["properties"]["claimed_at"]
    new["required"].remove("claimed_at")
    assert any("'claimed_at' was removed" in p for p in breaking_changes(_committed_claimed(), new))


def test_renaming_a_field_is_a_breaking_change() -> None:
    new = copy.deepcopy(_committed_claimed())
    new["properties"]["claimed_by_user"] = new["properties"].pop("claimed_by")
    assert breaking_changes(_committed_claimed(), new)


def test_retyping_a_field_is_a_breaking_change() -> None:
    new = copy.deepcopy(_committed_claimed())
    new["properties"]["version"] = {"type": "string"}
    assert any("'version' changed type" in p for p in breaking_changes(_committed_claimed(), new))


def test_adding_an_optional_field_is_compatible() -> None:
    new = copy.deepcopy(_committed_claimed())
    new["properties"]["note"] = {"type": "string"}
    assert breaking_changes(_committed_claimed(), new) == []


def _event(event_type: str, over: dict[str, object], **fields: object) -> dict:
    """A valid event body of `event_type`: the envelope every event carries, its own `fields`, then `over`."""
    return {
        "event_id": str(uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": "2026-11-26T10:00:00+00:00",
        "account_id": str(uuid4()),
        "session_id": str(uuid4()),
        **fields,
        **over,
    }


def _claimed(**over: object) -> dict:
    at = "2026-11-26T10:00:00.123456Z"
    return _event("handoff.claimed", over, handoff_id=str(uuid4()), version=2, claimed_by=str(uuid4()), claimed_at=at)


def test_valid_event_parses_and_keeps_microseconds() -> None:
    body = _claimed()
    event = parse_event(topics.HANDOFF_CLAIMED, json.dumps(body).encode(), body["session_id"].encode())
    assert isinstance(event, HandoffClaimed)
    assert event.claimed_at == datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"claimed_at": "2026-11-26T10:00:00"}, "timezone"),
        ({"version": "2"}, "integer"),
        ({"version": 0}, "greater than or equal"),
        ({"session_id": "not-a-uuid"}, "UUID"),
        ({"event_type": "handoff.released"}, "handoff.claimed"),
        ({"schema_version": 2}, "1"),
    ],
)
def test_contract_violation_names_the_reason(override: dict, why: str) -> None:
    body = _claimed(**override)
    with pytest.raises(ContractViolation, match=why):
        parse_event(topics.HANDOFF_CLAIMED, json.dumps(body).encode())


def test_missing_field_and_garbage_are_violations() -> None:
    body = _claimed()
    del body["claimed_by"]
    with pytest.raises(ContractViolation, match="claimed_by"):
        parse_event(topics.HANDOFF_CLAIMED, json.dumps(body).encode())
    with pytest.raises(ContractViolation):
        parse_event(topics.HANDOFF_CLAIMED, b"\xff not json")


def test_key_must_be_the_session_id() -> None:
    body = _claimed()
    with pytest.raises(ContractViolation, match="key"):
        parse_event(topics.HANDOFF_CLAIMED, json.dumps(body).encode(), key=str(uuid4()).encode())


def test_events_serialize_round_trip() -> None:
    now = datetime.now(UTC)
    e = StepCreated(
        event_id=uuid4(), occurred_at=now, account_id=uuid4(), session_id=uuid4(), step_id=uuid4(),
        created_at=now, kind="note", actor_type="ai", actor_id=None,
    )
    assert parse_event(topics.STEP_CREATED, e.to_json(), e.key()) == e


@pytest.mark.parametrize("version", [1, 2**31, 2**63 - 1])
def test_versions_up_to_the_signed_64_bit_maximum_are_valid(version: int) -> None:
    body = _claimed(version=version)
    assert parse_event(topics.HANDOFF_CLAIMED, json.dumps(body).encode()).version == version  # type: ignore[attr-defined]


def test_a_version_past_bigint_is_a_violation() -> None:
    with pytest.raises(ContractViolation, match="less than or equal"):
        parse_event(topics.HANDOFF_CLAIMED, json.dumps(_claimed(version=2**63)).encode())


@pytest.mark.parametrize(
    "at",
    ["0001-01-01T00:00:00Z", "0001-01-01T14:00:00+14:00", "9999-12-31T23:59:59.999999Z",
     "9999-12-31T09:59:59.999999-14:00", "0001-01-01T00:00:00-14:00"],
)
def test_times_whose_utc_instant_is_within_years_1_to_9999_are_valid(at: str) -> None:
    event = parse_event(topics.HANDOFF_CLAIMED, json.dumps(_claimed(claimed_at=at, occurred_at=at)).encode())
    assert event.occurred_at == datetime.fromisoformat(at)


@pytest.mark.parametrize(
    "at", ["9999-12-31T23:59:59-14:00", "9999-12-31T10:00:00-14:00", "0001-01-01T00:00:00+00:01",
           "0001-01-01T13:59:59+14:00"],
)
@pytest.mark.parametrize("field", ["claimed_at", "occurred_at"])
def test_a_time_outside_storage_range_in_utc_is_a_violation(at: str, field: str) -> None:
    with pytest.raises(ContractViolation, match="out of range"):
        parse_event(topics.HANDOFF_CLAIMED, json.dumps(_claimed(**{field: at})).encode())


def test_a_null_key_is_a_violation() -> None:
    body = _claimed()
    with pytest.raises(ContractViolation, match="null key"):
        parse_event(topics.HANDOFF_CLAIMED, json.dumps(body).encode(), key=None)


def test_a_non_canonical_uuid_key_is_a_violation() -> None:
    body = _claimed()
    with pytest.raises(ContractViolation, match="key"):
        parse_event(topics.HANDOFF_CLAIMED, json.dumps(body).encode(), key=body["session_id"].upper().encode())


@pytest.mark.parametrize("raw", [None, b"", b"[]", b"null", b'"text"', b"42"])
def test_a_null_or_non_object_value_is_a_violation(raw: bytes | None) -> None:
    with pytest.raises(ContractViolation):
        parse_event(topics.HANDOFF_CLAIMED, raw, key=str(uuid4()).encode())


def _started(**over: object) -> dict:
    ids = {"tree_id": str(uuid4()), "started_by": str(uuid4())}
    return _event("session.started", over, **ids, tree_version=3, started_at="2026-11-26T10:00:00Z")


def test_session_started_grew_tree_title_and_category_compatibly() -> None:
    current = json_schemas()[topics.SESSION_STARTED]
    before = copy.deepcopy(current)  # the schema as it was before the two fields were added
    for name in ("tree_title", "tree_category"):
        del before["properties"][name]
        assert name not in current["required"]
    assert breaking_changes(before, current) == []


def test_session_started_without_tree_title_and_category_still_parses() -> None:
    event = parse_event(topics.SESSION_STARTED, json.dumps(_started()).encode())
    assert isinstance(event, SessionStarted)
    assert (event.tree_title, event.tree_category) == (None, None)
    nulls = parse_event(topics.SESSION_STARTED, json.dumps(_started(tree_title=None, tree_category=None)).encode())
    assert (nulls.tree_title, nulls.tree_category) == (None, None)  # type: ignore[attr-defined]


def test_session_started_carries_tree_title_and_category() -> None:
    body = _started(tree_title="Printer does not print", tree_category="hardware")
    event = parse_event(topics.SESSION_STARTED, json.dumps(body).encode())
    assert isinstance(event, SessionStarted)
    assert (event.tree_title, event.tree_category) == ("Printer does not print", "hardware")
    assert parse_event(topics.SESSION_STARTED, event.to_json(), event.key()) == event


@pytest.mark.parametrize(
    "override",
    [
        {"tree_title": ""},
        {"tree_title": "t" * 201},
        {"tree_category": "c" * 101},
        {"tree_title": "nul\u0000inside"},
        {"tree_category": 7},
    ],
)
def test_tree_title_and_category_out_of_bounds_are_violations(override: dict) -> None:
    with pytest.raises(ContractViolation, match=next(iter(override))):
        parse_event(topics.SESSION_STARTED, json.dumps(_started(**override)).encode())
