"""Poison corpus: every bad or extreme record on every topic a service consumes; no consumer stalls."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy.ext.asyncio import create_async_engine

from analytics.main import create_app as analytics_app
from analytics.settings import Settings as AnalyticsSettings
from handoffs.main import create_app as handoffs_app
from handoffs.settings import Settings as HandoffsSettings
from rf_contracts import dlq, topics
from rf_devstack.samples import printer_tree
from rf_testsupport import Caller, Served, group_lag, produce, read_topic, unique_prefix, wait_until
from rfkit.auth import generate_keypair
from rfkit.consumer import DLQ_REASON_HEADER, DLQ_STUB_HEADER
from sessions.main import create_app as sessions_app
from sessions.settings import Settings as SessionsSettings

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "/api/v1"
HANDOFF_TOPICS = [topics.HANDOFF_REQUESTED, topics.HANDOFF_CLAIMED, topics.HANDOFF_RELEASED, topics.HANDOFF_RESOLVED]
# service -> (consumer group without the prefix, the consumer's name in x-consumer, the topics it consumes)
CONSUMERS: dict[str, tuple[str, str, list[str]]] = {
    "sessions": ("sessions", "sessions-escalations", HANDOFF_TOPICS),
    "handoffs": ("handoffs", "handoffs.session-completed", [topics.SESSION_COMPLETED]),
    "analytics": ("analytics", "analytics-escalations", [topics.STEP_CREATED, *HANDOFF_TOPICS]),
}
CONSUMED = sorted({t for _, _, ts in CONSUMERS.values() for t in ts})
# The time field each topic adds to the common ones.
TIME_FIELD = {
    topics.SESSION_COMPLETED: "completed_at", topics.STEP_CREATED: "created_at",
    topics.HANDOFF_REQUESTED: "requested_at", topics.HANDOFF_CLAIMED: "claimed_at",
    topics.HANDOFF_RELEASED: "released_at", topics.HANDOFF_RESOLVED: "resolved_at",
}
# Kafka's default message.max.bytes, when the broker does not say.
DEFAULT_MAX_MESSAGE_BYTES = 1048588

TREE = printer_tree()


def iso(at: datetime) -> str:
    return at.isoformat()


def body(topic: str, session_id: uuid.UUID, account_id: uuid.UUID, **over: Any) -> dict[str, Any]:
    """A valid event of `topic` as JSON-ready data (so tests can also make it invalid)."""
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "schema_version": 1, "occurred_at": iso(now),
        "account_id": str(account_id), "session_id": str(session_id),
    }
    someone = str(uuid.uuid4())
    if topic == topics.SESSION_COMPLETED:
        event |= {"event_type": "session.completed", "completed_at": iso(now), "outcome": "resolved"}
    elif topic == topics.STEP_CREATED:
        event |= {"event_type": "session.step_created", "step_id": str(uuid.uuid4()), "created_at": iso(now),
                  "kind": "note", "actor_type": "human", "actor_id": someone}
    else:
        action = topic.split("handoff-")[1].split(".")[0]  # requested, claimed, released, resolved
        event |= {"event_type": f"handoff.{action}", "handoff_id": str(uuid.uuid4()), "version": 1,
                  f"{action}_by": someone, f"{action}_at": iso(now)}
        if action == "requested":
            event |= {"priority": "normal", "reason": "needs an expert"}
    return event | over


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


@dataclass
class Corpus:
    """What was produced onto one topic: (partition, offset) of each record the consumers must dead-letter,
    and of each extreme the contract allows (to be applied, not dead-lettered)."""

    bad: dict[tuple[int, int], str] = field(default_factory=dict)
    extreme: dict[tuple[int, int], str] = field(default_factory=dict)


def bad_records(topic: str, session_id: uuid.UUID, account_id: uuid.UUID, max_bytes: int) -> list[tuple[str, Any]]:
    """(what, (key, value)) of records that violate the contract or that no storage holds."""
    key = str(session_id).encode()

    def valid(**over: Any) -> dict[str, Any]:
        return body(topic, session_id, account_id, **over)

    time_field = TIME_FIELD[topic]
    records: list[tuple[str, Any]] = [
        ("not json", (key, b"\xff{not json")),
        ("json array", (key, b"[]")),
        ("json string", (key, b'"text"')),
        ("json number", (key, b"42")),
        ("json null", (key, b"null")),
        ("empty value", (key, b"")),
        ("null value", (key, None)),
        ("null key", (None, raw(valid()))),
        ("upper-case key", (key.upper(), raw(valid()))),
        ("key of another session", (str(uuid.uuid4()).encode(), raw(valid()))),
        ("missing field", (key, raw({k: v for k, v in valid().items() if k != time_field}))),
        ("wrong event type", (key, raw(valid(event_type="something.else")))),
        ("schema version 2", (key, raw(valid(schema_version=2)))),
        ("naive time", (key, raw(valid(**{time_field: "2026-11-26T10:00:00"})))),
        (f"{time_field} past year 9999 in UTC", (key, raw(valid(**{time_field: "9999-12-31T23:59:59-14:00"})))),
        ("occurred_at before year 1 in UTC", (key, raw(valid(occurred_at="0001-01-01T00:00:00+00:01")))),
        # Exactly at the broker's limit (a one-record batch adds 72 bytes to key and value; one byte more is
        # refused): the broker takes it, and its dead letter with headers cannot be a copy.
        ("junk at the broker's limit", (key, (bytes(range(256)) * 4200)[: max_bytes - 72 - len(key)])),
    ]
    if topic in HANDOFF_TOPICS:
        records += [
            ("version past bigint", (key, raw(valid(version=2**63)))),
            ("version 0", (key, raw(valid(version=0)))),
            ("version as a string", (key, raw(valid(version="2")))),
            ("version as a float", (key, raw(valid(version=2.0)))),
        ]
    return records


def extreme_records(topic: str, max_bytes: int) -> list[tuple[str, Any]]:
    """Records the contract allows at its edges (each on a session of its own, in an account of its own)."""
    account = uuid.uuid4()
    time_field = TIME_FIELD[topic]

    def valid(**over: Any) -> tuple[bytes, bytes]:
        sid = uuid.uuid4()
        return str(sid).encode(), raw(body(topic, sid, account, **over))

    records: list[tuple[str, Any]] = []
    for at in ("0001-01-01T00:00:00Z", "0001-01-01T14:00:00+14:00", "0001-01-01T00:00:00-14:00",
               "9999-12-31T23:59:59.999999Z", "9999-12-31T09:59:59.999999-14:00", "9999-12-31T23:59:59+14:00"):
        records.append((f"{time_field} {at}", valid(**{time_field: at})))
        records.append((f"occurred_at {at}", valid(occurred_at=at)))
    if topic in HANDOFF_TOPICS:
        records += [("version 1", valid(version=1)), ("version 2**31", valid(version=2**31)),
                    ("version 2**63-1", valid(version=2**63 - 1))]
    if topic == topics.HANDOFF_REQUESTED:
        records += [("empty reason", valid(reason="")), ("reason with every plane", valid(reason="é€𝄞\u2028" * 1000))]
    # Under the broker's limit, with room for the batch's own overhead: a field the contract ignores, or the
    # reason (a maximal string).
    probe = valid()[1]
    room = max_bytes - len(probe) - 2000
    padded = {"reason": "r" * room} if topic == topics.HANDOFF_REQUESTED else {"padding": "p" * room}
    records.append(("huge event under the broker's limit", valid(**padded)))
    # The same event id twice with different bodies: applied once (or twice, idempotently), never a stall.
    first = body(topic, uuid.uuid4(), account)
    second = body(topic, uuid.uuid4(), account, event_id=first["event_id"])
    records += [("duplicate id, first body", (first["session_id"].encode(), raw(first))),
                ("duplicate id, other body", (second["session_id"].encode(), raw(second)))]
    return records


@dataclass
class System:
    prefix: str
    bootstrap: str
    private_pem: str
    urls: dict[str, str]
    databases: dict[str, str]


@pytest_asyncio.fixture(loop_scope="session")
async def system(kafka_bootstrap: str, make_database: Any) -> AsyncIterator[System]:
    """sessions, handoffs and analytics served over HTTP on real Kafka (a prefix of their own) and PostgreSQL."""
    prefix = unique_prefix()
    private_pem, public_pem = generate_keypair()
    databases = {name: make_database(name) for name in CONSUMERS}

    def common(name: str) -> dict[str, Any]:
        return {"env": "test", "database_url": databases[name], "kafka_bootstrap": kafka_bootstrap,
                "topic_prefix": prefix, "jwt_public_key": public_pem, "outbox_poll_interval_s": 0.05}

    async with AsyncExitStack() as stack:
        sessions = await stack.enter_async_context(Served(sessions_app(SessionsSettings(**common("sessions")))))
        handoffs = await stack.enter_async_context(
            Served(handoffs_app(HandoffsSettings(**common("handoffs"), sessions_url=sessions.url)))
        )
        analytics = await stack.enter_async_context(Served(analytics_app(AnalyticsSettings(**common("analytics")))))
        yield System(prefix, kafka_bootstrap, private_pem,
                     {"sessions": sessions.url, "handoffs": handoffs.url, "analytics": analytics.url}, databases)


async def broker_max_message_bytes(bootstrap: str, topic: str) -> int:
    """The largest record batch the broker takes on `topic` (its max.message.bytes, the broker's default)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        for response in described:
            for resource in response.resources:
                for entry in resource[4]:
                    if entry[0] == "max.message.bytes":
                        return int(entry[1])
    finally:
        await admin.close()
    return DEFAULT_MAX_MESSAGE_BYTES


@dataclass
class Good:
    """Events a consumer must apply around the poison, on a real session with a real handoff."""

    session_id: uuid.UUID
    live_handoff: str  # made through the handoffs API; the session.completed event resolves it
    claimed: uuid.UUID = field(default_factory=uuid.uuid4)
    released: uuid.UUID = field(default_factory=uuid.uuid4)
    resolved: uuid.UUID = field(default_factory=uuid.uuid4)
    step: uuid.UUID = field(default_factory=uuid.uuid4)

    def events(self, account_id: uuid.UUID, now: datetime) -> dict[str, dict[str, Any]]:
        s, a = self.session_id, account_id
        claimed_at = now - timedelta(seconds=60)
        return {
            topics.HANDOFF_REQUESTED: body(topics.HANDOFF_REQUESTED, s, a, handoff_id=str(self.claimed)),
            # Past int4: sessions stored versions as integer and stalled on it.
            topics.HANDOFF_CLAIMED: body(topics.HANDOFF_CLAIMED, s, a, handoff_id=str(self.claimed),
                                         version=2**31, claimed_at=iso(claimed_at)),
            topics.HANDOFF_RELEASED: body(topics.HANDOFF_RELEASED, s, a, handoff_id=str(self.released), version=3),
            topics.HANDOFF_RESOLVED: body(topics.HANDOFF_RESOLVED, s, a, handoff_id=str(self.resolved), version=4),
            topics.STEP_CREATED: body(topics.STEP_CREATED, s, a, step_id=str(self.step),
                                      created_at=iso(claimed_at + timedelta(seconds=30))),
            topics.SESSION_COMPLETED: body(topics.SESSION_COMPLETED, s, a, outcome="unresolved"),
        }


async def test_poison_on_every_consumed_topic_is_dead_lettered_and_nothing_stalls(system: System) -> None:
    engineer = Caller(system.private_pem, role="engineer")
    p = system.prefix
    max_bytes = await broker_max_message_bytes(system.bootstrap, p + topics.STEP_CREATED)
    # Every topic is created alike (docs/contract.md#topics-and-keys): one figure for all.
    async with httpx.AsyncClient(timeout=30) as http:

        async def call(service: str, method: str, path: str, expect: int, **kw: Any) -> Any:
            r = await http.request(method, system.urls[service] + API + path, headers=engineer.headers, **kw)
            assert r.status_code == expect, (method, path, r.status_code, r.text)
            return r.json()

        async def good() -> Good:
            tree = await call("sessions", "POST", "/trees", 201, json=TREE)
            session = await call("sessions", "POST", "/sessions", 201, json={"tree_id": tree["id"]})
            handoff = await call("handoffs", "POST", "/handoffs", 201,
                                 json={"session_id": session["id"], "reason": "stuck", "priority": "high"})
            return Good(uuid.UUID(session["id"]), handoff["id"])

        before, after = await good(), await good()
        now = datetime.now(UTC)
        corpus = {t: Corpus() for t in CONSUMED}
        for topic in CONSUMED:
            good_before = before.events(engineer.account_id, now)[topic]
            good_after = after.events(engineer.account_id, now)[topic]
            # The poison is keyed (where it has a key) on the session of the good events after it: same partition.
            bad = bad_records(topic, after.session_id, engineer.account_id, max_bytes)
            extreme = extreme_records(topic, max_bytes)
            records = [(str(before.session_id).encode(), raw(good_before))] + [r for _, r in bad + extreme]
            records.append((str(after.session_id).encode(), raw(good_after)))
            placed = await produce(system.bootstrap, p + topic, records, max_request_size=2 * max_bytes)
            corpus[topic].bad = {placed[1 + i]: what for i, (what, _) in enumerate(bad)}
            corpus[topic].extreme = {placed[1 + len(bad) + i]: what for i, (what, _) in enumerate(extreme)}

        # Every consumer group catches up with everything produced.
        for group, _, consumed in CONSUMERS.values():
            async def caught_up(group: str = group, consumed: list[str] = consumed) -> bool:
                return await group_lag(system.bootstrap, p + group, [p + t for t in consumed]) == 0

            await wait_until(caught_up, timeout_s=180, interval_s=0.5)

        # Every bad record is in its topic's DLQ once per consumer of the topic, with a reason; no extreme is.
        for topic in CONSUMED:
            names = [name for _, name, consumed in CONSUMERS.values() if topic in consumed]
            dead = await read_topic(system.bootstrap, p + dlq(topic), expect=len(corpus[topic].bad) * len(names),
                                    timeout_s=60)
            letters: dict[tuple[str, int, int], dict[str, str]] = {}
            for record in dead:
                h = {k: v.decode() for k, v in record.headers}
                letters[(h["x-consumer"], int(h["x-original-partition"]), int(h["x-original-offset"]))] = h
            for name in names:
                for (partition, offset), what in corpus[topic].bad.items():
                    letter = letters.get((name, partition, offset), {})
                    assert letter.get(DLQ_REASON_HEADER), f"{name}: {what!r} on {topic} not dead-lettered with a reason"
                    # Too large to copy with its headers: a stub that points at the original stands in.
                    assert (letter.get(DLQ_STUB_HEADER) == "true") == what.startswith("junk at"), (what, letter)
                for (partition, offset), what in corpus[topic].extreme.items():
                    refused = letters.get((name, partition, offset), {}).get(DLQ_REASON_HEADER)
                    assert refused is None, f"{name} dead-lettered {what!r} on {topic}: {refused}"

        # The good events before and after the poison are applied: the services show them.
        for run in (before, after):
            handoff = await call("handoffs", "GET", f"/handoffs/{run.live_handoff}", 200)
            assert handoff["status"] == "resolved", handoff
        metric = await call("analytics", "GET", "/analytics/flowpilot/escalations?period=7d", 200)
        assert (metric["n_handoffs_claimed"], metric["n_handoffs_with_action"], metric["avg_seconds"]) == (2, 2, 30.0)

    engine = create_async_engine(system.databases["sessions"])
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT handoff_id, status, version FROM session_escalations WHERE session_id = ANY(:ids)"
            ), {"ids": [before.session_id, after.session_id]})).all()
    finally:
        await engine.dispose()
    views = {row.handoff_id: (row.status, row.version) for row in rows}
    for run in (before, after):
        assert views[run.claimed] == ("claimed", 2**31)
        assert views[run.released] == ("released", 3)
        assert views[run.resolved] == ("resolved", 4)
